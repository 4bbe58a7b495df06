"""Close pairs of 64-bit keys (filters.hamming) and a band value's candidate pairs (near dedup):
the sub-band search finds exactly what comparing every pair finds."""
from __future__ import annotations

import random

import numpy as np
import pytest

from clipcurate.filters.hamming import close_pairs
from clipcurate.filters.phash import band_keys
from clipcurate.pipeline.stages.dedup.near import band_entries, band_mask, band_pairs, packed_band_pairs


def every_pair(a: list[int], b: list[int] | None, d: int) -> list[tuple[int, int, int]]:
    other = a if b is None else b
    return [(i, j, (x ^ y).bit_count()) for i, x in enumerate(a) for j, y in enumerate(other)
            if (x ^ y).bit_count() <= d and (b is not None or i != j)]


def keys_with_copies(r: random.Random, n: int, d: int, fixed: int = 0) -> list[int]:
    """n random keys sharing the ``fixed`` bits, and copies of a tenth of them 0..d+1 bits away."""
    shared = r.getrandbits(64) & fixed
    keys = [(r.getrandbits(64) & ~fixed) | shared for _ in range(n)]
    free = [bit for bit in range(64) if not fixed >> bit & 1]
    for k in keys[: n // 10]:
        for bit in r.sample(free, r.randint(0, d + 1)):
            k ^= 1 << bit
        keys.append(k)
    return keys + keys[:3]  # some keys twice


@pytest.mark.parametrize("n, d, fixed", [(2000, 6, 0x1FF << 55), (3000, 6, 0x1FF << 20), (2500, 3, 0),
                                         (2000, 0, 0), (400, 12, 0)])
def test_close_pairs_are_every_pair_within_the_distance(n, d, fixed):
    r = random.Random(n + d)
    a = keys_with_copies(r, n, d, fixed)
    b = a[: n // 2] + keys_with_copies(r, n // 3, d, fixed)
    for other in (None, b):
        rows, cols, dist = close_pairs(np.array(a, dtype=np.uint64), None if other is None else
                                       np.array(other, dtype=np.uint64), d, fixed)
        got = list(zip(rows.tolist(), cols.tolist(), dist.tolist()))
        expected = every_pair(a, other, d)
        assert got == expected
        assert len(expected) > n // 20  # the planted copies are there to be found


def test_a_band_value_pairs_the_same_in_bulk_as_entry_by_entry():
    """What the pipeline runs (packed entries decoded in bulk) against the entry-by-entry rule, with
    probes, entries sent twice, and both caps biting."""
    r = random.Random(7)
    for bands, d, n in ((7, 6, 1500), (4, 6, 600), (5, 7, 400)):
        base = r.getrandbits(64)
        pictures = {}
        for _ in range(n):
            pid = f"{r.getrandbits(64):016x}"
            keys = []
            for _ in range(r.randint(1, 3)):
                k = base if r.random() < 0.8 else r.getrandbits(64)
                for bit in r.sample(range(64), r.randint(0, 10)):
                    k ^= 1 << bit
                keys.append(k)
            pictures[pid] = keys
        groups: dict[str, list[bytes]] = {}
        for pid, keys in pictures.items():
            for group, entry in band_entries(pid, keys, bands, d // bands):
                groups.setdefault(group, []).append(entry)
        crowded = max(groups, key=lambda g: len(groups[g]))
        entries = groups[crowded] + groups[crowded][:50]
        decoded = [("m" if e[:1] == b"m" else "p", e[1:9].hex(), int.from_bytes(e[9:], "big")) for e in entries]
        for max_group, max_candidates in ((5000, 32), (100, 32), (5000, 2)):
            bulk = list(packed_band_pairs(entries, d, max_group, max_candidates, band_mask(crowded, bands)))
            one_by_one = list(band_pairs(decoded, d, max_group, max_candidates))
            assert bulk == one_by_one == the_rule(decoded, d, max_group, max_candidates) and len(bulk) > 20


def the_rule(entries, d, max_group, max_candidates):
    """band_pairs' documented rule, comparing every pair: members (the first max_group distinct, by id
    and key) against members and probes (the same), each keeping its max_candidates nearest members
    of other fingerprints (by distance, then id, then key)."""
    members = sorted({(pid, key) for kind, pid, key in entries if kind == "m"})[:max_group]
    probes = sorted({(pid, key) for kind, pid, key in entries if kind == "p"} - set(members))[:max_group]
    pairs = set()
    for pid, key in members + probes:
        near = sorted(((key ^ k).bit_count(), other, k) for other, k in members
                      if other != pid and (key ^ k).bit_count() <= d)
        pairs |= {tuple(sorted((pid, other))) for _, other, _ in near[:max_candidates]}
    return sorted(pairs)


def test_band_mask_covers_the_band_of_its_value():
    bands = 7
    key = random.Random(1).getrandbits(64)
    for (band, value) in band_keys(key, bands):
        mask = band_mask(f"{band}:{value:x}", bands)
        assert (key & mask) >> ((mask & -mask).bit_length() - 1) == value
    assert sum(band_mask(f"{b}:0", bands).bit_count() for b in range(bands)) == 64


@pytest.mark.parametrize("bands, radius", [(7, 0), (4, 1), (5, 1)])
def test_band_values_get_the_same_entries_in_bulk_as_picture_by_picture(bands, radius):
    from clipcurate.pipeline.stages.dedup.near import band_chunks

    r = random.Random(bands)
    reps = []
    for i in range(300):
        keys = tuple(r.getrandbits(64) for _ in range(r.randint(1, 8)))
        keys = keys + keys[:1] if i % 3 == 0 else keys  # a key twice: one entry
        if i % 50 == 1:
            keys = reps[-1][1][1]  # another fingerprint with the same keys
        reps.append((f"{r.getrandbits(64):016x}", ("row", keys)))
    one_by_one: dict[str, list[bytes]] = {}
    for pid, s in reps:
        for group, entry in band_entries(pid, s[1], bands, radius):
            one_by_one.setdefault(group, []).append(entry)
    bulk: dict[str, list[bytes]] = {}
    for group, chunk in band_chunks(reps, bands, radius):
        assert group not in bulk and len(chunk) % 17 == 0
        bulk[group] = [chunk[i:i + 17] for i in range(0, len(chunk), 17)]
    assert {g: sorted(e) for g, e in bulk.items()} == {g: sorted(e) for g, e in one_by_one.items()}
