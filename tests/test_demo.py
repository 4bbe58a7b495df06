"""The demo end to end on another seed than the demo's default: the whole product on generated data."""
from __future__ import annotations

import glob
import json
import os

import pyarrow.parquet as pq
import pytest

from clipcurate.pipeline.cli import main as cli_main
from clipcurate.pipeline.cli.demo import truth_rates


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    assert cli_main(["demo", "--output", str(out), "--seed", "3", "--web-images", "240", "--device", "cpu"]) == 0
    return out


def _rows(folder, pattern):
    return [r for f in sorted(glob.glob(os.path.join(folder, pattern))) for r in pq.read_table(f).to_pylist()]


def test_every_web_row_is_accounted_for(demo):
    curated = demo / "curated"
    stats = json.load(open(curated / "stats.json"))
    web = pq.read_table(demo / "web" / "pairs.parquet").num_rows
    assert stats["input_rows"] == web and stats["accounted_for"]
    pairs = _rows(curated, "shards/*.parquet")
    assert len({p["url"] for p in pairs}) == len(pairs) and len({p["sha256"] for p in pairs}) == len(pairs)
    assert all(p["similarity"] is not None and p["textness"] is not None for p in pairs)
    assert glob.glob(str(curated / "shards" / "*.image_embedding.npy"))


def test_foreign_and_broken_rows_never_reach_the_shards(demo):
    pairs = _rows(demo / "curated", "shards/*.parquet")
    assert not [p for p in pairs if p["truth"] in ("broken", "foreign_de", "foreign_fr")]
    rejects = _rows(demo / "curated", "rejects/*/*.parquet")
    assert {r["stage"] for r in rejects if r["truth"] == "broken"} <= {"download", "image", "dedup"}
    assert {r["reason"] for r in rejects if r["truth"].startswith("foreign")} <= {"language", "duplicate_pair", "duplicate_url"}
    # and no English caption (right, wrong, bare label, broken link) is lost to the language filter (issue 16);
    # copies (duplicate_row, same_picture) carry their source row's caption, which may be foreign
    assert not [(r["truth"], r["caption"]) for r in rejects
                if r["truth"] in ("match", "mismatch", "label_only", "broken") and r["stage"] == "language"]


def test_label_only_captions_became_prompts(demo):
    pairs = [p for p in _rows(demo / "curated", "shards/*.parquet") if p["truth"] == "label_only"]
    assert pairs, "some bare-label pairs are kept"
    assert all(p["caption"].startswith("a photo of a") and p["raw_caption"] for p in pairs)


def test_clip_selection_keeps_right_captions_and_drops_mismatches(demo):
    rates = truth_rates(str(demo / "curated"))
    matched, _ = rates["match"]
    mismatched, _ = rates["mismatch"]
    assert mismatched <= 0.05  # the acceptance, with the default selection
    assert matched >= 0.95
