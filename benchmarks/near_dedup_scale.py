"""Near dedup's decisions at scale: ``NearDecisions`` on N synthetic 64-bit hashes.

    python benchmarks/near_dedup_scale.py [--rows 100000 1000000] [--bands 4] [--hot 20000]

Each row has a fingerprint as the stage makes it: 8 random 64-bit keys and a 32 x 32 thumbnail
(one of 1,000 smooth random ones), generated on the workers in chunks of 10,000 rows, with 1%
planted near copies (the first key 1-6 bits from their
original's, the same thumbnail, so the confirmation holds) and one hot fingerprint (a placeholder
picture: ``--hot`` rows with the same keys and thumbnail). Each N runs the transform on the
DirectRunner in this process, with the runtime settings of `clipcurate run` (allocator, garbage
collector thresholds); it prints the wall time, the ratio of times against the smallest N
(target: <= 12x for 10x the rows), the decisions found against the planted copies, and the largest
group compared (distinct hashes in one band value, which ``max_group`` caps).
Target (issue 12): linear growth, and a largest group that stays bounded.
"""
from __future__ import annotations

import argparse
import collections
import functools
import math
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


CHUNK = 10_000  # rows generated together (a planted copy copies an earlier row of its chunk)


@functools.lru_cache(maxsize=1)
def _thumbs(seed: int) -> tuple:
    nprng = np.random.default_rng(seed)
    grids = nprng.integers(0, 256, (1000, 4, 4, 3), dtype=np.uint8)
    return tuple(np.asarray(Image.fromarray(g).resize((32, 32), Image.Resampling.BILINEAR)).tobytes() for g in grids)


def chunk_summaries(chunk: int, n: int, hot: int, seed: int = 0) -> tuple[list, int]:
    """Rows [chunk * CHUNK, ...) of the ``n - hot`` random ones, or (chunk -1) the ``hot`` copies of row
    0; each is a summary as the stage makes it. Returns (summaries, planted copies among them).
    The same arguments give the same rows, on the launcher and on the workers alike."""
    thumbs = _thumbs(seed)
    if chunk < 0:
        first, _ = chunk_summaries(0, n, 0, seed)
        keys, thumb = first[0][1], first[0][4]
        start = n - hot
        return [(f"r{start + i}", keys, (start + i,), f"row {start + i}", thumb, None) for i in range(hot)], max(hot - 1, 0)
    rng = random.Random(seed * 1_000_003 + chunk)
    rows, planted = [], 0
    start = chunk * CHUNK
    for _ in range(start, min(start + CHUNK, n - hot)):
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
    return [(f"r{start + i}", keys, (start + i,), f"row {start + i}", thumb, None)
            for i, (keys, thumb) in enumerate(rows)], planted


def chunks(n: int, hot: int) -> list[int]:
    return list(range(math.ceil((n - hot) / CHUNK))) + ([-1] if hot else [])


def planted_and_largest_group(n: int, hot: int, bands: int) -> tuple[int, int]:
    """Planted copies and the largest band group (distinct hashes in one band value), chunk by chunk."""
    counts, planted, seen_hot = collections.Counter(), 0, False
    for c in chunks(n, hot):
        summaries, p = chunk_summaries(c, n, hot)
        planted += p
        if c < 0:  # the hot rows repeat row 0's keys: no new distinct hash
            continue
        for keys in {s[1] for s in summaries}:
            for k in set(keys):
                counts.update(band_keys(k, bands))
    return planted, max(counts.values())


def run(n: int, hot: int, config: NearDedupConfig) -> tuple[float, int]:
    """The transform on the summaries, generated on the workers (the launcher holds none of them)."""
    found = beam.metrics.Metrics.counter("bench", "decisions")
    t0 = time.perf_counter()
    p = beam.Pipeline(options=PipelineOptions(["--runner=DirectRunner"]))
    _ = (p | beam.Create(chunks(n, hot))
         | beam.FlatMap(lambda c: chunk_summaries(c, n, hot)[0]).with_output_types(typing.Any)
         | NearDecisions(config) | beam.Map(lambda _: found.inc()))
    result = p.run()
    result.wait_until_finish()
    wall = time.perf_counter() - t0
    counters = result.metrics().query(beam.metrics.MetricsFilter().with_name("decisions"))["counters"]
    return wall, int(sum(c.committed for c in counters))


def main() -> int:
    from clipcurate.pipeline.cli.run import tune_gc, use_system_allocator

    use_system_allocator()  # the runtime settings `clipcurate run` applies before its pipeline
    tune_gc()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--bands", type=int, default=NearDedupConfig().bands)
    ap.add_argument("--hot", type=int, default=20_000)
    args = ap.parse_args()
    config = NearDedupConfig(bands=args.bands)
    first = None
    for n in args.rows:
        hot = min(args.hot, n // 5)
        wall, decisions = run(n, hot, config)
        planted, largest = planted_and_largest_group(n, hot, args.bands)
        first = first or (n, wall)
        print(f"{n:>9,} hashes: {wall:7.1f} s ({n / wall:,.0f}/s), {decisions:,} decisions for {planted:,} planted "
              f"copies, largest band group {largest:,} distinct hashes "
              f"(cap {config.max_group:,}); x{wall / first[1]:.1f} time for x{n / first[0]:.0f} rows", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
