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


def test_doubtful_captions_are_kept_and_counted_in_stats(tmp_path):
    """A metadata-only run (no downloads): sure foreign captions are dropped as language, doubtful ones
    kept with their best guess recorded, and their number is stats.json's kept_uncertain."""
    captions = [
        ("a small red house next to the river", None),
        ("ein kleiner Hund schläft auf dem Sofa", None),   # surely German: dropped
        ("tennis de table", None),                         # English-looking words: kept on doubt
        ("tennis de table", "fr"),                         # ... also with its page's declared language
        ("IMG_20230412_1533.jpg", None),                    # no language
        ("Küchenmesser Set", None),                        # German, but not surely: kept, counted
    ]
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"url": [f"http://example.com/{i}.jpg" for i in range(len(captions))],
                             "caption": [c for c, _ in captions],
                             "page_language": [lang for _, lang in captions]}), src)

    def run(name, *extra):
        out = tmp_path / name
        assert cli_main(["run", "--input", str(src), "--output", str(out), "--until", "language",
                         "--languages", "en", *extra]) == 0
        return out, json.load(open(out / "stats.json"))

    out, stats = run("plain")
    kept = _rows(out, "pairs/*.parquet")
    rejects = {r["source_row"]: r for r in _rows(out, "rejects/*/*.parquet")}
    assert rejects[1]["reason"] == "language" and rejects[1]["language"] == "de"
    assert rejects[4]["reason"] == "no_language"
    assert sorted(r["source_row"] for r in kept) == [0, 2, 3, 5]
    doubtful = [r for r in kept if r["language"] != "en"]
    assert [r["source_row"] for r in doubtful] == [5] and doubtful[0]["language"] == "de"
    assert stats["language"]["kept_uncertain"] == len(doubtful)
    language = next(e for e in stats["stages"] if e["stage"] == "language")
    assert language["kept_uncertain"] == len(doubtful) and stats["accounted_for"]

    out, stats = run("page_prior", "--language-page-prior")
    by_row = {r["source_row"]: r for r in _rows(out, "pairs/*.parquet")}
    assert by_row[3]["language"] == "fr" and by_row[3]["page_language"] == "fr"  # kept, its guess now French
    assert stats["language"]["kept_uncertain"] == sum(r["language"] != "en" for r in by_row.values()) >= 1

    out, stats = run("strict", "--language-drop-confidence", "0.5")
    assert {r["source_row"] for r in _rows(out, "rejects/*/*.parquet") if r["reason"] == "language"} >= {1}


def test_single_words_move_the_drop_confidence_in_a_run(tmp_path):
    """A metadata-only run: a Dutch caption the identifier is 93.5% sure of is dropped under --languages en
    because "hoedje" is in no English word list; a German caption of an English loanword is kept under
    --languages de,fr because "Strampler" is German only. --no-language-word-evidence gives the plain rule."""
    captions = ["a small red house next to the river", "party hoedje", "Baby Strampler"]
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"url": [f"http://example.com/{i}.jpg" for i in range(len(captions))],
                             "caption": captions}), src)

    def run(name, *extra):
        out = tmp_path / name
        assert cli_main(["run", "--input", str(src), "--output", str(out), "--until", "language", *extra]) == 0
        rejects = {r["source_row"]: r for r in _rows(out, "rejects/*/*.parquet")}
        return sorted(r["source_row"] for r in _rows(out, "pairs/*.parquet")), rejects

    kept, rejects = run("en", "--languages", "en")
    assert kept == [0, 2] and rejects[1]["reason"] == "language" and "'hoedje'" in rejects[1]["error_message"]
    kept, _ = run("en_plain", "--languages", "en", "--no-language-word-evidence")
    assert kept == [0, 1, 2]
    kept, _ = run("de_fr", "--languages", "de,fr")
    assert kept == [2]
    kept, rejects = run("de_fr_plain", "--languages", "de,fr", "--no-language-word-evidence")
    assert kept == [] and rejects[2]["reason"] == "language"


def test_language_options_are_checked_up_front(tmp_path):
    import subprocess
    import sys

    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"url": ["http://127.0.0.1:9/a.jpg"], "caption": ["a dog"]}), src)
    base = [sys.executable, "-m", "clipcurate.pipeline.cli", "run", "--input", str(src), "--output", str(tmp_path / "o")]
    for extra, needle in ((["--languages", "en,xx"], "unknown language code(s) xx"),
                          (["--language-drop-confidence", "0.5"], "needs --languages"),
                          (["--no-language-word-evidence"], "needs --languages"),
                          (["--languages", "en", "--language-drop-confidence", "1.5"], "must be in (0, 1]"),
                          (["--languages", "en", "--language-url-prior", "-1"], "must be >= 0")):
        proc = subprocess.run(base + extra, capture_output=True, text=True, timeout=120,
                              env=dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1"))
        lines = [line for line in proc.stderr.splitlines() if line.strip() and "apitools" not in line]
        assert proc.returncode == 2 and len(lines) == 1 and needle in lines[0], (extra, proc.stderr)
