"""Near-duplicate images: candidates by perceptual hashes, then a confirmation on small thumbnails.

Every row gets ``phash`` (16 hex digits) and, while this stage runs, a fingerprint
(``filters.near_print``): 8 keys (64-bit pHashes of the content, of it with a plain frame trimmed,
of its centre 90% and 80% and of its four 90% corners) and a 32 x 32 colour thumbnail (3 KB).

1. Candidates: two rows are candidates when some key of one lies within ``max_distance`` bits of
   some key of the other. Rows with the same fingerprint fold into their best one; the distinct
   fingerprints meet in band values (multi-index hashing: the 64 bits of each key in ``bands``
   bands, two keys within the distance share a band value or, with probes, lie within
   ``max_distance // bands`` bits in one), so every close pair is compared without comparing all
   rows with all rows. Band entries carry only (fingerprint id, key): no pictures, no captions.
2. Confirmation: each candidate pair (deduplicated) joins the two thumbnails by fingerprint id and
   is confirmed or not by ``near_print.same_picture`` (alignment for crops and borders, colour
   correlation, the inner part, the worst block: see there). Only confirmed pairs count. When both
   rows carry a ``label`` (a bare-label caption made a prompt, or a labelled source) and the labels
   differ, the stricter ``label_rule`` must hold: a label is only lost for a picture that is
   plainly the same.

Which row stays: rows are ranked by the longest caption (characters), then the larger original
image (pixels), then input order (``source_file``, ``source_row``, ``key``). A row is dropped as
``near_duplicate_image`` when some better-ranked row is a confirmed near-duplicate of it (rows of
one fingerprint are confirmed by being equal); the best such row is named in the message. The rule
is local, not transitive: in a chain A ~ B ~ C (A best, A not close to C) both B and C are dropped,
since C's better neighbour B exists, even though B is dropped too (SemDeDup's rule as well).

Caps (bounded work per row, whatever the skew): a band value compares at most ``max_group``
entries (the first by fingerprint id, a pseudo-random choice) and each entry keeps at most
``max_candidates`` nearest candidates there; past either cap some close pairs are not seen and
both rows are kept (never a wrong drop).
"""
from __future__ import annotations

import hashlib
import itertools
import math
import typing
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import apache_beam as beam
import numpy as np

from clipcurate.filters.base import reject_row
from clipcurate.filters.near_print import Rule, fingerprint, key_distance, same_picture
from clipcurate.filters.hamming import close_pairs
from clipcurate.filters.phash import BITS, band_keys, band_spans, band_widths
from clipcurate.schemas.records import input_order, where
from clipcurate.pipeline.bloom import BloomFn, may_hold
from clipcurate.pipeline.stages.base import REJECTS, RowCheckDoFn, split

# pairs compared per block in the dominance search (bounds memory per group)
BLOCK_PAIRS = 1 << 22


@dataclass(frozen=True)
class NearDedupConfig:
    max_distance: int = 6   # Hamming distance between 64-bit keys (pHashes), inclusive: candidates
    bands: int = 7          # bands of each key (7: 9-10 bits each); a close pair differs by <= max_distance // bands
                            # bits in some band, and those band values are probed (none for distance < 7).
                            # 4 bands (16 bits, 1-bit probes for distance 4..7): 128x smaller band values for
                            # runs past a million distinct pictures, at 9.7x the elements (68 a key, not 7)
    max_group: int = 100_000  # entries compared per band value, at most (the cap: see NearDecisions); with 7 bands
                              # a band value holds ~1 in 512 keys, so the cap bites past ~6 M distinct pictures
    max_candidates: int = 32  # candidates an entry keeps per band value, at most (the nearest)
    rule: Rule = Rule()     # the confirmation (filters.near_print.Rule)
    label_rule: Rule = Rule(min_alike=0.97, min_centre=0.95, max_residual=0.2, max_colour=0.05)  # when the two rows' labels differ

    def __post_init__(self):
        if not 1 <= self.bands <= BITS:
            raise ValueError(f"bands must be in 1..{BITS}, got {self.bands}")
        if not 0 <= self.max_distance < BITS:
            raise ValueError(f"max_distance must be in 0..{BITS - 1}, got {self.max_distance}")
        if probes_per_band(self.bands, self.max_distance) > MAX_PROBES:
            raise ValueError(f"--near-dedup-distance {self.max_distance} with {self.bands} bands probes too many band "
                             f"values per hash (> {MAX_PROBES}): use more bands")
        if self.max_group < 2 or self.max_candidates < 1:
            raise ValueError("max_group must be >= 2 and max_candidates >= 1")

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

