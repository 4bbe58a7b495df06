"""Every pair of 64-bit keys within a Hamming distance, in about linear time (multi-index search).

``close_pairs(a, b, d)`` finds each (i, j) with ``popcount(a[i] ^ b[j]) <= d``. Comparing all of
``a`` with all of ``b`` costs ``len(a) * len(b)``; instead the bits are cut into ``s = d + t``
sub-bands: two keys within ``d`` bits differ in at most ``d`` sub-bands, so they agree exactly on
at least ``t`` of them (pigeonhole), and every pair is found by joining ``a`` and ``b`` on the
values of each choice of ``t`` sub-bands (``C(s, t)`` sorted joins), then checking the distance of
the joined pairs only. ``t`` (and brute force for small inputs) is chosen per call by a cost
estimate: more sub-bands agree, fewer random pairs join, but there are more choices to join on.

Bits that are the same in every key (``fixed``: the band value the keys were grouped by) tell
nothing apart, so the sub-bands are cut from the other bits only.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

from clipcurate.filters.phash import BITS, even_widths

BLOCK = 1 << 22  # joined pairs held at once, at most (bounds memory whatever the inputs)
# costs in units of one pair compared in the all-pairs matrix (measured: ~6 ns)
_SORT_COST = 3      # an element sorted and looked up, in one join
_PAIR_COST = 2      # a joined pair checked
_JOIN_COST = 5000   # a join's fixed overhead


def _free_bits(fixed: int) -> list[int]:
    return [b for b in range(BITS) if not fixed >> b & 1]


def _runs(n: int, parts: int) -> list[range]:
    """``n`` bit positions cut into ``parts`` nearly equal runs, from the lowest."""
    out, start = [], 0
    for width in even_widths(n, parts):
        out.append(range(start, start + width))
        start += width
    return out


def _plan(n_a: int, n_b: int, d: int, free: int) -> int:
    """How many sub-bands must agree (``t``), or 0 for comparing every pair."""
    best, best_cost = 0, float(n_a) * n_b
    for t in (1, 2, 3):
        s = d + t
        if s > free:
            break
        joins = math.comb(s, t)
        bits = t * free / s
        cost = joins * (_JOIN_COST + (n_a + n_b) * _SORT_COST + n_a * n_b / 2.0 ** bits * _PAIR_COST)
        if cost < best_cost:
            best, best_cost = t, cost
    return best


def _compact(keys: np.ndarray, free: list[int]) -> np.ndarray:
    """The keys' free bits, packed into the low bits (in order)."""
    if len(free) == BITS:
        return keys
    out = np.zeros_like(keys)
    # contiguous runs of free bits move together
    for _, run in itertools.groupby(enumerate(free), key=lambda ib: ib[1] - ib[0]):
        run = list(run)
        (pos, bit), width = run[0], len(run)
        mask = np.uint64((1 << width) - 1)
        out |= ((keys >> np.uint64(bit)) & mask) << np.uint64(pos)
    return out


def _check(a: np.ndarray, b: np.ndarray, rows: np.ndarray, cols: np.ndarray, d: int):
    dist = np.bitwise_count(a[rows] ^ b[cols])
    near = dist <= d
    return rows[near], cols[near], dist[near]


