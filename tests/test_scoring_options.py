"""Scoring options through ``clipcurate run --clip``: a Hugging Face CLIP folder end to end, and the
textness bias, which moves the similarity but not the embeddings the shards keep."""
from __future__ import annotations

import glob
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import webdataset as wds

from clipcurate.pipeline.cli import main as cli_main
from clipcurate.pipeline.clip.scorer import ClipScorer, ScorerConfig
from clipcurate.pipeline.clip.textness import TextnessProbe, default_probe_path
from test_run import MIXED_ARGS, write_mixed_input


@pytest.fixture(scope="module")
def mixed_input(web, tmp_path_factory):
    return write_mixed_input(web, tmp_path_factory.mktemp("scoring-input"))


def _shards(out):
    """(parquet rows, image embeddings, text embeddings) in Parquet order, over all shards."""
    files = sorted(glob.glob(str(out / "shards" / "*.parquet")))
    rows = pq.read_table(files).to_pylist()
    images = np.concatenate([np.load(f[: -len(".parquet")] + ".image_embedding.npy") for f in files])
    texts = np.concatenate([np.load(f[: -len(".parquet")] + ".text_embedding.npy") for f in files])
    return rows, images.astype(np.float32), texts.astype(np.float32)


def test_hf_clip_folder_scores_a_whole_run(mixed_input, tiny_hf_clip, tmp_path):
    _, src = mixed_input
    out = tmp_path / "out"
    assert cli_main(["run", "--input", src, "--output", str(out), *MIXED_ARGS, "--clip", f"hf:{tiny_hf_clip}",
                     "--device", "cpu", "--min-similarity", "-1"]) == 0
    rows, images, texts = _shards(out)
    assert len(rows) >= 4 and images.shape == texts.shape == (len(rows), 16)
    assert all(r["similarity"] is not None for r in rows)
    assert np.allclose(np.sum(images * texts, axis=1), [r["similarity"] for r in rows], atol=2e-3)
    # the stored text embeddings are the model's own, for the caption the tar holds
    model = ClipScorer.load(ScorerConfig(spec=f"hf:{tiny_hf_clip}", device="cpu"))
    captions = {s["__key__"]: s["txt"].decode() for s in wds.WebDataset(sorted(glob.glob(str(out / "shards" / "*.tar"))),
                                                                       shardshuffle=False)}
    assert np.allclose(model.embed_texts([captions[r["key"]] for r in rows]), texts, atol=2e-3)
    assert json.load(open(out / "stats.json"))["kept"] == len(rows)


def test_textness_bias_moves_similarity_not_the_stored_embeddings(mixed_input, tiny_model, tmp_path):
    _, src = mixed_input
    runs = {}
    for bias in ("0", "2"):
        out = tmp_path / f"bias{bias}"
        assert cli_main(["run", "--input", src, "--output", str(out), *MIXED_ARGS, "--clip", tiny_model,
                         "--device", "cpu", "--min-similarity", "-10", "--textness-bias", bias]) == 0
        runs[bias] = _shards(out)
    (rows0, images0, texts0), (rows2, images2, texts2) = runs["0"], runs["2"]
    assert [r["key"] for r in rows0] == [r["key"] for r in rows2]
    assert np.array_equal(texts0, texts2) and np.array_equal(images0, images2)
    assert np.allclose(np.linalg.norm(texts2, axis=1), 1.0, atol=2e-3)  # normalized, no bias added
    direction = TextnessProbe.load(default_probe_path(tiny_model)).direction
    moved = np.array([b["similarity"] - a["similarity"] for a, b in zip(rows0, rows2)])
    assert np.allclose(moved, 2.0 * images2 @ direction, atol=5e-3)
    assert np.abs(moved).max() > 0.01  # the bias did move the scores


def test_textness_bias_decides_fixed_thresholds(mixed_input, tiny_model, tmp_path):
    """With --min-similarity, a negative bias takes pairs below the threshold that were above it."""
    _, src = mixed_input
    base, images, _ = _shards(_run_keep_all(src, tiny_model, tmp_path / "all"))
    direction = TextnessProbe.load(default_probe_path(tiny_model)).direction
    biased = np.array([r["similarity"] for r in base]) - 3.0 * images @ direction
    threshold = float(np.median(biased))
    out = tmp_path / "cut"
    assert cli_main(["run", "--input", src, "--output", str(out), *MIXED_ARGS, "--clip", tiny_model, "--device", "cpu",
                     "--min-similarity", str(threshold), "--textness-bias", "-3"]) == 0
    kept = {r["key"] for r in pq.read_table(sorted(glob.glob(str(out / "shards" / "*.parquet")))).to_pylist()}
    expected = {r["key"] for r, s in zip(base, biased) if s >= threshold + 1e-3}
    borderline = {r["key"] for r, s in zip(base, biased) if abs(s - threshold) <= 1e-3}
    assert expected <= kept <= expected | borderline and 0 < len(kept) < len(base)


def _run_keep_all(src, model, out):
    assert cli_main(["run", "--input", src, "--output", str(out), *MIXED_ARGS, "--clip", model, "--device", "cpu",
                     "--min-similarity", "-10"]) == 0
    return out
