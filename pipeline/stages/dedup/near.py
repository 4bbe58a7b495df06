"""Near-duplicate images: perceptual hashes within a small Hamming distance.

Every row gets ``phash`` (16 hex digits, see ``filters.phash``). Rows with the
same hash fold into their best one; the distinct hashes meet in band values
(multi-index hashing, ``NearDecisions``): the 64 bits in ``bands`` bands, two
hashes within ``max_distance`` bits differ by at most ``max_distance // bands``
bits in some band, and each hash probes those band values, so every close pair
is compared without comparing all rows with all rows, and a band value's work
is capped. Only small summaries (id, hash, preference) are grouped, never the
images.

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

import itertools
import math
import typing
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import apache_beam as beam
import numpy as np

from clipcurate.filters.base import reject_row
from clipcurate.filters.phash import BITS, band_keys, band_widths, phash
from clipcurate.schemas.records import input_order, where
from clipcurate.pipeline.stages.base import REJECTS, RowCheckDoFn, split

# pairs compared per block in the dominance search (bounds memory per group)
BLOCK_PAIRS = 1 << 22


@dataclass(frozen=True)
class NearDedupConfig:
    max_distance: int = 6   # Hamming distance between 64-bit pHashes, inclusive
    bands: int = 8          # bands of the hash (8: 8 bits each); a close pair differs by <= max_distance // bands
                            # bits in some band, and those band values are probed (none for distance < 8).
                            # 4 bands (16 bits, 1-bit probes for distance 4..7): 256x smaller band values for
                            # runs past a million distinct hashes, at 8.5x the elements (68 a hash, not 8)
    max_group: int = 5000   # candidates compared per band value, at most (the cap: see NearDecisions)

    def __post_init__(self):
        if not 1 <= self.bands <= BITS:
            raise ValueError(f"bands must be in 1..{BITS}, got {self.bands}")
        if not 0 <= self.max_distance < BITS:
            raise ValueError(f"max_distance must be in 0..{BITS - 1}, got {self.max_distance}")
        if probes_per_band(self.bands, self.max_distance) > MAX_PROBES:
            raise ValueError(f"--near-dedup-distance {self.max_distance} with {self.bands} bands probes too many band "
                             f"values per hash (> {MAX_PROBES}): use more bands")
        if self.max_group < 2:
            raise ValueError("max_group must be >= 2")

    @property
    def radius(self) -> int:
        return self.max_distance // self.bands


MAX_PROBES = 2000  # band values probed per band and hash, at most


def probes_per_band(bands: int, max_distance: int) -> int:
    """How many values each band of a hash is looked up under (its own and those within the radius)."""
    width = max(band_widths(bands))
    return sum(math.comb(width, k) for k in range(max_distance // bands + 1))


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


def _better(a: tuple, b: tuple | None) -> tuple:
    """Of two summaries, the better-ranked (smaller preference)."""
    return a if b is None or a[2] < b[2] else b


def _best(summaries) -> tuple:
    return min(summaries, key=lambda x: x[2])


def _flips(value: int, width: int, radius: int) -> Iterator[int]:
    """Every ``width``-bit value within ``radius`` bits of ``value``, itself first."""
    for k in range(radius + 1):
        for bits in itertools.combinations(range(width), k):
            v = value
            for b in bits:
                v ^= 1 << b
            yield v


def band_entries(rep: tuple, bands: int, radius: int) -> Iterator[tuple[str, tuple]]:
    """A distinct hash's representative under its band values ("m": members) and, within the radius,
    the neighbouring band values it probes ("p")."""
    widths = band_widths(bands)
    for (b, value), width in zip(band_keys(rep[1], bands), widths):
        yield f"{b}:{value:x}", ("m", rep)
        if radius:
            for v in itertools.islice(_flips(value, width, radius), 1, None):
                yield f"{b}:{v:x}", ("p", rep)


def band_neighbours(entries: Iterable[tuple], max_distance: int, max_group: int) -> Iterator[tuple[str, tuple]]:
    """Within one band value: (hash, best representative of another hash within the distance) for every
    hash that has one here. Members are compared with members and probes; at most ``max_group`` of each
    (the best-ranked) are compared, so a crowded band value costs a bounded amount of work."""
    members, probes = [], []
    for kind, rep in entries:
        (members if kind == "m" else probes).append(rep)
    if not members or len(members) + len(probes) < 2:
        return
    members = sorted(members, key=lambda r: r[2])[:max_group]
    probes = sorted(probes, key=lambda r: r[2])[:max_group]
    found: dict[int, tuple] = {}
    m_hash = np.array([r[1] for r in members], dtype=np.uint64)
    step = max(1, BLOCK_PAIRS // len(members))  # rows of a side compared at once: bounded memory
    for side in (members, probes):
        if not side:
            continue
        s_hash = np.array([r[1] for r in side], dtype=np.uint64)
        for start in range(0, len(side), step):
            block = s_hash[start:start + step]
            near = (np.bitwise_count(block[:, None] ^ m_hash[None, :]) <= max_distance) & (block[:, None] != m_hash[None, :])
            for a, b in zip(*np.nonzero(near)):
                x, y = side[start + int(a)], members[int(b)]
                found[x[1]] = _better(y, found.get(x[1]))
                found[y[1]] = _better(x, found.get(y[1]))
    for value, best in found.items():
        yield f"{value:016x}", best  # hex keys: a 64-bit unsigned int is beyond Beam's int coder


def _message(dominator: tuple, value: int) -> tuple:
    d = (dominator[1] ^ value).bit_count()
    return dominator[2], f"near-duplicate of {dominator[3]}: perceptual hashes {d} bits apart"


def _row_decisions(item) -> Iterator[tuple[str, tuple]]:
    """For one distinct hash: each of its rows that a better-ranked row lies close to, with the best such row.

    The hash's best row (``rep``) is dominated by its best neighbour of another hash when that one ranks
    better; every other row of the hash is dominated by the better of ``rep`` and that neighbour.
    """
    key, grouped = item
    value = int(key, 16)
    neighbour = min(grouped["neighbours"], key=lambda r: r[2], default=None)
    rep = next(iter(grouped["rep"]))  # joined, so a hash's rows are only iterated once, never held
    for r in grouped["rows"]:
        if r[0] == rep[0]:
            dominator = neighbour
        else:
            dominator = rep if neighbour is None else _better(neighbour, rep)
        if dominator is not None and dominator[2] < r[2]:
            yield r[0], _message(dominator, value)


class NearDecisions(beam.PTransform):
    """Summaries (row_id, hash, preference, description) -> (row_id, (dominator preference, message)).

    1. Rows with the same hash fold into their best one (a combiner: a placeholder picture under a
       million URLs is one representative, not a million-row group).
    2. Representatives meet in band values (multi-index hashing: ``bands`` bands, each probed within
       ``max_distance // bands`` bits, so every pair within the distance meets in some band value).
       A band value compares at most ``max_group`` members and as many probes, the best-ranked: in a
       band value more crowded than that, some close pairs of lower-ranked pictures are not seen and
       both are kept (never a wrong drop).
    3. Each hash's best neighbour joins its rows by hash: the decisions are those of comparing every
       row with every other.
    """

    def __init__(self, config: NearDedupConfig):
        super().__init__()
        self.config = config

    def expand(self, summaries):
        c = self.config
        by_hash = summaries | "ByHash" >> beam.Map(lambda s: (f"{s[1]:016x}", s))
        reps = by_hash | "BestPerHash" >> beam.CombinePerKey(_best)
        neighbours = (
            reps
            | "Bands" >> beam.FlatMap(lambda kv: band_entries(kv[1], c.bands, c.radius))
            | "GroupBand" >> beam.GroupByKey()
            | "Close" >> beam.FlatMap(lambda kv: band_neighbours(kv[1], c.max_distance, c.max_group))
            | "BestNeighbour" >> beam.CombinePerKey(_best)
        )
        return ({"rows": by_hash, "rep": reps, "neighbours": neighbours}
                | "JoinHash" >> beam.CoGroupByKey()
                | "Decide" >> beam.FlatMap(_row_decisions))


class NearDedup(beam.PTransform):
    """rows with ``image`` -> (kept, rejects); every row leaves with ``phash``."""

    def __init__(self, config: NearDedupConfig = NearDedupConfig()):
        super().__init__()
        self.config = config

    def expand(self, rows):
        hashed, failed = split(rows, "Phash", RowCheckDoFn("image_dedup", lambda: _with_phash))
        # typed Any: inferred as Tuple[str, int, ...], a 64-bit unsigned hash would overflow Beam's int coder
        summaries = hashed | "Summarize" >> beam.Map(summary).with_output_types(typing.Any)
        decisions = summaries | "Decisions" >> NearDecisions(self.config)
        kept, dropped = (hashed, decisions) | "Apply" >> ApplyDecisions("near_duplicate_image")
        return kept, (failed, dropped) | "AllRejects" >> beam.Flatten()