def _brute(a: np.ndarray, b: np.ndarray, d: int, same: bool):
    found = []
    step = max(1, BLOCK // max(len(b), 1))
    for start in range(0, len(a), step):
        dist = np.bitwise_count(a[start:start + step, None] ^ b[None, :])
        near = dist <= d
        if same:
            block = np.arange(start, min(start + step, len(a)))
            near[block - start, block] = False
        r, c = np.nonzero(near)
        found.append((r + start, c, dist[r, c]))
    return found


def _expand(rows: np.ndarray, lo: np.ndarray, count: np.ndarray, order: np.ndarray,
            a: np.ndarray, b: np.ndarray, d: int, same: bool):
    """Row ``rows[k]`` against the columns ``order[lo[k]:lo[k] + count[k]]``, for every k, in blocks of
    at most BLOCK pairs; distances checked (and, for a self-join, a key not paired with itself)."""
    ends = np.cumsum(count)
    found, start = [], 0
    while start < len(rows):
        base = int(ends[start - 1]) if start else 0
        stop = max(int(np.searchsorted(ends, base + BLOCK, "right")), start + 1)
        c = count[start:stop]
        total = int(ends[stop - 1]) - base
        if total:
            r = np.repeat(rows[start:stop], c)
            offset = np.arange(total) - np.repeat(np.cumsum(c) - c, c)
            cols = order[np.repeat(lo[start:stop], c) + offset]
            if same:
                other = r != cols
                r, cols = r[other], cols[other]
            found.append(_check(a, b, r, cols, d))
        start = stop
    return found


def _join(a_val: np.ndarray, b_val: np.ndarray, a: np.ndarray, b: np.ndarray, d: int):
    """Pairs with equal values (a sorted join), distance checked."""
    order = np.argsort(b_val, kind="stable")
    sorted_b = b_val[order]
    lo = np.searchsorted(sorted_b, a_val, "left")
    count = np.searchsorted(sorted_b, a_val, "right") - lo
    return _expand(np.arange(len(a_val)), lo, count, order, a, b, d, False)


SHORT_RUNS = 64  # a self-join whose longest run of equal values is at most this pairs by offsets


def _self_join(val: np.ndarray, a: np.ndarray, d: int):
    """Pairs of distinct positions with equal values: one sort, runs of equal values.

    Runs are short for random keys (a few elements): each pair is then found once, as two sorted
    positions ``k`` apart with equal values (one comparison of the sorted values for each ``k`` up
    to the longest run), checked once and given both ways round."""
    order = np.argsort(val, kind="stable")
    v = val[order]
    starts = np.flatnonzero(np.concatenate(([True], v[1:] != v[:-1])))
    lengths = np.diff(np.append(starts, len(v)))
    longest = int(lengths.max(initial=0))
    if longest > SHORT_RUNS:
        run = np.repeat(np.arange(len(starts)), lengths)
        where = np.flatnonzero(lengths[run] > 1)  # a key alone under its value pairs with nothing here
        return _expand(order[where], starts[run[where]], lengths[run[where]], order, a, a, d, True)
    at, step = [], []
    for k in range(1, longest):
        i = np.flatnonzero(v[k:] == v[:-k])
        at.append(i)
        step.append(np.full(len(i), k, dtype=np.int64))
    if not at:
        return []
    i = np.concatenate(at)
    rows, cols, dist = _check(a, a, order[i], order[i + np.concatenate(step)], d)
    return [(np.concatenate([rows, cols]), np.concatenate([cols, rows]), np.concatenate([dist, dist]))]


def _value_type(bits: int):
    return np.uint16 if bits <= 16 else np.uint32 if bits <= 32 else np.uint64


def close_pairs(a: np.ndarray, b: np.ndarray | None, d: int,
                fixed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows into ``a``, cols into ``b``, distance) of every pair of keys within ``d`` bits, each pair
    once, ordered by row then column. ``b=None``: ``a`` against itself, a position never paired with
    itself. ``fixed``: a mask of bits all keys share (left out of the sub-bands; pairs are still
    checked on all 64 bits)."""
    same = b is None
    a = np.asarray(a, dtype=np.uint64)
    b = a if same else np.asarray(b, dtype=np.uint64)
    empty = np.zeros(0, dtype=np.int64)
    if not len(a) or not len(b):
        return empty, empty, np.zeros(0, dtype=np.uint8)
    free = _free_bits(fixed)
    t = _plan(len(a), len(b), d, len(free))
    if t == 0:
        found = _brute(a, b, d, same)
    else:
        s = d + t
        ca = _compact(a, free)
        cb = ca if same else _compact(b, free)
        parts = _runs(len(free), s)
        masks = [np.uint64((1 << len(p)) - 1) for p in parts]
        va = [(ca >> np.uint64(p.start)) & m for p, m in zip(parts, masks)]
        vb = va if same else [(cb >> np.uint64(p.start)) & m for p, m in zip(parts, masks)]
        found = []
        for chosen in itertools.combinations(range(s), t):
            key_a, key_b, shift = va[chosen[0]], vb[chosen[0]], len(parts[chosen[0]])
            for i in chosen[1:]:
                key_a = key_a | (va[i] << np.uint64(shift))
                if not same:
                    key_b = key_b | (vb[i] << np.uint64(shift))
                shift += len(parts[i])
            kind = _value_type(shift)
            if same:
                found += _self_join(key_a.astype(kind), a, d)
            else:
                found += _join(key_a.astype(kind), key_b.astype(kind), a, b, d)
    found = [f for f in found if len(f[0])]
    if not found:
        return empty, empty, np.zeros(0, dtype=np.uint8)
    rows = np.concatenate([f[0] for f in found]).astype(np.int64)
    cols = np.concatenate([f[1] for f in found]).astype(np.int64)
    dist = np.concatenate([f[2] for f in found])
    code, first = np.unique(rows * len(b) + cols, return_index=True)  # a pair found by several joins: once
    return code // len(b), code % len(b), dist[first]
