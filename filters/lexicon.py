"""Word frequencies per language (wordfreq's "small" lists) as arrays, for the language identifier.

Short captions ("bunte Luftballons", "fond texture bois") carry too few character n-grams for
langdetect's profiles to be sure of; whether each word is a common word of a language settles most
of them. wordfreq's small lists hold every word with a frequency of at least one in a million in
each of about 40 languages (1.7 M entries). They are read once into a compact table -- the sorted
64-bit hashes of the words, and per word its (language, log frequency) entries -- and saved as .npy
files in the user's cache folder, which later processes map into memory (a few milliseconds).
The table is rebuilt whenever the installed wordfreq's lists change (their names and sizes are its
fingerprint).

The language filter also asks whether a word is known *at all* in the languages asked for: for those it
loads wordfreq's "large" list where there is one (every word down to 10^-8; English, German, French and
18 others), else the small one, as a ``WordList`` per language, cached the same way.
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


def _cache_root() -> str:
    return os.environ.get("CLIPCURATE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "clipcurate")


def default_cache_path() -> str:
    return os.path.join(_cache_root(), f"wordfreq_{WORDLIST}")


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


def _find(hashes: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each of ``h`` would sit in the sorted, non-empty ``hashes``, and whether it is there."""
    pos = np.minimum(np.searchsorted(hashes, h), len(hashes) - 1)
    return pos, hashes[pos] == h


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
        return self.log_freq_of_hashes(word_hash(words) if len(words) else np.zeros(0, dtype=np.int64))

    def log_freq_of_hashes(self, h: np.ndarray) -> np.ndarray:
        """``log_freq`` of words given as their ``word_hash``."""
        out = np.full((len(h), len(self.listed)), -np.inf, dtype=np.float32)
        if not len(h) or not len(self.hashes):
            return out
        pos, held = _find(self.hashes, h)
        found = np.flatnonzero(held)
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


# ---------------------------------------------------------------- one language's widest list

WIDE_WORDLIST = "large"


def wordfreq_code(code: str) -> str:
    """wordfreq's code of an output code or profile name ("no" -> "nb", "zh-cn" -> "zh")."""
    for wf, profiles in _PROFILE_OF.items():
        if code in profiles or code == wf:
            return wf
    return code


@dataclass(frozen=True)
class WordList:
    """One language's words: sorted ``word_hash`` values and each word's natural log frequency."""

    hashes: np.ndarray  # (words,) int64, sorted
    logf: np.ndarray    # (words,) float32

    def log_freq_of_hashes(self, h: np.ndarray) -> np.ndarray:
        """(n,) float32: log frequency of each hashed word, -inf where the list does not hold it."""
        out = np.full(len(h), -np.inf, dtype=np.float32)
        if len(h) and len(self.hashes):
            pos, found = _find(self.hashes, h)
            out[found] = self.logf[pos[found]]
        return out


def load_wordlist(code: str, cache: Optional[str] = "default", data_dir: Optional[str] = None) -> Optional[WordList]:
    """The widest list wordfreq has for a language (output code: "en", "no", "zh"): "large" where it has
    one, else "small"; None when it has none. Cached as ``load_lexicon`` caches (``cache``: a folder,
    "default" for one beside the lexicon's, None to build in memory; about a second the first time)."""
    data_dir = data_dir or wordfreq_data_dir()
    wf = wordfreq_code(code)
    path = None
    for wordlist in (WIDE_WORDLIST, WORDLIST):
        candidate = os.path.join(data_dir, f"{wordlist}_{wf}.msgpack.gz")
        if os.path.exists(candidate):
            path = candidate
            break
    if path is None:
        return None
    fingerprint = f"{os.path.basename(path)}:{os.path.getsize(path)}"
    folder = os.path.join(_cache_root(), f"wordfreq_{WIDE_WORDLIST}_{wf}") if cache == "default" else cache
    if folder:
        try:
            with open(os.path.join(folder, "meta.json"), encoding="utf-8") as f:
                if json.load(f).get("fingerprint") == fingerprint:
                    return WordList(np.load(os.path.join(folder, "hashes.npy"), mmap_mode="r"),
                                    np.load(os.path.join(folder, "logf.npy"), mmap_mode="r"))
        except (OSError, ValueError, KeyError):
            pass
    from wordfreq import read_cBpack

    buckets = read_cBpack(path)
    words = [w for bucket in buckets for w in bucket]
    logf = np.repeat(-np.arange(len(buckets)) / 100.0 * math.log(10.0), [len(b) for b in buckets]).astype(np.float32)
    hashes = word_hash(words)
    order = np.lexsort((-logf, hashes))  # by hash, the most frequent first; one entry per hash
    hashes, logf = hashes[order], logf[order]
    first = np.concatenate([[True], hashes[1:] != hashes[:-1]]) if len(hashes) else np.zeros(0, dtype=bool)
    hashes, logf = hashes[first], logf[first]
    if folder:
        _save_wordlist(folder, hashes, logf, fingerprint)
    return WordList(hashes, logf)


def _save_wordlist(folder: str, hashes: np.ndarray, logf: np.ndarray, fingerprint: str) -> None:
    tmp = f"{folder}.tmp-{os.getpid()}"
    try:
        os.makedirs(tmp, exist_ok=True)
        np.save(os.path.join(tmp, "hashes.npy"), hashes)
        np.save(os.path.join(tmp, "logf.npy"), logf)
        with open(os.path.join(tmp, "meta.json"), "w", encoding="utf-8") as f:
            json.dump({"fingerprint": fingerprint}, f)
        if os.path.isdir(folder):
            shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
