"""Semantic dedup (SemDeDup) on CLIP image embeddings.

1. Fit: spherical k-means (cosine) on a deterministic sample of the
   embeddings (the rows with the smallest hash of key and seed), greedy
   k-means++ initialization from a generator seeded with ``seed``;
   k = max(1, n // cluster_size), at most the sample size.
2. Assign every row to its nearest centroid and group small summaries
   (id, embedding, preference) per cluster.
3. Within a cluster, a row is dropped as ``semantic_duplicate`` when a
   better-ranked row has cosine similarity above ``threshold`` (the same
   ranking as near-duplicate images: longest caption, larger original, earlier
   input). Decisions are joined back to the rows by id.

Pairs split across two clusters are not compared (as in SemDeDup); near-
identical embeddings almost always share a cluster. Rows without an
``image_embedding`` pass through unchanged.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Iterable, Iterator

import apache_beam as beam
import numpy as np

from clipcurate.pipeline.stages.dedup.near import ApplyDecisions, describe, first_better_neighbours, preference, row_id


@dataclass(frozen=True)
class SemanticDedupConfig:
    threshold: float = 0.95     # cosine similarity above which the worse-ranked image is dropped
    cluster_size: int = 1000    # average rows per k-means cluster
    seed: int = 0
    fit_sample: int = 100_000   # rows the centroids are fitted on, at most
    iterations: int = 10        # k-means iterations, at most

    def __post_init__(self):
        if not -1.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be a cosine similarity in [-1, 1], got {self.threshold}")
        for name in ("cluster_size", "fit_sample", "iterations"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


def sample_rank(key: str, seed: int) -> int:
    return int.from_bytes(hashlib.blake2b(f"{seed}\x00{key}".encode(), digest_size=8).digest(), "big")


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def kmeans(x: np.ndarray, k: int, seed: int, iterations: int) -> np.ndarray:
    """Spherical k-means of unit rows ``x``: (k, dim) unit centroids, deterministic for a seed."""
    x = _unit(np.asarray(x, dtype=np.float32))
    n = len(x)
    k = max(1, min(k, n))
    rng = np.random.default_rng(seed)
    chosen = [int(rng.integers(n))]
    closest = 1.0 - x @ x[chosen[0]]            # cosine distance to the nearest chosen centroid
    trials = 2 + int(np.log(k))                  # greedy k-means++: best of a few candidates per step
    for _ in range(1, k):
        weights = np.clip(closest, 0.0, None).astype(np.float64)
        total = weights.sum()
        candidates = rng.choice(n, size=trials, p=weights / total) if total > 0 else rng.integers(n, size=trials)
        options = np.minimum(closest[None, :], 1.0 - x[candidates] @ x.T)
        best = int(np.argmin(options.sum(axis=1)))
        chosen.append(int(candidates[best]))
        closest = options[best]
    centroids = x[chosen].copy()
    labels = None
    for _ in range(iterations):
        new = np.argmax(x @ centroids.T, axis=1)
        if labels is not None and np.array_equal(new, labels):
            break
        labels = new
        sums = np.zeros_like(centroids)
        np.add.at(sums, labels, x)
        empty = ~sums.any(axis=1)
        sums[empty] = centroids[empty]          # an empty cluster keeps its centroid
        centroids = _unit(sums)
    return centroids


def fit_centroids(sample: list, n: int, config: SemanticDedupConfig) -> np.ndarray | None:
    """Centroids from the sample [(rank, embedding)], or None when there is nothing to fit."""
    if not sample:
        return None
    sample = sorted(sample, key=lambda s: s[0])
    x = np.stack([np.asarray(s[1], dtype=np.float32) for s in sample])
    return kmeans(x, max(1, n // config.cluster_size), config.seed, config.iterations)


def nearest(centroids: np.ndarray, embedding) -> int:
    return int(np.argmax(centroids @ np.asarray(embedding, dtype=np.float32)))


def semantic_decisions(summaries: Iterable[tuple], threshold: float) -> Iterator[tuple[str, tuple]]:
    """Within one cluster: (row_id, (dominator preference, message)) for every dominated row."""
    group = sorted(summaries, key=lambda s: s[2])
    if len(group) < 2:
        return
    x = _unit(np.stack([np.asarray(s[1], dtype=np.float32) for s in group]))

    def near_block(s, e):
        return x[s:e] @ x[:e].T > threshold

    for i, j in first_better_neighbours(len(group), near_block):
        sim = float(x[i] @ x[j])
        yield group[i][0], (group[j][2], f"semantic duplicate of {group[j][3]}: image embeddings' cosine {sim:.4f} > {threshold}")


class SemanticDedup(beam.PTransform):
    """rows with ``image_embedding`` -> (kept, rejects)."""

    def __init__(self, config: SemanticDedupConfig = SemanticDedupConfig()):
        super().__init__()
        self.config = config

    def expand(self, rows):
        config = self.config
        embedded = rows | "HasEmbedding" >> beam.Filter(lambda r: r.get("image_embedding") is not None)
        sample = (embedded
                  | "SampleRank" >> beam.Map(lambda r: (sample_rank(row_id(r), config.seed), r["image_embedding"]))
                  | "Sample" >> beam.combiners.Top.Of(config.fit_sample, key=lambda s: s[0], reverse=True))
        count = embedded | "Count" >> beam.combiners.Count.Globally()
        centroids = (rows.pipeline
                     | "One" >> beam.Create([None])
                     | "Fit" >> beam.Map(lambda _, s, n: fit_centroids(s, n, config),
                                         beam.pvalue.AsSingleton(sample), beam.pvalue.AsSingleton(count)))
        decisions = (
            embedded
            | "Assign" >> beam.Map(lambda r, c: (nearest(c, r["image_embedding"]),
                                                 (row_id(r), r["image_embedding"], preference(r), describe(r))),
                                   beam.pvalue.AsSingleton(centroids))
            | "GroupCluster" >> beam.GroupByKey()
            | "Dominated" >> beam.FlatMap(lambda kv: semantic_decisions(kv[1], config.threshold))
        )
        return (rows, decisions) | "Apply" >> ApplyDecisions("semantic_duplicate")
