"""Runs with --languages keep only those languages; bare labels become prompts; a labelled folder becomes shards."""
from __future__ import annotations

import glob
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq

from clipcurate.pipeline.demo import synth
from clipcurate.pipeline.cli import main as cli_main
from webserver import make_jpeg

CAPTIONS = [
    ("a small red house next to the river", "en"),
    ("portrait of a smiling woman in the park", "en"),
    ("ein kleines rotes Haus am Fluss", "de"),
    ("Porträt einer lächelnden Frau im Park", "de"),
    ("une petite maison rouge au bord de la rivière", "fr"),
    ("красный дом на берегу реки", "ru"),
    ("河边的红色小房子", "zh"),
    ("IMG_20230412_1533.jpg", "und"),
    ("golden_retriever", "en"),  # a bare label: becomes a prompt
]


def _rows(out, pattern):
    return [r for f in sorted(glob.glob(os.path.join(out, pattern))) for r in pq.read_table(f).to_pylist()]


def test_only_the_languages_asked_for_are_kept(web, tmp_path):
    urls = [web.add(f"/lang/{i}.jpg", body=make_jpeg(120, 100, seed=300 + i), content_type="image/jpeg")
            for i in range(len(CAPTIONS))]
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"url": urls, "caption": [c for c, _ in CAPTIONS]}), src)
    out = tmp_path / "out"
    assert cli_main(["run", "--input", str(src), "--output", str(out), "--allow-private-network",
                     "--languages", "en,de", "--no-near-dedup"]) == 0
    pairs = {p["source_row"]: p for p in _rows(out, "shards/*.parquet")}
    rejects = {r["source_row"]: r for r in _rows(out, "rejects/*/*.parquet")}
    for i, (_, lang) in enumerate(CAPTIONS):
        if lang in ("en", "de"):
            assert i in pairs and pairs[i]["language"] == lang, (i, rejects.get(i))
        elif lang == "und":
            assert rejects[i]["reason"] == "no_language"
        else:
            assert rejects[i]["reason"] == "language" and rejects[i]["language"] == lang
            assert lang in rejects[i]["error_message"]
    label = pairs[len(CAPTIONS) - 1]
    assert label["caption"] == "a photo of a golden retriever." and label["raw_caption"] == "golden_retriever"
    assert label["label"] == "golden retriever"


def test_labelled_folder_runs_into_shards(tmp_path):
    seed = tmp_path / "seed"
    synth.write_image_folder(seed, labels=("circle", "star"), per_label=3, seed=0, size=64)
    (seed / "star" / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    assert cli_main(["run", "--labelled", str(seed), "--output", str(out), "--label-domain", "shape",
                     "--no-near-dedup"]) == 0
    pairs = _rows(out, "shards/*.parquet")
    assert sorted(p["caption"] for p in pairs) == ["a photo of a circle, a type of shape."] * 3 + \
        ["a photo of a star, a type of shape."] * 3
    assert {p["label"] for p in pairs} == {"circle", "star"}
    assert json.load(open(out / "stats.json"))["accounted_for"]
