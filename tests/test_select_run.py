"""The selection rules through ``clipcurate run --clip``: thresholds come from combiners (quantiles),
never from a list of every similarity; selection.json says what was used."""
from __future__ import annotations

import glob
import json

import pyarrow.parquet as pq
import pytest

from clipcurate.pipeline.cli import main as cli_main
from test_run import MIXED_ARGS, write_mixed_input


@pytest.fixture(scope="module")
def mixed_input(web, tmp_path_factory):
    return write_mixed_input(web, tmp_path_factory.mktemp("select-input"))


def _run(src, out, model, *extra):
    assert cli_main(["run", "--input", src, "--output", str(out), *MIXED_ARGS, "--clip", model, "--device", "cpu",
                     *extra]) == 0
    kept = pq.read_table(sorted(glob.glob(str(out / "shards" / "*.parquet")))).to_pylist() \
        if glob.glob(str(out / "shards" / "*.parquet")) else []
    dropped = [r for f in glob.glob(str(out / "rejects" / "*" / "*.parquet")) for r in pq.read_table(f).to_pylist()
               if r["reason"] == "low_similarity"]
    return kept, dropped, json.load(open(out / "selection.json"))


def test_keep_fraction_keeps_the_top_share_by_similarity(mixed_input, tiny_model, tmp_path):
    _, src = mixed_input
    kept, dropped, selection = _run(src, tmp_path / "half", tiny_model, "--keep-fraction", "0.5")
    scored = len(kept) + len(dropped)
    assert selection["method"] == "keep_fraction" and selection["keep_fraction"] == 0.5
    assert scored >= 4 and abs(len(kept) - scored / 2) <= 1
    assert min(r["similarity"] for r in kept) >= selection["threshold"] > max(r["similarity"] for r in dropped) - 1e-6
    everything, none_dropped, _ = _run(src, tmp_path / "all", tiny_model, "--keep-fraction", "1")
    assert len(everything) == scored and not none_dropped


def test_min_similarity_is_a_fixed_threshold(mixed_input, tiny_model, tmp_path):
    _, src = mixed_input
    kept, dropped, selection = _run(src, tmp_path / "t", tiny_model, "--min-similarity", "0.0")
    assert selection == {"method": "threshold", "threshold": 0.0}
    assert all(r["similarity"] >= 0.0 for r in kept) and all(r["similarity"] < 0.0 for r in dropped)


def test_the_default_rule_records_per_image_threshold_quantiles(mixed_input, tiny_model, tmp_path):
    _, src = mixed_input
    kept, dropped, selection = _run(src, tmp_path / "d", tiny_model)
    assert selection["method"] == "null_calibrated"
    # the mixed web has few pairs: fewer reference captions than min_references, so every pair is kept
    assert selection["uncalibrated_pairs"] == len(kept) + len(dropped) and not dropped
    assert selection["threshold"] is None and selection["threshold_quantiles"] is None
