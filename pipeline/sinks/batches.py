"""Hard-negative batches (TOnICS): order the shards so that each run of B samples shares a parent concept.

A trainer that reads the shards in order with batch size B then meets in-batch negatives that are hard
(a boxer among other dog breeds, not among trucks). The layout, deterministic like the key layout:

1. Each sample's group is its caption's parent concept (``filters.ontology``), or MIXED.
2. Within a group, samples in key order are cut into batches of B. A parent's last, incomplete batch
   goes to MIXED with the samples that name no concept; MIXED is cut into batches of B the same way.
3. The batches are ordered by a hash of (group, batch number), which spreads every parent's batches,
   and the MIXED ones, evenly through the stream; MIXED's last batch (the only one that can be short)
   goes last. A sample's place is (batch ordinal, key): a shard holds samples_per_shard / B whole batches.

Ranks come from keys alone (group and key range buckets, their counts, the first key of every batch as a
small side input, a bisect), so a parent with millions of samples is no hot key and the image bytes are
not shuffled here: each sample gets its batch ordinal in a Map.
"""
from __future__ import annotations

import bisect
import hashlib
import math
from dataclasses import dataclass

import apache_beam as beam

from clipcurate.filters.ontology import ConceptMatcher, load_ontology
from clipcurate.pipeline.stages.base import key_range

MIXED = ""  # the group of samples that name no concept, and of parents' incomplete last batches
KEYS_PER_BUCKET = 100_000


@dataclass(frozen=True)
class BatchLayoutConfig:
    ontology_file: str
    batch_size: int

    def __post_init__(self):
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be >= 2, got {self.batch_size}")


class _Concepts:
    """The matcher, loaded once per worker."""

    def __init__(self, path: str):
        self.path = path
        self._matcher = None

    def __call__(self, sample: dict) -> str:
        if self._matcher is None:
            self._matcher = ConceptMatcher(load_ontology(self.path))
        return self._matcher.parent_of(sample.get("caption"), sample.get("label")) or MIXED


class _BatchStarts(beam.DoFn):
    """((group, bucket), keys) -> (group, key) for every key whose rank in its group is a multiple of B."""

    def __init__(self, batch_size: int):
        self.b = batch_size
        self._offsets = None

    def process(self, item, bucket_counts):
        if self._offsets is None:
            self._offsets, totals = {}, {}
            for (group, bucket) in sorted(bucket_counts):
                self._offsets[(group, bucket)] = totals.get(group, 0)
                totals[group] = totals.get(group, 0) + bucket_counts[(group, bucket)]
        (group, bucket), keys = item
        offset = self._offsets[(group, bucket)]
        for i, key in enumerate(sorted(keys)):
            if (offset + i) % self.b == 0:
                yield group, key


def batch_starts(pairs, batch_size: int, label: str):
    """(group, key) pairs -> {group: sorted first keys of its batches} (a PCollection of one dict)."""
    counts = pairs | f"{label}Counts" >> beam.combiners.Count.PerKey()
    buckets = pairs | f"{label}Buckets" >> beam.Map(
        lambda gk, n: ((gk[0], key_range(gk[1], max(1, math.ceil(n[gk[0]] / KEYS_PER_BUCKET)))), gk[1]),
        beam.pvalue.AsDict(counts))
    bucket_counts = (buckets | f"{label}BucketIds" >> beam.Map(lambda kv: kv[0])
                     | f"{label}BucketCounts" >> beam.combiners.Count.PerElement())
    return (buckets
            | f"{label}Group" >> beam.GroupByKey()
            | f"{label}Starts" >> beam.ParDo(_BatchStarts(batch_size), beam.pvalue.AsDict(bucket_counts))
            | f"{label}ByGroup" >> beam.GroupByKey()
            | f"{label}Sorted" >> beam.MapTuple(lambda g, keys: (g, sorted(keys))))


def batch_number(starts: dict, group: str, key: str) -> int:
    return bisect.bisect_right(starts[group], key) - 1


def regroup(group: str, key: str, starts: dict, counts: dict, b: int) -> str:
    """A parent's sample in its incomplete last batch moves to MIXED."""
    if group != MIXED and batch_number(starts, group, key) >= counts[group] // b:
        return MIXED
    return group


def _order_hash(group: str, number: int) -> bytes:
    return hashlib.blake2b(f"{group}\x00{number}".encode(), digest_size=8).digest()


def batch_ordinals(counts: dict, mixed_count: int, b: int) -> dict:
    """{(group, batch number): place in the stream}: full batches in hash order, MIXED's short one last."""
    batches = [(g, i) for g, n in counts.items() if g != MIXED for i in range(n // b)]
    mixed = math.ceil(mixed_count / b)
    short = mixed_count % b != 0
    batches += [(MIXED, i) for i in range(mixed - 1 if short else mixed)]
    ordered = sorted(batches, key=lambda gi: (_order_hash(*gi), gi))
    if short:
        ordered.append((MIXED, mixed - 1))
    return {gi: n for n, gi in enumerate(ordered)}


class OntologyLayout(beam.PTransform):
    """samples -> (batch ordinal, sample); the writer puts samples_per_shard / B batches in a shard."""

    def __init__(self, config: BatchLayoutConfig):
        super().__init__()
        self.config = config

    def expand(self, samples):
        b, concepts = self.config.batch_size, _Concepts(self.config.ontology_file)
        first = samples | "Concept" >> beam.Map(lambda s: (concepts(s), s["key"]))
        counts = beam.pvalue.AsDict(first | "GroupCounts" >> beam.combiners.Count.PerKey())
        starts = beam.pvalue.AsDict(batch_starts(first, b, "Parent"))
        second = first | "Regroup" >> beam.Map(lambda gk, s, n: (regroup(gk[0], gk[1], s, n, b), gk[1]),
                                                starts, counts)
        mixed = second | "Mixed" >> beam.Filter(lambda gk: gk[0] == MIXED)
        mixed_starts = beam.pvalue.AsDict(batch_starts(mixed, b, "Mixed"))
        mixed_count = mixed | "MixedCount" >> beam.combiners.Count.Globally()
        ordinals = (samples.pipeline
                    | "One" >> beam.Create([None])
                    | "Ordinals" >> beam.Map(lambda _, n, m: batch_ordinals(n, m, b), counts,
                                             beam.pvalue.AsSingleton(mixed_count)))

        def place(sample, s, n, ms, order):
            group = regroup(concepts(sample), sample["key"], s, n, b)
            number = batch_number(ms if group == MIXED else s, group, sample["key"])
            return order[(group, number)], sample

        return samples | "Place" >> beam.Map(place, starts, counts, mixed_starts, beam.pvalue.AsSingleton(ordinals))
