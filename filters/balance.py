"""Metadata balancing (MetaCLIP): at most about ``cap`` pairs per matched entry.

Entries: a text file, one per line (blank lines and ``#`` comments skipped).
Matching: captions and entries are case-folded and split into words (runs of
letters, digits and underscores; punctuation and spaces are separators), and
an entry matches when its words appear consecutively in the caption's words.
So "new york" matches "New-York skyline" but "cat" does not match "concat".
Lookup is a set probe per word n-gram of the caption (n up to the longest
entry), cheap for hundreds of thousands of entries. Scripts written without
spaces (Chinese, Japanese) match only as whole runs: a limitation.

Sampling replaces MetaCLIP's random draw by a deterministic rank: for each
entry, the pairs matching it are ranked by a hash of (pair key, entry), and
the ``cap`` smallest are chosen. A pair is kept if ANY of its entries chose
it. Pairs matching no entry are kept unless ``drop_unmatched`` (MetaCLIP drops
them).
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Optional

from clipcurate.filters.base import Drop

_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class BalanceConfig:
    entries_file: str
    cap: int
    drop_unmatched: bool = False

    def __post_init__(self):
        if self.cap < 1:
            raise ValueError(f"cap must be >= 1, got {self.cap}")


def words(text) -> list[str]:
    return _WORD.findall(str(text or "").casefold())


def load_entries(path: str) -> frozenset[str]:
    """Entries as space-joined words; an entry with no words is skipped."""
    entries = set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                entry = " ".join(words(line))
                if entry:
                    entries.add(entry)
    if not entries:
        raise ValueError(f"{path}: no entries")
    return frozenset(entries)


class EntryMatcher:
    def __init__(self, entries: frozenset[str]):
        self.entries = entries
        self.max_words = max((e.count(" ") + 1 for e in entries), default=0)

    def matches(self, caption) -> tuple[str, ...]:
        """The entries found in a caption, sorted, each once."""
        tokens = words(caption)
        found = set()
        for n in range(1, min(self.max_words, len(tokens)) + 1):
            for i in range(len(tokens) - n + 1):
                gram = " ".join(tokens[i:i + n])
                if gram in self.entries:
                    found.add(gram)
        return tuple(sorted(found))


def entry_rank(key: str, entry: str) -> int:
    """The pair's place in the entry's deterministic draw (smaller is chosen first)."""
    return int.from_bytes(hashlib.blake2b(f"{key}\x00{entry}".encode(), digest_size=8).digest(), "big")


class BalanceDecision:
    """Keeps a pair if any matched entry chose it.

    ``limits`` maps each entry that reached its cap to the largest rank it
    chose; an entry that is absent chose every pair matching it.
    """

    def __init__(self, config: BalanceConfig, limits: dict[str, int]):
        self.cap = config.cap
        self.drop_unmatched = config.drop_unmatched
        self.limits = limits

    def check(self, key: str, entries: tuple[str, ...]) -> Optional[Drop]:
        if not entries:
            return Drop("balance_cap", "matches no entry (unmatched pairs are dropped)") if self.drop_unmatched else None
        for entry in entries:
            limit = self.limits.get(entry)
            if limit is None or entry_rank(key, entry) <= limit:
                return None
        shown = ", ".join(repr(e) for e in entries[:5]) + (", ..." if len(entries) > 5 else "")
        return Drop("balance_cap", f"not drawn by any matched entry (each capped at {self.cap}): {shown}")
