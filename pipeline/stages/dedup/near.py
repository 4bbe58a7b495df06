"""Near-duplicate images: perceptual hashes within a small Hamming distance.

Every row gets ``phash`` (16 hex digits, see ``filters.phash``). The 64 bits
are split into ``bands`` bands; two hashes within ``max_distance`` <
``bands`` bits agree on at least one band, so grouping by (band, bits) finds
every close pair without comparing all rows with all rows. Only small
summaries (id, hash, preference) are grouped, never the images.

Which row stays: rows are ranked by the longest caption (characters), then
the larger original image (pixels), then input order (``source_file``,
``source_row``, ``key``). A row is dropped as ``near_duplicate_image`` when
some better-ranked row lies within the distance; each band emits such
"X is dominated by Y" decisions, the decisions are grouped by row, and a row
with none is kept, exactly once. The message names the best-ranked close
row. The rule is local, not transitive: in a chain A ~ B ~ C (A best, A not
close to C) both B and C are dropped, since C's better neighbour B exists,
even though B is dropped too (SemDeDup's rule as well).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import apache_beam as beam
import numpy as np

from clipcurate.filters.base import reject_row
from clipcurate.filters.phash import BITS, band_keys, phash
from clipcurate.schemas.records import input_order, where
from clipcurate.pipeline.stages.base import REJECTS, RowCheckDoFn, split

# pairs compared per block in the dominance search (bounds memory per group)
BLOCK_PAIRS = 1 << 22


@dataclass(frozen=True)
class NearDedupConfig:
    max_distance: int = 6   # Hamming distance between 64-bit pHashes, inclusive
    bands: int = 8          # must be > max_distance (pigeonhole)

    def __post_init__(self):
        if not 1 <= self.bands <= BITS:
            raise ValueError(f"bands must be in 1..{BITS}, got {self.bands}")
        if not 0 <= self.max_distance < self.bands:
            raise ValueError(f"max_distance must be in 0..bands-1 ({self.bands - 1}), got {self.max_distance}")


# --- shared with semantic dedup: ranking, dominance, applying decisions -------------------------

def preference(row: dict) -> tuple:
    """Smaller is better: longest caption, then larger original image, then earlier input."""
    w = row.get("original_width") or row.get("width") or 0
    h = row.get("original_height") or row.get("height") or 0
    return (-len(row.get("caption") or ""), -int(w) * int(h), input_order(row))


def row_id(row: dict) -> str:
    return f"{row.get('key')}\x00{row.get('source_file')}\x00{row.get('source_row')}"


def describe(row: dict) -> str:
    return f"{row.get('key')} ({where(row)}, {row.get('url')})"


def first_better_neighbours(n: int, near_block: Callable[[int, int], np.ndarray]) -> Iterator[tuple[int, int]]:
    """(i, j) for each i in 0..n-1 with j the smallest index < i that is near i.

    Rows are indexed best first; ``near_block(s, e)`` is an (e - s, e) bool
    matrix: row s + a is near row b. Blocks keep memory bounded.
    """
    s = 1
    while s < n:
        e = min(n, s + max(1, BLOCK_PAIRS // n))
        near = near_block(s, e)
        near &= np.arange(e)[None, :] < np.arange(s, e)[:, None]
        hit = near.any(axis=1)
        first = near.argmax(axis=1)
        for a in np.flatnonzero(hit):
            yield s + int(a), int(first[a])
        s = e


class _ApplyDecisions(beam.DoFn):
    def __init__(self, reason: str):
        self.reason = reason

    def process(self, item):
        _, grouped = item
        decisions = list(grouped["decisions"])
        best = min(decisions, key=lambda d: d[0]) if decisions else None
        for row in grouped["rows"]:
            if best is None:
                yield row
            else:
                yield beam.pvalue.TaggedOutput(REJECTS, reject_row(row, self.reason, best[1]))


class ApplyDecisions(beam.PTransform):
    """(rows, decisions) -> (kept, rejects); a decision is (row_id, (dominator preference, message))."""

    def __init__(self, reason: str):
        super().__init__()
        self.reason = reason

    def expand(self, pcolls):
        rows, decisions = pcolls
        keyed = rows | "ById" >> beam.Map(lambda r: (row_id(r), r))
        result = ({"rows": keyed, "decisions": decisions}
                  | "Join" >> beam.CoGroupByKey()
                  | "Decide" >> beam.ParDo(_ApplyDecisions(self.reason)).with_outputs(REJECTS, main="main"))
        return result.main, result[REJECTS]


# --- near duplicates ----------------------------------------------------------------------------

def _with_phash(row: dict):
    return dict(row, phash=phash(row["image"])), None


def summary(row: dict) -> tuple:
    return (row_id(row), int(row["phash"], 16), preference(row), describe(row))


def near_decisions(summaries: Iterable[tuple], max_distance: int) -> Iterator[tuple[str, tuple]]:
    """Within one band bucket: (row_id, (dominator preference, message)) for every dominated row."""
    group = sorted(summaries, key=lambda s: s[2])
    if len(group) < 2:
        return
    hashes = np.array([s[1] for s in group], dtype=np.uint64)

    def near_block(s, e):
        return np.bitwise_count(hashes[s:e, None] ^ hashes[None, :e]) <= max_distance

    for i, j in first_better_neighbours(len(group), near_block):
        d = (group[i][1] ^ group[j][1]).bit_count()
        yield group[i][0], (group[j][2], f"near-duplicate of {group[j][3]}: perceptual hashes {d} bits apart")


class NearDedup(beam.PTransform):
    """rows with ``image`` -> (kept, rejects); every row leaves with ``phash``."""

    def __init__(self, config: NearDedupConfig = NearDedupConfig()):
        super().__init__()
        self.config = config

    def expand(self, rows):
        bands, max_distance = self.config.bands, self.config.max_distance
        hashed, failed = split(rows, "Phash", RowCheckDoFn("image_dedup", lambda: _with_phash))
        decisions = (
            hashed
            | "Summarize" >> beam.Map(summary)
            | "ByBand" >> beam.FlatMap(lambda s: [(f"{b}:{v:x}", s) for b, v in band_keys(s[1], bands)])
            | "GroupBand" >> beam.GroupByKey()
            | "Dominated" >> beam.FlatMap(lambda kv: near_decisions(kv[1], max_distance))
        )
        kept, dropped = (hashed, decisions) | "Apply" >> ApplyDecisions("near_duplicate_image")
        return kept, (failed, dropped) | "AllRejects" >> beam.Flatten()

