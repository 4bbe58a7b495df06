"""Near dedup's decisions at scale: ``NearDecisions`` on N synthetic 64-bit hashes.

    python benchmarks/near_dedup_scale.py [--rows 100000 1000000] [--bands 4] [--hot 20000]

Each row has a fingerprint as the stage makes it: 8 random 64-bit keys and a 32 x 32 thumbnail
(one of 1,000 smooth random ones), with 1% planted near copies (the first key 1-6 bits from their
original's, the same thumbnail, so the confirmation holds) and one hot fingerprint (a placeholder
picture: ``--hot`` rows with the same keys and thumbnail). Each N runs the transform on the
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
import numpy as np
from apache_beam.options.pipeline_options import PipelineOptions
from PIL import Image

from clipcurate.filters.phash import band_keys
from clipcurate.pipeline.stages.dedup.near import NearDecisions, NearDedupConfig


def make_summaries(n: int, hot: int, seed: int = 0) -> tuple[list, int]:
    rng = random.Random(seed)
    nprng = np.random.default_rng(seed)
    grids = nprng.integers(0, 256, (1000, 4, 4, 3), dtype=np.uint8)
    thumbs = [np.asarray(Image.fromarray(g).resize((32, 32), Image.Resampling.BILINEAR)).tobytes() for g in grids]
    rows, planted = [], 0
    for i in range(n - hot):
        if rows and rng.random() < 0.01:
            keys, thumb = rng.choice(rows)
            first = keys[0]
            for bit in rng.sample(range(64), rng.randint(1, 6)):
                first ^= 1 << bit
            keys = (first,) + tuple(rng.getrandbits(64) for _ in range(7))
            planted += 1
        else:
            keys, thumb = tuple(rng.getrandbits(64) for _ in range(8)), thumbs[rng.randrange(len(thumbs))]
        rows.append((keys, thumb))
    rows += [rows[0]] * hot
    return ([(f"r{i}", keys, (i,), f"row {i}", thumb, None) for i, (keys, thumb) in enumerate(rows)],
            planted + max(hot - 1, 0))


def largest_group(summaries: list, bands: int) -> int:
    counts = collections.Counter()
    for keys in {s[1] for s in summaries}:
        for k in set(keys):
            counts.update(band_keys(k, bands))
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
    ap.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
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
