"""Semantic dedup (SemDeDup): k-means clusters, then near-identical embeddings dropped within a cluster."""
from __future__ import annotations

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from clipcurate.pipeline.stages.dedup.semantic import SemanticDedup, SemanticDedupConfig, kmeans

DIM = 32


def unit(v):
    return (v / np.linalg.norm(v)).astype(np.float32)


def make_rows(n_distinct: int = 60, n_planted: int = 10, seed: int = 0):
    """Distinct random embeddings, plus near-copies of the first ``n_planted`` with longer captions
    for even i (the copy wins) and equal captions for odd i (the earlier input wins)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_distinct):
        rows.append({"key": f"d{i:03d}", "url": f"http://a.example/{i}.jpg", "caption": "a photo",
                     "original_width": 300, "original_height": 200, "source_file": "in.parquet", "source_row": i,
                     "image_embedding": unit(rng.normal(size=DIM))})
    for i in range(n_planted):
        noisy = unit(rows[i]["image_embedding"] + rng.normal(scale=1e-3, size=DIM))
        rows.append({"key": f"p{i:03d}", "url": f"http://b.example/{i}.jpg",
                     "caption": "a longer photo caption" if i % 2 == 0 else "a photo",
                     "original_width": 300, "original_height": 200, "source_file": "in.parquet",
                     "source_row": n_distinct + i, "image_embedding": noisy})
    return rows


def expected(n_distinct: int = 60, n_planted: int = 10):
    kept = [f"d{i:03d}" for i in range(n_distinct) if i >= n_planted or i % 2 == 1]
    kept += [f"p{i:03d}" for i in range(n_planted) if i % 2 == 0]
    dropped = [f"d{i:03d}" for i in range(n_planted) if i % 2 == 0] + [f"p{i:03d}" for i in range(n_planted) if i % 2 == 1]
    return sorted(kept), sorted(dropped)


@pytest.mark.parametrize("reverse", [False, True])
def test_planted_duplicates_removed_and_distinct_kept(reverse):
    rows = make_rows()
    rows = rows[::-1] if reverse else rows
    kept, dropped = expected()
    with TestPipeline() as p:
        out, rejects = p | beam.Create(rows) | SemanticDedup(SemanticDedupConfig(threshold=0.95, cluster_size=10))
        assert_that(out | "K" >> beam.Map(lambda r: r["key"]), equal_to(kept), label="Kept")
        assert_that(rejects | "R" >> beam.Map(lambda r: (r["key"], r["reason"], r["stage"], "image_embedding" in r)),
                    equal_to([(k, "semantic_duplicate", "image_dedup", False) for k in dropped]), label="Rejects")
        names = {f"p{i:03d}" if i % 2 == 0 else f"d{i:03d}" for i in range(10)}
        assert_that(rejects | "M" >> beam.Map(lambda r: r["error_message"].split(" ")[3] in names),
                    equal_to([True] * len(dropped)), label="MessageNamesKept")


def test_rows_without_embeddings_pass_and_empty_input_is_fine():
    rows = [{"key": "x", "caption": "c", "source_file": "f", "source_row": 0}]
    with TestPipeline() as p:
        out, rejects = p | beam.Create(rows) | SemanticDedup()
        assert_that(out | beam.Map(lambda r: r["key"]), equal_to(["x"]), label="Kept")
        assert_that(rejects, equal_to([]), label="Rejects")
        empty, none = p | "Empty" >> beam.Create([]) | "Dedup2" >> SemanticDedup()
        assert_that(empty, equal_to([]), label="EmptyKept")


def test_kmeans_is_deterministic_and_separates_clear_clusters():
    rng = np.random.default_rng(1)
    centres = np.stack([unit(rng.normal(size=DIM)) for _ in range(4)])
    x = np.concatenate([c + rng.normal(scale=0.05, size=(50, DIM)) for c in centres]).astype(np.float32)
    a = kmeans(x, 4, seed=0, iterations=10)
    b = kmeans(x, 4, seed=0, iterations=10)
    assert np.array_equal(a, b)
    labels = np.argmax(x @ a.T, axis=1)
    for block in range(4):
        assert len(set(labels[block * 50:(block + 1) * 50])) == 1
    assert len(set(labels)) == 4


def test_threshold_is_checked():
    with pytest.raises(ValueError):
        SemanticDedupConfig(threshold=1.5)


def test_large_clusters_are_split_and_planted_copies_still_found():
    """With few clusters and a small group bound, clusters are split by hyperplanes: the decisions
    stay those of the unsplit run, and no group is much larger than the bound."""
    from clipcurate.pipeline.stages.dedup.semantic import group_of, hyperplanes, kmeans, split_bits

    rows = make_rows(n_distinct=400, n_planted=40, seed=3)
    kept, dropped = expected(n_distinct=400, n_planted=40)
    config = SemanticDedupConfig(threshold=0.95, cluster_size=1000, max_clusters=2, max_group=40)
    with TestPipeline() as p:
        out, rejects = p | beam.Create(rows) | SemanticDedup(config)
        assert_that(out | "K" >> beam.Map(lambda r: r["key"]), equal_to(kept), label="Kept")
        assert_that(rejects | "R" >> beam.Map(lambda r: r["key"]), equal_to(dropped), label="Rejects")
    # the groups those rows fall in: about max_group each
    x = np.stack([r["image_embedding"] for r in rows])
    centroids = kmeans(x, 1, 0, 10)
    planes = hyperplanes(DIM, 0)
    assert split_bits(len(rows), 40) == 4
    groups = {}
    for e in x:
        g = group_of(e, centroids, {0: len(rows)}, config, planes)
        groups[g] = groups.get(g, 0) + 1
    assert len(groups) >= 12 and max(groups.values()) <= 3 * 40


def test_a_hot_group_is_compared_in_chunks_with_the_documented_effect():
    """2,000 copies of one embedding with max_group 100: every chunk of 100 keeps its best row, so 20
    rows stay (duplicates kept, never a distinct row dropped) and no comparison spans more than 100 rows."""
    from clipcurate.pipeline.stages.dedup.semantic import semantic_decisions

    e = unit(np.ones(DIM))
    summaries = [(f"r{i:04d}", e, (i,), f"row {i}") for i in range(2000)]
    dropped = {row for row, _ in semantic_decisions(summaries, 0.95, max_group=100)}
    assert len(dropped) == 2000 - 20
    assert {f"r{i:04d}" for i in range(0, 2000, 100)}.isdisjoint(dropped)
    small = [(f"s{i}", e, (i,), f"row {i}") for i in range(150)]  # under twice the bound: one comparison
    assert len({row for row, _ in semantic_decisions(small, 0.95, max_group=100)}) == 149
