"""Semantic dedup (SemDeDup) on CLIP image embeddings, with bounded work per row.

1. Fit: spherical k-means (cosine) on a deterministic sample of at most
   ``fit_sample`` embeddings (the rows with the smallest hash of key and
   seed), greedy k-means++ initialization from a generator seeded with
   ``seed``; k = n // cluster_size, between 1 and ``max_clusters`` (and at
   most the sample size). The fit is one Map on a bounded sample, whatever n.
2. Assign every row to its nearest centroid, per element (the centroids are a
   side input of at most ``max_clusters`` rows). A cluster of more than
   ``max_group`` rows (known from a per-cluster count) is split further by the
   signs of the embedding's projections on a few fixed random directions
   (random-hyperplane LSH: two embeddings with cosine c share a sign with
   probability 1 - acos(c)/pi, so 0.99 per direction at c = 0.9995): about
   log2(size / max_group) directions, so the groups hold about ``max_group``.
   A group still above ``2 * max_group`` (many almost identical embeddings)
   is compared in chunks of ``max_group`` rows in preference order; pairs in
   different chunks are not compared, so both are kept: nothing is dropped
   wrongly, a few duplicates stay.
3. Within a group, a row is dropped as ``semantic_duplicate`` when a
   better-ranked row has cosine similarity above ``threshold`` (the same
   ranking as near-duplicate images: longest caption, larger original, earlier
   input). Decisions are joined back to the rows by id.

Pairs split across two clusters (or hyperplanes) are not compared (as in
SemDeDup); near-identical embeddings almost always share both. Rows without an
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
    max_clusters: int = 1024    # k at most, whatever the number of rows
    max_group: int = 5000       # rows compared together, about: larger clusters are split (see above)

    def __post_init__(self):
        if not -1.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be a cosine similarity in [-1, 1], got {self.threshold}")
        for name in ("cluster_size", "fit_sample", "iterations", "max_clusters", "max_group"):
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
    return kmeans(x, min(config.max_clusters, max(1, n // config.cluster_size)), config.seed, config.iterations)


HYPERPLANE_SEED = 1_000_003
MAX_HYPERPLANES = 24


def hyperplanes(dim: int, seed: int) -> np.ndarray:
    """Fixed random directions for splitting large clusters (the same on every worker)."""
    return np.random.default_rng([HYPERPLANE_SEED, seed]).normal(size=(MAX_HYPERPLANES, dim)).astype(np.float32)


def split_bits(cluster_rows: int, max_group: int) -> int:
    """Hyperplanes needed so that a cluster's groups hold about ``max_group`` rows."""
    bits = 0
    while cluster_rows > max_group << bits and bits < MAX_HYPERPLANES:
        bits += 1
    return bits


def group_of(embedding, centroids: np.ndarray, counts: dict, config: "SemanticDedupConfig", planes) -> tuple:
    """(cluster, hyperplane signs) of one embedding: the group it is compared in."""
    e = np.asarray(embedding, dtype=np.float32)
    cluster = nearest(centroids, e)
    bits = split_bits(counts.get(cluster, 0), config.max_group)
    if bits == 0:
        return cluster, 0
    signs = (planes[:bits] @ e) >= 0
    return cluster, int(signs.astype(np.int64) @ (1 << np.arange(bits, dtype=np.int64)))


def chunks(group: list, max_group: int) -> Iterator[list]:
    """A group sorted best first, in pieces compared on their own once it is past twice the bound."""
    if len(group) <= 2 * max_group:
        yield group
        return
    for start in range(0, len(group), max_group):
        yield group[start:start + max_group]


def nearest(centroids: np.ndarray, embedding) -> int:
    return int(np.argmax(centroids @ np.asarray(embedding, dtype=np.float32)))


def semantic_decisions(summaries: Iterable[tuple], threshold: float,
                       max_group: int = SemanticDedupConfig.max_group) -> Iterator[tuple[str, tuple]]:
    """Within one group: (row_id, (dominator preference, message)) for every dominated row."""
    for part in chunks(sorted(summaries, key=lambda s: s[2]), max_group):
        yield from _decide(part, threshold)


def _decide(group: list, threshold: float) -> Iterator[tuple[str, tuple]]:
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
        summaries = embedded | "Summary" >> beam.Map(
            lambda r: (row_id(r), r["image_embedding"], preference(r), describe(r)))
        sizes = (summaries
                 | "Cluster" >> beam.Map(lambda s, c: nearest(c, s[1]), beam.pvalue.AsSingleton(centroids))
                 | "ClusterSizes" >> beam.combiners.Count.PerElement())
        planes = _Planes(config.seed)
        decisions = (
            summaries
            | "Assign" >> beam.Map(lambda s, c, n: (group_of(s[1], c, n, config, planes(len(s[1]))), s),
                                   beam.pvalue.AsSingleton(centroids), beam.pvalue.AsDict(sizes))
            | "GroupCluster" >> beam.GroupByKey()
            | "Dominated" >> beam.FlatMap(lambda kv: semantic_decisions(kv[1], config.threshold, config.max_group))
        )
        return (rows, decisions) | "Apply" >> ApplyDecisions("semantic_duplicate")


class _Planes:
    """The hyperplanes for an embedding size, made once per worker."""

    def __init__(self, seed: int):
        self.seed = seed
        self._planes = {}

    def __call__(self, dim: int) -> np.ndarray:
        if dim not in self._planes:
            self._planes[dim] = hyperplanes(dim, self.seed)
        return self._planes[dim]
