"""The Bloom filter that lets only candidate fingerprints join near dedup's pairs."""
from __future__ import annotations

import random

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from clipcurate.pipeline.bloom import BloomFn, may_hold


def test_every_id_put_in_is_found_and_few_others_are():
    r = random.Random(2)
    ids = [f"{r.getrandbits(64):016x}" for _ in range(20_000)]
    others = [f"{r.getrandbits(64):016x}" for _ in range(20_000)]
    fn = BloomFn()
    # built in three parts and merged, as a combiner's accumulators are across bundles
    parts = [fn.create_accumulator() for _ in range(3)]
    for i, ident in enumerate(ids + ["not hex: any string"]):
        fn.add_input(parts[i % 3], ident)
    bloom = fn.extract_output(fn.merge_accumulators(parts))
    assert all(may_hold(bloom, i) for i in ids) and may_hold(bloom, "not hex: any string")
    assert sum(may_hold(bloom, o) for o in others) <= 5  # ~1e-8 each for 20k ids


def test_a_side_input_filter_keeps_the_ids_of_another_collection():
    r = random.Random(3)
    wanted = [f"{r.getrandbits(64):016x}" for _ in range(50)]
    rest = [f"{r.getrandbits(64):016x}" for _ in range(2_000)]
    with TestPipeline() as p:
        bloom = beam.pvalue.AsSingleton(p | "Wanted" >> beam.Create(wanted) | beam.CombineGlobally(BloomFn()))
        kept = (p | "All" >> beam.Create(rest + wanted) | beam.Filter(lambda i, b: may_hold(b, i), bloom))
        assert_that(kept, equal_to(wanted))


def test_an_empty_filter_holds_nothing():
    with TestPipeline() as p:
        bloom = beam.pvalue.AsSingleton(p | "None" >> beam.Create([]) | beam.CombineGlobally(BloomFn()))
        kept = p | "All" >> beam.Create(["00000000000000ab", "x"]) | beam.Filter(lambda i, b: may_hold(b, i), bloom)
        assert_that(kept, equal_to([]))
