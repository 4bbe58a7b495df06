"""Curation options through ``clipcurate run`` on a loopback web: semantic dedup (SemDeDup on the CLIP
embeddings), MetaCLIP balancing, and the DirectRunner with --workers 2 giving the same output."""
from __future__ import annotations

import glob
import hashlib
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clipcurate.filters.balance import entry_rank
from clipcurate.pipeline.cli import main as cli_main
from clipcurate.pipeline.media import draw

SHAPES = ("circle", "square", "star", "triangle", "ring", "cross")
BASE = ["--allow-private-network", "--timeout", "5", "--retries", "0", "--image-size", "64",
        "--samples-per-shard", "4", "--no-near-dedup"]


def _kept(out) -> list[dict]:
    files = sorted(glob.glob(os.path.join(out, "shards", "*.parquet")))
    return pq.read_table(files).to_pylist() if files else []


def _rejects(out, reason: str) -> list[dict]:
    return [r for f in sorted(glob.glob(os.path.join(out, "rejects", "*", "*.parquet")))
            for r in pq.read_table(f).to_pylist() if r["reason"] == reason]


@pytest.fixture(scope="module")
def shapes_web(web, tmp_path_factory):
    """12 distinct pictures, and 4 of them again re-encoded at another JPEG quality (other bytes, the
    same picture) at other URLs with other captions; returns (input table, {copy url: original url})."""
    rng = np.random.default_rng(7)
    rows, copies = [], {}
    for i in range(12):
        shape = SHAPES[i % len(SHAPES)]
        image = draw.make_image(shape, rng, 96)
        url = web.add(f"/curation/{i}.jpg", body=draw.encode_jpeg(image, 95), content_type="image/jpeg")
        rows.append({"url": url, "caption": f"a {shape} drawn in picture number {i}"})
        if i < 4:
            copy = web.add(f"/curation/{i}-copy.jpg", body=draw.encode_jpeg(image, 70), content_type="image/jpeg")
            rows.append({"url": copy, "caption": f"the same {shape} picture {i} saved again"})
            copies[copy] = url
    path = str(tmp_path_factory.mktemp("curation") / "pairs.parquet")
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path, copies


def test_semantic_dedup_removes_re_encoded_copies_and_keeps_distinct_pictures(shapes_web, tiny_model, tmp_path):
    src, copies = shapes_web
    out = tmp_path / "out"
    assert cli_main(["run", "--input", src, "--output", str(out), *BASE, "--clip", tiny_model, "--device", "cpu",
                     "--min-similarity", "-1", "--semantic-dedup-threshold", "0.995"]) == 0
    kept = {r["url"] for r in _kept(out)}
    dropped = _rejects(out, "semantic_duplicate")
    originals = set(copies.values())
    # each copy pair keeps exactly one picture; every distinct picture stays
    for copy, original in copies.items():
        assert (copy in kept) != (original in kept), (copy, original)
    assert len(kept) == 12 and {r["url"] for r in dropped} <= set(copies) | originals
    assert len(dropped) == 4 and all("cosine" in r["error_message"] for r in dropped)
    stats = json.load(open(out / "stats.json"))
    assert {"stage": "image_dedup", "rejected": 4, "reasons": {"semantic_duplicate": 4}} in stats["stages"]
    # without the option nothing is dropped as a semantic duplicate
    plain = tmp_path / "plain"
    assert cli_main(["run", "--input", src, "--output", str(plain), *BASE, "--clip", tiny_model, "--device", "cpu",
                     "--min-similarity", "-1"]) == 0
    assert len(_kept(plain)) == 16 and not _rejects(plain, "semantic_duplicate")


def test_balance_caps_each_entry_and_can_drop_unmatched(shapes_web, tmp_path):
    src, _ = shapes_web
    entries = tmp_path / "entries.txt"
    entries.write_text("# MetaCLIP-style entries\ncircle\nstar\n")
    out = tmp_path / "out"
    assert cli_main(["run", "--input", src, "--output", str(out), *BASE, "--balance-labels", str(entries),
                     "--balance-cap", "2"]) == 0
    kept, capped = _kept(out), _rejects(out, "balance_cap")
    everything = kept + capped
    for entry in ("circle", "star"):
        matching = [r for r in everything if entry in r["caption"].split()]
        assert len(matching) > 2  # the web has more than the cap of each
        chosen = sorted(matching, key=lambda r: entry_rank(r["key"], entry))[:2]
        assert sorted(r["key"] for r in matching if r in kept) == sorted(r["key"] for r in chosen)
    unmatched = [r for r in kept if not {"circle", "star"} & set(r["caption"].split())]
    assert len(unmatched) == 16 - sum(1 for r in everything if {"circle", "star"} & set(r["caption"].split()))
    strict = tmp_path / "strict"
    assert cli_main(["run", "--input", src, "--output", str(strict), *BASE, "--balance-labels", str(entries),
                     "--balance-cap", "2", "--balance-drop-unmatched"]) == 0
    assert sorted(r["key"] for r in _kept(strict)) == sorted(r["key"] for r in kept if r not in unmatched)


def _digest(out) -> dict:
    """sha256 of every output file but the run's timings (stats.json, report.html)."""
    found = {}
    for path in sorted(glob.glob(os.path.join(out, "shards", "*")) + glob.glob(os.path.join(out, "rejects", "*", "*"))):
        found[os.path.relpath(path, out)] = hashlib.sha256(open(path, "rb").read()).hexdigest()
    return found


def test_two_direct_runner_workers_write_the_same_bytes_as_one(shapes_web, tmp_path):
    src, _ = shapes_web
    one, two = tmp_path / "one", tmp_path / "two"
    assert cli_main(["run", "--input", src, "--output", str(one), *BASE]) == 0
    assert cli_main(["run", "--input", src, "--output", str(two), *BASE, "--workers", "2"]) == 0
    assert _digest(one) and _digest(one) == _digest(two)
    counts = [json.load(open(o / "stats.json")) for o in (one, two)]
    assert [(c["input_rows"], c["kept"], c["rejected"]) for c in counts] == [(16, 16, 0)] * 2


@pytest.mark.parametrize("fmt, pil_format", [("png", "PNG"), ("webp", "WEBP")])
def test_encode_format_names_the_tar_member_and_webdataset_decodes_it(shapes_web, tmp_path, fmt, pil_format):
    import io
    import tarfile

    import webdataset as wds
    from PIL import Image

    src, _ = shapes_web
    out = tmp_path / "out"
    assert cli_main(["run", "--input", src, "--output", str(out), *BASE, "--encode-format", fmt]) == 0
    tars = sorted(glob.glob(str(out / "shards" / "*.tar")))
    with tarfile.open(tars[0]) as tar:
        members = tar.getnames()
        first = tar.extractfile(next(n for n in members if n.endswith(f".{fmt}"))).read()
    assert not any(n.endswith(".jpg") for n in members)
    assert Image.open(io.BytesIO(first)).format == pil_format
    samples = list(wds.WebDataset(tars, shardshuffle=False).decode("pil"))
    assert len(samples) == 16 and all(s[fmt].size == (64, 64) for s in samples)
