"""Near dedup's decisions at scale: ``NearDecisions`` on N synthetic 64-bit hashes.

    python benchmarks/near_dedup_scale.py [--rows 100000 1000000] [--bands 4] [--hot 20000]

The hashes are random, with 1% planted near copies (1-6 bits flipped) and one hot hash (a
placeholder picture: ``--hot`` rows with the same hash). Each N runs the transform on the
DirectRunner in this process; it prints the wall time, the ratio of times against the smallest N
(target: <= 12x for 10x the rows), the decisions found against the planted copies, and the largest
group compared (distinct hashes in one band value, which ``max_group`` caps).
Target (issue 12): linear growth, and a largest group that stays bounded.
"""
from __future__ import annotations

import argparse
import collections
import random
import sys
import time
import typing

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from clipcurate.filters.phash import band_keys
from clipcurate.pipeline.stages.dedup.near import NearDecisions, NearDedupConfig


def make_summaries(n: int, hot: int, seed: int = 0) -> tuple[list, int]:
    rng = random.Random(seed)
    values, planted = [], 0
    for i in range(n - hot):
        if values and rng.random() < 0.01:
            v = rng.choice(values)
            for bit in rng.sample(range(64), rng.randint(1, 6)):
                v ^= 1 << bit
            planted += 1
        else:
            v = rng.getrandbits(64)
        values.append(v)
    values += [values[0]] * hot
    return [(f"r{i}", v, (i,), f"row {i}") for i, v in enumerate(values)], planted + max(hot - 1, 0)


def largest_group(summaries: list, bands: int) -> int:
    counts = collections.Counter()
    for v in {s[1] for s in summaries}:
        counts.update(band_keys(v, bands))
    return max(counts.values())


def run(summaries: list, config: NearDedupConfig) -> tuple[float, int]:
    found = beam.metrics.Metrics.counter("bench", "decisions")
    t0 = time.perf_counter()
    p = beam.Pipeline(options=PipelineOptions(["--runner=DirectRunner"]))
    _ = (p | beam.Create(range(len(summaries))) | beam.Map(lambda i: summaries[i]).with_output_types(typing.Any)
         | NearDecisions(config) | beam.Map(lambda _: found.inc()))
    result = p.run()
    result.wait_until_finish()
    wall = time.perf_counter() - t0
    counters = result.metrics().query(beam.metrics.MetricsFilter().with_name("decisions"))["counters"]
    return wall, int(sum(c.committed for c in counters))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--bands", type=int, default=NearDedupConfig().bands)
    ap.add_argument("--hot", type=int, default=20_000)
    args = ap.parse_args()
    config = NearDedupConfig(bands=args.bands)
    first = None
    for n in args.rows:
        summaries, planted = make_summaries(n, min(args.hot, n // 5))
        wall, decisions = run(summaries, config)
        first = first or (n, wall)
        print(f"{n:>9,} hashes: {wall:7.1f} s ({n / wall:,.0f}/s), {decisions:,} decisions for {planted:,} planted "
              f"copies, largest band group {largest_group(summaries, args.bands):,} distinct hashes "
              f"(cap {config.max_group:,}); x{wall / first[1]:.1f} time for x{n / first[0]:.0f} rows", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
