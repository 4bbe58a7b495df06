"""Word frequencies per language (wordfreq's "small" lists) as arrays, for the language identifier.

Short captions ("bunte Luftballons", "fond texture bois") carry too few character n-grams for
langdetect's profiles to be sure of; whether each word is a common word of a language settles most
of them. wordfreq's small lists hold every word with a frequency of at least one in a million in
each of about 40 languages (1.7 M entries). They are read once into a compact table -- the sorted
64-bit hashes of the words, and per word its (language, log frequency) entries -- and saved as .npy
files in the user's cache folder, which later processes map into memory (a few milliseconds).
The table is rebuilt whenever the installed wordfreq's lists change (their names and sizes are its
fingerprint).
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import shutil
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
    return os.path.join(root, f"wordfreq_{WORDLIST}")


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
    words: list[str] = []
    cols: list[np.ndarray] = []
    logf: list[np.ndarray] = []
    listed = np.zeros(len(profile_langs), dtype=bool)
    for code, path in files.items():
        targets = [column[p] for p in _PROFILE_OF.get(code, (code,)) if p in column]
        if not targets:
            continue  # a language without a profile (Icelandic, Malay)
        listed[targets] = True
        buckets = read_cBpack(path)
        these = [w for bucket in buckets for w in bucket]
        freqs = np.repeat(-np.arange(len(buckets)) / 100.0 * math.log(10.0), [len(b) for b in buckets])
        for col in targets:
            words += these
            cols.append(np.full(len(these), col, dtype=np.uint8))
            logf.append(freqs.astype(np.float32))
    hashes = word_hash(words)
    col = np.concatenate(cols)
    value = np.concatenate(logf)
    # sorted by hash, then column, the most frequent first; one entry per (word, column)
    order = np.lexsort((-value, col, hashes))
    hashes, col, value = hashes[order], col[order], value[order]
    first = np.ones(len(hashes), dtype=bool)
    first[1:] = (hashes[1:] != hashes[:-1]) | (col[1:] != col[:-1])
    hashes, col, value = hashes[first], col[first], value[first]
    starts = np.flatnonzero(np.concatenate([[True], hashes[1:] != hashes[:-1]]))
    return {"hashes": hashes[starts], "indptr": np.concatenate([starts, [len(hashes)]]).astype(np.int64),
            "cols": col, "logf": value, "listed": listed, "langs": np.array(list(profile_langs)),
            "fingerprint": np.array(_fingerprint(files))}


def load_lexicon(profile_langs: Sequence[str], cache: Optional[str] = "default",
                 data_dir: Optional[str] = None) -> Lexicon:
    """The lexicon for these profile columns: from ``cache`` when it matches the installed lists and
    columns, else built (a few seconds) and saved there (whole, then renamed) when the folder is
    writable. ``cache=None`` builds it in memory."""
    files = _list_files(data_dir or wordfreq_data_dir())
    path = default_cache_path() if cache == "default" else cache
    arrays = _read_cache(path, _fingerprint(files), profile_langs) if path else None
    if arrays is None:
        arrays = build_lexicon_arrays(profile_langs, data_dir)
        if path:
            _save(path, arrays)
    return Lexicon(arrays["hashes"], arrays["indptr"], arrays["cols"], arrays["logf"], arrays["listed"])


_ARRAYS = ("hashes", "indptr", "cols", "logf", "listed")


def _read_cache(path: str, fingerprint: str, profile_langs: Sequence[str]) -> Optional[dict]:
    """The cached arrays (memory-mapped) when the folder matches these lists and columns, else None."""
    try:
        with open(os.path.join(path, "meta.json"), encoding="utf-8") as f:
            meta = json.load(f)
        if meta.get("fingerprint") != fingerprint or meta.get("langs") != list(profile_langs):
            return None
        return {name: np.load(os.path.join(path, f"{name}.npy"), mmap_mode="r") for name in _ARRAYS}
    except (OSError, ValueError, KeyError):  # missing or damaged: build again
        return None


def _save(path: str, arrays: dict) -> None:
    """The arrays as a folder of .npy files, written whole under a temporary name, then renamed."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        os.makedirs(tmp, exist_ok=True)
        for name in _ARRAYS:
            np.save(os.path.join(tmp, f"{name}.npy"), arrays[name])
        meta = {"fingerprint": str(arrays["fingerprint"]), "langs": [str(x) for x in arrays["langs"]]}
        with open(os.path.join(tmp, "meta.json"), "w", encoding="utf-8") as f:
            json.dump(meta, f)
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)  # a stale cache (another wordfreq)
        os.replace(tmp, path)
    except OSError:  # a read-only home, or another process renamed first: this one builds in memory
        shutil.rmtree(tmp, ignore_errors=True)