# a summary: (row_id, keys, preference, description, thumbnail bytes, label or None)
ID, KEYS, PREF, DESC, THUMB, LABEL = range(6)


def fingerprint_of(row: dict):
    """The row's picture's ``near_print.Fingerprint`` (its original size as the hint, when known)."""
    size = (row.get("original_width"), row.get("original_height"))
    return fingerprint(row["image"], size if all(size) else None)


def _with_print(row: dict):
    fp = fingerprint_of(row)
    return dict(row, phash=fp.phash, near_print=(fp.keys, fp.thumb)), None


def summary_of(row: dict, keys: tuple, thumb: bytes) -> tuple:
    return (row_id(row), keys, preference(row), describe(row), thumb, row.get("label") or None)


def summary(row: dict) -> tuple:
    return summary_of(row, *row["near_print"])


def _without_print(row: dict) -> dict:
    return {k: v for k, v in row.items() if k != "near_print"}


def print_id(s: tuple) -> str:
    """Rows with the same fingerprint (keys and thumbnail) share this id."""
    h = hashlib.blake2b(s[THUMB], digest_size=8)
    h.update(b"".join(k.to_bytes(8, "big") for k in s[KEYS]))
    return h.hexdigest()


def _slim(kv: tuple) -> tuple:
    """(id, summary) with the summary's thumbnail left out."""
    pid, s = kv
    return pid, s[:THUMB] + (None,) + s[THUMB + 1:]


def _best(summaries) -> tuple:
    return min(summaries, key=lambda x: x[PREF])


def _flips(value: int, width: int, radius: int) -> Iterator[int]:
    """Every ``width``-bit value within ``radius`` bits of ``value``, itself first."""
    for k in range(radius + 1):
        for bits in itertools.combinations(range(width), k):
            v = value
            for b in bits:
                v ^= 1 << b
            yield v


def band_entries(pid: str, keys: Iterable[int], bands: int, radius: int) -> Iterator[tuple[str, bytes]]:
    """A fingerprint's distinct keys under their band values (members, ``b"m"``) and, within the
    radius, the neighbouring band values they probe (``b"p"``); each entry is 17 bytes (kind, the
    id's 8 bytes, the key's 8), not a tuple: a picture makes dozens of entries, and the band shuffle
    holds them all."""
    widths = band_widths(bands)
    ident = bytes.fromhex(pid)
    for key in sorted(set(keys)):
        tail = ident + key.to_bytes(8, "big")
        member, probe = b"m" + tail, b"p" + tail
        for (b, value), width in zip(band_keys(key, bands), widths):
            yield f"{b}:{value:x}", member
            if radius:
                for v in itertools.islice(_flips(value, width, radius), 1, None):
                    yield f"{b}:{v:x}", probe


BAND_BATCH = 10_000  # fingerprints whose band entries are made together (one element per band value a batch)


