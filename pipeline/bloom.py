"""A fixed-size Bloom filter of hex ids, built by a Beam combiner and read as a side input.

It lets a stage send on only the elements that some later join can use, without a side input that
grows with the data: the filter is ``BITS`` bits (4 MiB) whatever the number of ids. An id put in is
always found (no element that is needed is ever held back); an id not put in is found with a
probability that grows with the ids: ~0.02% for 1 M ids, ~23% for 10 M (then the filter only lets
more through, never fewer).
"""
from __future__ import annotations

import hashlib

import apache_beam as beam
import numpy as np

BITS = 1 << 25
HASHES = 4


def positions(ident: str) -> list[int]:
    """The bits of an id (16 hex digits of a hash, or any string): double hashing on its 64 bits."""
    try:
        h = int(ident[-16:], 16)
    except ValueError:
        h = int.from_bytes(hashlib.blake2b(ident.encode(), digest_size=8).digest(), "big")
    a, b = h & 0xFFFFFFFF, (h >> 32) | 1
    return [(a + i * b) % BITS for i in range(HASHES)]


class BloomFn(beam.CombineFn):
    """ids -> the filter's bytes (BITS / 8); accumulators are merged by OR."""

    def create_accumulator(self):
        return np.zeros(BITS // 8, dtype=np.uint8)

    def add_input(self, acc, ident):
        for p in positions(ident):
            acc[p >> 3] |= np.uint8(1 << (p & 7))
        return acc

    def merge_accumulators(self, accs):
        accs = iter(accs)
        out = np.array(next(accs), dtype=np.uint8)
        for acc in accs:
            out |= acc
        return out

    def extract_output(self, acc):
        return acc.tobytes()


def may_hold(bloom: bytes, ident: str) -> bool:
    """False: the id was surely not put in; True: it probably was."""
    return all(bloom[p >> 3] >> (p & 7) & 1 for p in positions(ident))
