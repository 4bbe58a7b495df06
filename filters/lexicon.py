"""Word frequencies per language (wordfreq's "small" lists) as arrays, for the language identifier.

Short captions ("bunte Luftballons", "fond texture bois") carry too few character n-grams for
langdetect's profiles to be sure of; whether each word is a common word of a language settles most
of them. wordfreq's small lists hold every word with a frequency of at least one in a million in
each of about 40 languages (1.7 M entries). They are read once into a compact table -- the sorted
64-bit hashes of the words, and per word its (language, log frequency) entries -- and saved as an
uncompressed .npz in the user's cache folder, so later processes load it in tens of milliseconds.
The table is rebuilt whenever the installed wordfreq's lists change (their names and sizes are its
fingerprint).
"""
from __future__ import annotations

import hashlib
import importlib.util
import math
import os
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

WORDLIST = "small"
# wordfreq's codes that are not langdetect's profile names
_PROFILE_OF = {"nb": ("no",), "fil": ("tl",), "sh": ("hr",), "zh": ("zh-cn", "zh-tw")}
MIN_FREQUENCY = 1e-6  # the small lists' cut-off: an unlisted word is rarer than this


def default_cache_path() -> str:
    root = os.environ.get("CLIPCURATE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "clipcurate")
    return os.path.join(root, f"wordfreq_{WORDLIST}.npz")


def wordfreq_data_dir() -> str:
    """The installed wordfreq's data folder, found without importing wordfreq."""
    spec = importlib.util.find_spec("wordfreq")
    if spec is None or not spec.origin:
        raise ImportError("the language identifier needs wordfreq's word lists: pip install 'wordfreq>=3.1,<4'")
    return os.path.join(os.path.dirname(spec.origin), "data")


def _list_files(data_dir: str) -> dict[str, str]:
    prefix, suffix = f"{WORDLIST}_", ".msgpack.gz"
    return {name[len(prefix):-len(suffix)]: os.path.join(data_dir, name)
            for name in sorted(os.listdir(data_dir)) if name.startswith(prefix) and name.endswith(suffix)}


def _fingerprint(files: dict[str, str]) -> str:
    return ";".join(f"{code}:{os.path.getsize(path)}" for code, path in files.items())


def word_hash(words: Sequence[str]) -> np.ndarray:
    """Stable 64-bit hashes of words (blake2b), as int64."""
    return np.array([int.from_bytes(hashlib.blake2b(w.encode("utf-8", "surrogatepass"), digest_size=8).digest(),
                                    "little", signed=True) for w in words], dtype=np.int64)


@dataclass(frozen=True)
class Lexicon:
    """Word -> log frequency per profile column; unlisted words have none."""

    hashes: np.ndarray   # (words,) int64, sorted
    indptr: np.ndarray   # (words + 1,) int64: a word's entries are cols/logf[indptr[i]:indptr[i + 1]]
    cols: np.ndarray     # (entries,) uint8 profile column
    logf: np.ndarray     # (entries,) float32 natural log of the frequency
    listed: np.ndarray   # (profiles,) bool: the language has a word list

    def log_freq(self, words: Sequence[str]) -> np.ndarray:
        """(words, profiles) float32: log frequency, -inf where the word is not in that language's list."""
        out = np.full((len(words), len(self.listed)), -np.inf, dtype=np.float32)
        if not words or not len(self.hashes):
            return out
        h = word_hash(words)
        pos = np.minimum(np.searchsorted(self.hashes, h), len(self.hashes) - 1)
        found = np.flatnonzero(self.hashes[pos] == h)
        if found.size:
            starts, ends = self.indptr[pos[found]], self.indptr[pos[found] + 1]
            counts = ends - starts
            rows = np.repeat(found, counts)
            entries = np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
            out[rows, self.cols[entries]] = self.logf[entries]
        return out


def build_lexicon_arrays(profile_langs: Sequence[str], data_dir: Optional[str] = None) -> dict:
    """The installed small word lists as arrays (see ``Lexicon``) for the given profile columns."""
    from wordfreq import read_cBpack

    files = _list_files(data_dir or wordfreq_data_dir())
    column = {lang: i for i, lang in enumerate(profile_langs)}
    table: dict[str, dict[int, float]] = {}
    listed = np.zeros(len(profile_langs), dtype=bool)
    for code, path in files.items():
        cols = [column[p] for p in _PROFILE_OF.get(code, (code,)) if p in column]
        if not cols:
            continue  # a language without a profile (Icelandic, Malay)
        listed[cols] = True
        for centibels, words in enumerate(read_cBpack(path)):
            logf = -centibels / 100.0 * math.log(10.0)
            for word in words:
                entry = table.setdefault(word, {})
                for col in cols:
                    entry.setdefault(col, logf)  # a word's first (most frequent) bucket
    words = list(table)
    hashes = word_hash(words)
    order = np.argsort(hashes, kind="stable")
    counts = np.array([len(table[words[i]]) for i in order], dtype=np.int64)
    cols = np.fromiter((c for i in order for c in table[words[i]]), dtype=np.uint8, count=int(counts.sum()))
    logf = np.fromiter((v for i in order for v in table[words[i]].values()), dtype=np.float32,
                       count=int(counts.sum()))
    return {"hashes": hashes[order], "indptr": np.concatenate([[0], np.cumsum(counts)]), "cols": cols,
            "logf": logf, "listed": listed, "langs": np.array(list(profile_langs)),
            "fingerprint": np.array(_fingerprint(files))}


def load_lexicon(profile_langs: Sequence[str], cache: Optional[str] = "default",
                 data_dir: Optional[str] = None) -> Lexicon:
    """The lexicon for these profile columns: from ``cache`` when it matches the installed lists and
    columns, else built (a few seconds) and saved there (whole, then renamed) when the folder is
    writable. ``cache=None`` builds it in memory."""
    files = _list_files(data_dir or wordfreq_data_dir())
    path = default_cache_path() if cache == "default" else cache
    arrays = None
    if path and os.path.exists(path):
        try:
            with np.load(path) as data:
                if (str(data["fingerprint"]) == _fingerprint(files)
                        and [str(x) for x in data["langs"]] == list(profile_langs)):
                    arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError, KeyError):  # a damaged cache: build again
            arrays = None
    if arrays is None:
        arrays = build_lexicon_arrays(profile_langs, data_dir)
        if path:
            _save(path, arrays)
    return Lexicon(arrays["hashes"], arrays["indptr"], arrays["cols"], arrays["logf"], arrays["listed"])


def _save(path: str, arrays: dict) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)  # uncompressed: loads in tens of milliseconds
        os.replace(tmp, path)
    except OSError:  # a read-only home: the lexicon is built in memory each time
        try:
            os.remove(tmp)
        except OSError:
            pass