def band_chunks(reps: list[tuple[str, tuple]], bands: int, radius: int) -> Iterator[tuple[str, bytes]]:
    """``band_entries`` of a batch of (id, summary), made in bulk and packed per band value: one
    (band value, concatenated entries) element for each band value the batch touches, not one per
    entry (a picture makes dozens, and each element costs the runner as much as its bytes)."""
    ids, keys = [], []
    for pid, s in reps:
        ident = int(pid, 16)
        for key in sorted(set(s[KEYS])):
            ids.append(ident)
            keys.append(key)
    if not keys:
        return
    ids = np.array(ids, dtype=np.uint64)
    keys = np.array(keys, dtype=np.uint64)
    tail = np.empty((len(keys), 17), dtype=np.uint8)
    tail[:, 1:9] = ids.astype(">u8").view(np.uint8).reshape(-1, 8)
    tail[:, 9:] = keys.astype(">u8").view(np.uint8).reshape(-1, 8)
    band, value, row, kind = [], [], [], []
    rows = np.arange(len(keys))
    for b, (shift, width) in enumerate(band_spans(bands)):
        own = (keys >> np.uint64(shift)) & np.uint64((1 << width) - 1)
        flips = list(_flips(0, width, radius))  # 0 first: the member's own value
        for i, flip in enumerate(flips):
            band.append(np.full(len(keys), b, dtype=np.int64))
            value.append(own ^ np.uint64(flip))
            row.append(rows)
            kind.append(np.full(len(keys), 0x6D if i == 0 else 0x70, dtype=np.uint8))
    band, value, row, kind = (np.concatenate(x) for x in (band, value, row, kind))
    order = np.lexsort((row, value, band))
    band, value = band[order], value[order]
    entries = tail[row[order]]
    entries[:, 0] = kind[order]
    starts = np.flatnonzero(np.concatenate(([True], (band[1:] != band[:-1]) | (value[1:] != value[:-1]))))
    ends = np.append(starts[1:], len(band))
    for start, end in zip(starts.tolist(), ends.tolist()):
        yield f"{int(band[start])}:{int(value[start]):x}", entries[start:end].tobytes()


def band_mask(group: str, bands: int) -> int:
    """The bits of the band that a band value (``"band:value"``, as ``band_entries`` keys it) covers."""
    shift, width = band_spans(bands)[int(group.split(":", 1)[0])]
    return ((1 << width) - 1) << shift


def _distinct(ids: np.ndarray, keys: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (id, key) pairs, sorted, the first ``limit`` of them."""
    order = np.lexsort((keys, ids))
    ids, keys = ids[order], keys[order]
    new = np.ones(len(ids), dtype=bool)
    new[1:] = (ids[1:] != ids[:-1]) | (keys[1:] != keys[:-1])
    return ids[new][:limit], keys[new][:limit]


def _group_pairs(m_ids, m_keys, p_ids, p_keys, max_distance: int, max_candidates: int,
                 fixed: int) -> Iterator[tuple]:
    """(id, id) of each pair of a member and a member or probe with keys within the distance (smaller
    id first, each pair once, in order), each entry keeping its ``max_candidates`` nearest."""
    ids = np.unique(np.concatenate([m_ids, p_ids]))
    m_idx = np.searchsorted(ids, m_ids)
    codes = []
    for s_idx, s_keys, same in ((m_idx, m_keys, True), (np.searchsorted(ids, p_ids), p_keys, False)):
        if not len(s_idx):
            continue
        rows, cols, dist = close_pairs(s_keys, None if same else m_keys, max_distance, fixed)
        other = s_idx[rows] != m_idx[cols]
        rows, cols, dist = rows[other], cols[other], dist[other]
        counts = np.bincount(rows, minlength=len(s_idx))
        if counts.max(initial=0) > max_candidates:  # crowded: each entry keeps its nearest
            order = np.lexsort((cols, m_idx[cols], dist, rows))
            rows, cols = rows[order], cols[order]
            rank = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
            rows, cols = rows[rank < max_candidates], cols[rank < max_candidates]
        x, y = s_idx[rows], m_idx[cols]
        codes.append(np.minimum(x, y) * len(ids) + np.maximum(x, y))
    if codes:
        for code in np.unique(np.concatenate(codes)):
            lo, hi = divmod(int(code), len(ids))
            yield ids[lo], ids[hi]


def band_pairs(entries: Iterable[tuple], max_distance: int, max_group: int,
               max_candidates: int, fixed: int = 0) -> Iterator[tuple[str, str]]:
    """Within one band value: (id, id) of the fingerprints with keys within the distance (smaller id
    first, each pair once, in order). Members are compared with members and probes; at most
    ``max_group`` of each (the first by id and key) and, for each entry, its ``max_candidates``
    nearest. ``fixed``: the band's bits (``band_mask``), which the search leaves out of its sub-bands
    (``filters.hamming``: about linear in the entries, not quadratic)."""
    members, probes = set(), set()
    for kind, pid, key in entries:
        (members if kind == "m" else probes).add((pid, key))
    if not members or len(members) + len(probes) < 2:
        return
    members = sorted(members)[:max_group]
    probes = sorted(probes - set(members))[:max_group]
    names = sorted({pid for pid, _ in members} | {pid for pid, _ in probes})
    number = {pid: i for i, pid in enumerate(names)}

    def arrays(side):
        return (np.array([number[pid] for pid, _ in side], dtype=np.int64),
                np.array([key for _, key in side], dtype=np.uint64))

    for a, b in _group_pairs(*arrays(members), *arrays(probes), max_distance, max_candidates, fixed):
        yield names[a], names[b]


def packed_band_pairs(entries: Iterable[bytes], max_distance: int, max_group: int, max_candidates: int,
                      fixed: int = 0) -> Iterator[tuple[str, str]]:
    """``band_pairs`` of packed entries (``band_entries``' or ``band_chunks``' concatenations of them),
    decoded in bulk (ids as 16 hex digits)."""
    raw = np.frombuffer(b"".join(entries), dtype=np.uint8).reshape(-1, 17)
    member = raw[:, 0] == 0x6D
    ids = np.ascontiguousarray(raw[:, 1:9]).view(">u8").ravel().astype(np.uint64)
    keys = np.ascontiguousarray(raw[:, 9:17]).view(">u8").ravel().astype(np.uint64)
    if not member.any() or len(raw) < 2:
        return
    m_ids, m_keys = _distinct(ids[member], keys[member], max_group)
    p_ids, p_keys = _distinct(ids[~member], keys[~member], len(raw))
    if len(p_ids):  # probes of a member's own (id, key) count once, as the member
        taken = set(zip(m_ids.tolist(), m_keys.tolist()))
        keep = np.array([pk not in taken for pk in zip(p_ids.tolist(), p_keys.tolist())], dtype=bool)
        p_ids, p_keys = p_ids[keep][:max_group], p_keys[keep][:max_group]
    if len(m_ids) + len(p_ids) < 2:
        return
    for a, b in _group_pairs(m_ids, m_keys, p_ids, p_keys, max_distance, max_candidates, fixed):
        yield f"{int(a):016x}", f"{int(b):016x}"


def _light(s: tuple, distance: int, alike: float) -> tuple:
    """What a decision needs of a neighbour: (preference, description, key distance, alikeness)."""
    return s[PREF], s[DESC], distance, alike


def _carry_reps(item) -> Iterator[tuple[str, tuple]]:
    """For a fingerprint in candidate pairs: its summary (the slim representative with its thumbnail
    put back), sent once to each fingerprint it is the first of a pair with (``("first", summary)``),
    and to itself when it is the second of some pair (``("rep", summary)``). So the candidates'
    thumbnails are joined once, and only those of fingerprints in some pair travel on."""
    pid, grouped = item
    rep = next(iter(grouped["rep"]), None)
    firsts = sorted(set(grouped["first_of"]))
    second = next(iter(grouped["second_of"]), None) is not None
    if rep is None or not (firsts or second):
        return
    thumb = next(iter(grouped["thumb"]))
    rep = rep[:THUMB] + (thumb,) + rep[THUMB + 1:]
    for other in firsts:
        yield other, ("first", rep)
    if second:
        yield pid, ("rep", rep)


class _ThumbOncePerBundle(beam.DoFn):
    """(id, summary) -> (id, thumbnail) for the fingerprints in candidate pairs (``bloom``: a filter
    of their ids, so about only those), each id's thumbnail once a bundle (a fingerprint's
    thumbnail is the same in all its rows): a placeholder under a million URLs sends a copy a
    bundle, not a million. The ids remembered are bounded (``SEEN``): past it, copies again."""
    SEEN = 100_000

    def start_bundle(self):
        self._seen = set()

    def process(self, kv, bloom):
        pid, s = kv
        if pid not in self._seen and may_hold(bloom, pid):
            if len(self._seen) >= self.SEEN:
                self._seen.clear()
            self._seen.add(pid)
            yield pid, s[THUMB]


def _labels_differ(a: tuple, b: tuple) -> bool:
    return bool(a[LABEL] and b[LABEL] and a[LABEL].strip().lower() != b[LABEL].strip().lower())


def _confirm(item, rule: Rule, label_rule: Rule) -> Iterator[tuple[str, tuple]]:
    """For the second fingerprint of candidate pairs: every pair the confirmation holds for, both ways."""
    pid, carried = item
    rep, firsts = None, []
    for kind, s in carried:
        if kind == "rep":
            rep = s
        else:
            firsts.append(s)
    firsts.sort(key=lambda s: s[ID])
    if rep is None or not firsts:
        return
    ok, sims = same_picture([s[THUMB] for s in firsts], [rep[THUMB]] * len(firsts), rule)
    strict = label_rule.holds(sims)
    for first, good, sure, sim in zip(firsts, ok, strict, sims):
        if good and (sure or not _labels_differ(first, rep)):
            d = key_distance(first[KEYS], rep[KEYS])
            alike = round(float(sim[0]), 4)
            yield print_id(first), _light(rep, d, alike)
            yield pid, _light(first, d, alike)


def _best_light(lights) -> tuple:
    return min(lights, key=lambda x: x[0])


def _message(dominator: tuple) -> tuple:
    return dominator[0], (f"near-duplicate of {dominator[1]}: keys {dominator[2]} bits apart, "
                          f"thumbnails {dominator[3]:.3f} alike")


def _row_decisions(item) -> Iterator[tuple[str, tuple]]:
    """For one fingerprint: each of its rows that a better-ranked row is a confirmed near-duplicate of,
    with the best such row.

    The fingerprint's best row (``rep``) is dominated by its best confirmed neighbour when that one
    ranks better; every other row of it (the same fingerprint) by the better of ``rep`` and that one.
    """
    _, grouped = item
    neighbour = min(grouped["neighbours"], key=lambda r: r[0], default=None)
    rep = next(iter(grouped["rep"]))  # joined, so a fingerprint's rows are only iterated once, never held
    same = _light(rep, 0, 1.0)
    for r in grouped["rows"]:
        if r[ID] == rep[ID]:
            dominator = neighbour
        else:
            dominator = same if neighbour is None or same[0] < neighbour[0] else neighbour
        if dominator is not None and dominator[0] < r[PREF]:
            yield r[ID], _message(dominator)


class NearDecisions(beam.PTransform):
    """Summaries (row_id, keys, preference, description, thumbnail, label) -> (row_id, (dominator
    preference, message)).

    1. Rows with the same fingerprint fold into their best one (a combiner, on summaries without
       thumbnails: a placeholder picture under a million URLs is one representative, not a
       million-row group).
    2. Representatives' keys meet in band values (multi-index hashing; entries made and packed in
       batches of ``BAND_BATCH`` fingerprints); each band value yields the pairs of fingerprints
       with keys within ``max_distance`` (capped: ``max_group`` entries, ``max_candidates`` per
       entry).
    3. The pairs join the representatives and the thumbnails (one copy a fingerprint and bundle) of
       the fingerprints in some pair (a Bloom filter of their ids lets about only those through)
       once: each summary goes to the second fingerprint of each pair it is the first of; at each
       second fingerprint the pairs are confirmed on the two thumbnails; confirmed pairs give each
       side its best neighbour. So only the thumbnails of candidates are shuffled, once.
    4. Each fingerprint's best neighbour joins its rows (summaries without thumbnails): the
       decisions are those of comparing every row with every other.
    """

    def __init__(self, config: NearDedupConfig):
        super().__init__()
        self.config = config

    def expand(self, summaries):
        c = self.config
        by_print = summaries | "ByPrint" >> beam.Map(lambda s: (print_id(s), s))
        # the representatives are chosen without thumbnails; the thumbnails join the pairs once
        # typed as key-value pairs: Beam 2.78 reads ``_slim``'s ``-> tuple`` as Tuple[Any, ...] and
        # refuses it as CombinePerKey's input
        rows = by_print | "SlimRows" >> beam.Map(_slim).with_output_types(typing.Tuple[typing.Any, typing.Any])
        reps = rows | "BestPerPrint" >> beam.CombinePerKey(_best)
        pairs = (
            reps
            | "BatchBands" >> beam.BatchElements(min_batch_size=BAND_BATCH, max_batch_size=BAND_BATCH)
            | "Bands" >> beam.FlatMap(band_chunks, c.bands, c.radius)
            | "GroupBand" >> beam.GroupByKey()
            | "Close" >> beam.FlatMap(lambda kv: packed_band_pairs(kv[1], c.max_distance, c.max_group,
                                                                   c.max_candidates, band_mask(kv[0], c.bands)))
        )
        second_of = pairs | "BySecond" >> beam.Map(lambda ab: (ab[1], ab[0]))
        # only fingerprints in some candidate pair join the pairs: a Bloom filter of their ids (a
        # fixed 4 MiB side input) lets through about only their representatives and thumbnails
        paired = (pairs | "PairIds" >> beam.FlatMap(lambda ab: ab)
                  | "PairBloom" >> beam.CombineGlobally(BloomFn()))
        bloom = beam.pvalue.AsSingleton(paired)
        thumbs = by_print | "Thumbs" >> beam.ParDo(_ThumbOncePerBundle(), bloom)
        paired_reps = reps | "PairedReps" >> beam.Filter(lambda kv, b: may_hold(b, kv[0]), bloom)
        neighbours = ({"rep": paired_reps, "thumb": thumbs, "first_of": pairs, "second_of": second_of}
                      | "JoinReps" >> beam.CoGroupByKey()
                      | "CarryReps" >> beam.FlatMap(_carry_reps)
                      | "AtSecond" >> beam.GroupByKey()
                      | "Confirm" >> beam.FlatMap(_confirm, c.rule, c.label_rule)
                      | "BestNeighbour" >> beam.CombinePerKey(_best_light))
        return ({"rows": rows, "rep": reps, "neighbours": neighbours}
                | "JoinPrint" >> beam.CoGroupByKey()
                | "Decide" >> beam.FlatMap(_row_decisions))


class NearDedup(beam.PTransform):
    """rows with ``image`` -> (kept, rejects); every row leaves with ``phash``."""

    def __init__(self, config: NearDedupConfig = NearDedupConfig()):
        super().__init__()
        self.config = config

    def expand(self, rows):
        hashed, failed = split(rows, "Phash", RowCheckDoFn("image_dedup", lambda: _with_print))
        # typed Any: inferred types would put 64-bit unsigned keys through Beam's (signed) int coder
        summaries = hashed | "Summarize" >> beam.Map(summary).with_output_types(typing.Any)
        decisions = summaries | "Decisions" >> NearDecisions(self.config)
        plain = hashed | "DropPrint" >> beam.Map(_without_print)
        kept, dropped = (plain, decisions) | "Apply" >> ApplyDecisions("near_duplicate_image")
        return kept, (failed, dropped) | "AllRejects" >> beam.Flatten()
