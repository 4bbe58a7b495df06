"""Language identification for short captions, and the language filter.

langdetect's profiles are a naive Bayes model over character 1-3-grams.
``LanguageIdentifier`` loads them once into a matrix of log probabilities and
scores texts with numpy, deterministically (no random sampling). The script is
decided first: Hangul -> ko, kana -> ja, Han -> zh, and Cyrillic, Greek, Arabic
and the like narrow the candidates before the n-grams are scored. URLs, file
names and tokens with digits are stripped; a caption with too few letters left
gets ``und``.
"""
from __future__ import annotations

import json
import math
import os
import re
import unicodedata
from dataclasses import dataclass
from typing import Optional

import numpy as np

from clipcurate.filters.base import Drop

UNDETERMINED = "und"

# A rough share of each language on the web, used as a prior: short captions
# carry little evidence, so a common language wins a near tie. Unlisted: 0.0005.
WEB_PRIOR = {
    "en": 0.45, "ru": 0.06, "es": 0.05, "de": 0.05, "fr": 0.04, "ja": 0.04,
    "pt": 0.03, "it": 0.025, "zh-cn": 0.02, "zh-tw": 0.005, "nl": 0.015,
    "pl": 0.015, "tr": 0.015, "fa": 0.01, "vi": 0.01, "id": 0.01, "ar": 0.01,
    "ko": 0.008, "uk": 0.007, "cs": 0.007, "sv": 0.006, "hu": 0.005,
    "el": 0.005, "ro": 0.005, "da": 0.004, "fi": 0.004, "sk": 0.003,
    "no": 0.003, "he": 0.003, "th": 0.003, "bg": 0.002, "hr": 0.002,
    "lt": 0.002, "ca": 0.002, "hi": 0.002, "sl": 0.0015, "et": 0.0015,
    "lv": 0.0015,
}
_DEFAULT_PRIOR = 0.0005

# langdetect profile names -> the codes we output.
_OUTPUT_CODE = {"zh-cn": "zh", "zh-tw": "zh"}

# Scripts, by index. CJK ones are decided by rule, the others by n-grams.
SCRIPTS = ("other", "latin", "cyrillic", "greek", "arabic", "hebrew", "devanagari",
           "bengali", "gurmukhi", "gujarati", "tamil", "telugu", "kannada",
           "malayalam", "thai", "han", "kana", "hangul")
_S = {name: i for i, name in enumerate(SCRIPTS)}
_CJK = (_S["han"], _S["kana"], _S["hangul"])
_SCRIPT_WEIGHT = np.array([0.0, 1.0] + [2.0] * (len(SCRIPTS) - 2))
_SCRIPT_WEIGHT[list(_CJK)] = 3.0  # a CJK character counts 2 letters, so 6 Latin ones
_RANGES = (  # (first, last, script) for letters outside Latin
    (0x0370, 0x03FF, "greek"), (0x1F00, 0x1FFF, "greek"),
    (0x0400, 0x052F, "cyrillic"), (0x0590, 0x05FF, "hebrew"),
    (0x0600, 0x06FF, "arabic"), (0x0750, 0x077F, "arabic"),
    (0xFB50, 0xFDFF, "arabic"), (0xFE70, 0xFEFF, "arabic"),
    (0x0900, 0x097F, "devanagari"), (0x0980, 0x09FF, "bengali"),
    (0x0A00, 0x0A7F, "gurmukhi"), (0x0A80, 0x0AFF, "gujarati"),
    (0x0B80, 0x0BFF, "tamil"), (0x0C00, 0x0C7F, "telugu"),
    (0x0C80, 0x0CFF, "kannada"), (0x0D00, 0x0D7F, "malayalam"),
    (0x0E00, 0x0E7F, "thai"), (0x1100, 0x11FF, "hangul"),
    (0x3130, 0x318F, "hangul"), (0xAC00, 0xD7AF, "hangul"),
    (0x3040, 0x30FF, "kana"), (0x31F0, 0x31FF, "kana"), (0xFF66, 0xFF9F, "kana"),
    (0x3100, 0x312F, "han"), (0x31A0, 0x31BF, "han"),  # bopomofo counts as Chinese
    (0x3400, 0x4DBF, "han"), (0x4E00, 0x9FFF, "han"), (0xF900, 0xFAFF, "han"),
    (0x20000, 0x3FFFF, "han"),
)

_URL_RE = re.compile(r"(?:[a-z][a-z0-9+.-]*://|www\.)\S+", re.IGNORECASE)
_EMAIL_RE = re.compile(r"\S+@\S+\.\w+")
_FILE_RE = re.compile(
    r"\S*\.(?:jpe?g|png|gif|webp|bmp|tiff?|heic|avif|svg|ico|psd|raw|cr2|nef|dng|pdf|"
    r"mp4|mov|avi|mkv|webm|mp3|wav|zip|html?|php|aspx?)(?=$|[\s?#),;])",
    re.IGNORECASE)
_DOMAIN_RE = re.compile(
    r"\b[\w-]+(?:\.[\w-]+)*\.(?:com|net|org|info|biz|io|co|de|fr|uk|ru|jp|cn|it|es|nl|"
    r"pt|br|pl|eu|us|ca|au|ch|at|be)\b(?:/\S*)?", re.IGNORECASE)
_DIGIT_RE = re.compile(r"[0-9_]")

DEFAULT_CACHE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "langdetect_ngrams.npz")


@dataclass(frozen=True)
class LanguageConfig:
    """Options of the language stage.

    languages: codes to keep (None keeps every row, only filling the columns).
    min_letters: letters of the caption's script needed to name a language
        (a CJK character counts as two); fewer gives ``und``.
    prior_weight: how strongly the web prior (WEB_PRIOR) pulls near ties.
    smoothing: added to every n-gram probability (langdetect uses 0.5/10000).
    temperature: divides the n-gram log likelihood before the prior is added
        and the softmax gives the score: larger leans more on the prior and
        spreads the scores of ambiguous captions.
    """

    languages: Optional[tuple[str, ...]] = None
    min_letters: int = 3
    prior_weight: float = 1.0
    smoothing: float = 5e-5
    temperature: float = 5.0

    def __post_init__(self):
        if self.languages is not None:
            if isinstance(self.languages, str) or not all(isinstance(x, str) and x for x in self.languages):
                raise ValueError("languages must be a tuple of language codes, e.g. ('en', 'de')")
        if self.min_letters < 1:
            raise ValueError("min_letters must be at least 1")
        if self.prior_weight < 0 or self.smoothing <= 0 or self.temperature <= 0:
            raise ValueError("prior_weight must be >= 0, smoothing and temperature > 0")


def langdetect_profile_dir() -> str:
    """The folder of JSON profiles shipped with the installed langdetect."""
    import langdetect

    return os.path.join(os.path.dirname(langdetect.__file__), "profiles")


@dataclass(frozen=True)
class NgramModel:
    """langdetect's profiles as arrays: log P(ngram | language) plus bookkeeping."""

    langs: tuple[str, ...]             # profile names, e.g. "en", "zh-cn"
    vocab: dict                        # n-gram -> row of log_prob
    log_prob: np.ndarray               # (ngrams, langs) float32
    script_langs: np.ndarray           # (scripts, langs) bool: language written in script
    smoothing: float = 5e-5


def read_profiles(profile_dir: Optional[str] = None) -> dict:
    """langdetect's JSON profiles in sparse form: P(ngram | language) per (gram, lang) pair."""
    profile_dir = profile_dir or langdetect_profile_dir()
    names = sorted(n for n in os.listdir(profile_dir) if not n.startswith("."))
    vocab: dict[str, int] = {}
    rows, cols, probs = [], [], []
    for col, name in enumerate(names):
        with open(os.path.join(profile_dir, name), encoding="utf-8") as f:
            profile = json.load(f)
        n_words = profile["n_words"]
        for gram, count in profile["freq"].items():
            if 1 <= len(gram) <= 3 and "\n" not in gram:
                rows.append(vocab.setdefault(gram, len(vocab)))
                cols.append(col)
                probs.append(count / n_words[len(gram) - 1])
    return {
        "langs": np.array(names),
        "grams": np.array("\n".join(vocab)),
        "rows": np.array(rows, dtype=np.uint32),
        "cols": np.array(cols, dtype=np.uint8),
        "probs": np.array(probs, dtype=np.float32),
        "fingerprint": np.array(_profiles_fingerprint(profile_dir)),
    }


def _profiles_fingerprint(profile_dir: str) -> str:
    names = sorted(n for n in os.listdir(profile_dir) if not n.startswith("."))
    return ";".join(f"{n}:{os.path.getsize(os.path.join(profile_dir, n))}" for n in names)


def build_profile_cache(path: str = DEFAULT_CACHE, profile_dir: Optional[str] = None) -> str:
    """Write the installed profiles as a compact .npz that loads several times faster."""
    arrays = read_profiles(profile_dir)
    tmp = f"{path}.tmp-{os.getpid()}"  # written whole, then renamed: a reader never sees half a cache
    with open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)
    os.replace(tmp, path)
    return path


def load_ngram_model(profile_dir: Optional[str] = None, smoothing: float = 5e-5,
                     cache: Optional[str] = DEFAULT_CACHE) -> NgramModel:
    """langdetect's profiles as an ``NgramModel``: from ``cache`` when it matches the
    installed profiles, else parsed from the JSON files (about 0.1 s more)."""
    profile_dir = profile_dir or langdetect_profile_dir()
    arrays = None
    if cache and os.path.exists(cache):
        with np.load(cache) as data:
            if str(data["fingerprint"]) == _profiles_fingerprint(profile_dir):
                arrays = {k: data[k] for k in data.files}
    if arrays is None:
        arrays = read_profiles(profile_dir)
    return _model_from_arrays(arrays, smoothing)


def _model_from_arrays(arrays: dict, smoothing: float) -> NgramModel:
    names = tuple(str(x) for x in arrays["langs"])
    grams = str(arrays["grams"]).split("\n")
    vocab = dict(zip(grams, range(len(grams))))
    rows, cols, probs = arrays["rows"].astype(np.int64), arrays["cols"].astype(np.int64), arrays["probs"]
    log_prob = np.full((len(grams), len(names)), math.log(smoothing), dtype=np.float32)
    log_prob[rows, cols] = np.log(probs + np.float32(smoothing))
    # which scripts each language is written in: its share of single-letter mass
    gram_script = np.array([char_script(g) if len(g) == 1 else 0 for g in grams])
    script_mass = np.zeros((len(SCRIPTS), len(names)))
    np.add.at(script_mass, (gram_script[rows], cols), probs)
    share = script_mass / np.maximum(script_mass[1:].sum(axis=0), 1e-12)
    script_langs = share >= 0.25
    script_langs[_S["other"]] = False
    return NgramModel(names, vocab, log_prob, script_langs, smoothing)


def char_script(ch: str) -> int:
    """Index in SCRIPTS of a character's script; 0 ("other") for non-letters."""
    cp = ord(ch)
    if cp < 0x250 or 0x1E00 <= cp <= 0x1EFF or 0xFF21 <= cp <= 0xFF5A:
        return _S["latin"] if ch.isalpha() else 0
    for first, last, name in _RANGES:
        if first <= cp <= last:
            return _S[name] if not ch.isdigit() else 0
    return 0


class _CharTable(dict):
    """str.translate table built on demand: langdetect's normalization, non-letters -> space."""

    def __missing__(self, cp: int) -> str:
        from langdetect.utils.ngram import NGram

        ch = chr(cp)
        kind = unicodedata.category(ch)[0]
        keep = kind == "M" or (kind == "L" and char_script(ch) != 0)
        out = NGram.normalize(ch) if keep else " "
        self[cp] = out
        return out


def strip_non_language(text: str) -> str:
    """The caption without URLs, e-mail addresses, file names and tokens with digits."""
    if not text.isascii():  # NFKC: composed accents, fullwidth letters and kana folded
        text = unicodedata.normalize("NFKC", text)
    if "." in text or "/" in text or "@" in text:
        for pattern in (_URL_RE, _EMAIL_RE, _FILE_RE, _DOMAIN_RE):
            text = pattern.sub(" ", text)
    tokens = [t for t in text.split() if not (_DIGIT_RE.search(t) and max(t) < "\u2e80")]
    return " ".join(tokens)


class _WordCache:
    """Per distinct word: script, letter evidence and summed log likelihood per language."""

    def __init__(self, model: NgramModel, capacity: int):
        self.model = model
        self.capacity = capacity
        self._clear()

    def _clear(self, size: int = 1024):
        self.ids: dict[str, int] = {}
        self.script = np.zeros(size, dtype=np.int64)
        self.letters = np.zeros(size, dtype=np.float64)
        self.vec = np.zeros((size, len(self.model.langs)), dtype=np.float32)
        self._pending: list[str] = []

    def lookup(self, word: str) -> int:
        wid = self.ids.get(word)
        if wid is None:
            wid = self.ids[word] = len(self.ids)
            self._pending.append(word)
        return wid

    def reset_if_full(self):
        if len(self.ids) > self.capacity:
            self._clear()

    def flush(self):
        """Compute the arrays for the words looked up since the last flush."""
        if not self._pending:
            return
        first, vocab = len(self.ids) - len(self._pending), self.model.vocab
        if len(self.ids) > len(self.script):
            self._grow(2 * len(self.ids))
        grams_per_word = []
        for offset, word in enumerate(self._pending):
            self.script[first + offset], self.letters[first + offset] = _word_script(word)
            padded = f" {word} "
            grams_per_word.append([vocab[g] for n in (1, 2, 3) for i in range(len(padded) - n + 1)
                                   if (g := padded[i:i + n]) in vocab])
        counts = np.array([len(g) for g in grams_per_word])
        flat = np.fromiter((g for grams in grams_per_word for g in grams), dtype=np.int64)
        rows = first + np.flatnonzero(counts)
        if flat.size:
            starts = (np.cumsum(counts) - counts)[counts > 0]
            self.vec[rows] = np.add.reduceat(self.model.log_prob[flat], starts, axis=0)
        self._pending = []

    def _grow(self, size: int):
        for name in ("script", "letters", "vec"):
            old = getattr(self, name)
            new = np.zeros((size,) + old.shape[1:], dtype=old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)


def _word_script(word: str) -> tuple[int, float]:
    """A word's script (CJK wins over alphabets) and its letter evidence."""
    counts: dict[int, int] = {}
    for ch in word:
        s = char_script(ch)
        if s:
            counts[s] = counts.get(s, 0) + 1
    if not counts:
        return 0, 0.0
    for s in (_S["kana"], _S["hangul"], _S["han"]):
        if s in counts:
            return s, 2.0 * sum(counts.values())
    script = max(counts, key=counts.get)
    return script, float(counts[script])


class LanguageIdentifier:
    """Deterministic language identification of short texts; profiles load once."""

    def __init__(self, config: Optional[LanguageConfig] = None, profile_dir: Optional[str] = None,
                 word_cache_size: int = 200_000):
        self.config = config or LanguageConfig()
        self.model = load_ngram_model(profile_dir, self.config.smoothing)
        langs = self.model.langs
        self.out_codes = [_OUTPUT_CODE.get(lang, lang) for lang in langs]
        self._log_prior = self.config.prior_weight * np.log(
            np.array([WEB_PRIOR.get(lang, _DEFAULT_PRIOR) for lang in langs]))
        self._chars = _CharTable()
        self._words = _WordCache(self.model, word_cache_size)
        # CJK decisions: the profile column that names each rule's language.
        self._rule_lang = {_S["han"]: langs.index("zh-cn"), _S["kana"]: langs.index("ja"),
                           _S["hangul"]: langs.index("ko")}

    def detect(self, text: str) -> tuple[str, float]:
        """(ISO code, score in [0, 1]); ``und`` with score 0.0 when there is no language."""
        return self.detect_batch([text])[0]

    def detect_batch(self, texts: list[str]) -> list[tuple[str, float]]:
        """``detect`` for many texts at once (same results, much faster per text)."""
        if not texts:
            return []
        words = self._words
        words.reset_if_full()
        per_text = [[words.lookup(w) for w in self._words_of(t)] for t in texts]
        words.flush()
        return self._decide(per_text)

    def _words_of(self, text: str) -> list[str]:
        """Normalized words that can carry language evidence."""
        out = []
        for word in strip_non_language(text).translate(self._chars).split():
            if word.isupper():
                if len(word) <= 4:  # acronyms, sizes, codes: no language
                    continue
            out.append(word.lower())
        return out

    def _decide(self, per_text: list[list[int]]) -> list[tuple[str, float]]:
        words = self._words
        n = len(per_text)
        lengths = np.fromiter((len(ids) for ids in per_text), dtype=np.int64, count=n)
        flat = np.fromiter((i for ids in per_text for i in ids), dtype=np.int64, count=int(lengths.sum()))
        text_of = np.repeat(np.arange(n), lengths)
        script_of = words.script[flat]
        # letter evidence per text and script
        evidence = np.zeros((n, len(SCRIPTS)))
        np.add.at(evidence, (text_of, script_of), words.letters[flat])
        evidence[:, 0] = 0.0
        # Brand names and codes are Latin in every language: other scripts weigh double.
        weighted = evidence * _SCRIPT_WEIGHT
        total = weighted.sum(axis=1)
        cjk = weighted[:, list(_CJK)].sum(axis=1)
        alpha = weighted.copy()
        alpha[:, list(_CJK)] = 0.0
        main = alpha.argmax(axis=1)
        cjk_chars = evidence[:, list(_CJK)].sum(axis=1) / 2
        use_cjk = (cjk_chars >= 2) | ((cjk > 0) & (cjk >= alpha.max(axis=1)))
        cjk_rule = np.where(evidence[:, _S["hangul"]] > evidence[:, _S["kana"]], _S["hangul"],
                            np.where(evidence[:, _S["kana"]] > 0, _S["kana"], _S["han"]))
        chosen = np.where(use_cjk, cjk_rule, main)
        rows = np.arange(n)
        chosen_evidence = np.where(use_cjk, evidence[:, list(_CJK)].sum(axis=1), evidence[rows, main])
        share = np.divide(np.where(use_cjk, cjk, alpha[rows, main]), total, out=np.zeros(n), where=total > 0)

        # naive Bayes over the words written in the chosen script
        keep = (script_of == chosen[text_of]).astype(np.float32)
        loglik = np.zeros((n, len(self.model.langs)), dtype=np.float32)
        if flat.size:
            np.add.at(loglik, text_of, words.vec[flat] * keep[:, None])
        logits = loglik / self.config.temperature + self._log_prior
        logits = np.where(self.model.script_langs[chosen], logits, -np.inf)
        best = np.argmax(logits, axis=1)
        top = logits[rows, best]
        valid = np.isfinite(top) & (chosen_evidence >= self.config.min_letters)
        safe_top = np.where(valid, top, 0.0)
        denominator = np.exp(logits - safe_top[:, None]).sum(axis=1)
        posterior = 1.0 / np.where(valid, denominator, 1.0)
        score = np.round(np.where(use_cjk, 1.0, posterior) * share, 4).tolist()
        lang = np.where(use_cjk, [self._rule_lang.get(int(c), 0) for c in chosen], best).tolist()
        codes = self.out_codes
        return [(codes[lang[i]], score[i]) if valid[i] else (UNDETERMINED, 0.0) for i in range(n)]


class LanguageFilter:
    """Keeps rows whose ``language`` column is among those asked for."""

    def __init__(self, config: LanguageConfig):
        self.config = config
        self._wanted = None if config.languages is None else frozenset(config.languages)

    def check(self, row: dict) -> Optional[Drop]:
        if self._wanted is None:
            return None
        lang = row.get("language") or UNDETERMINED
        if lang == UNDETERMINED:
            return Drop("no_language")
        if lang not in self._wanted:
            score = row.get("language_score")
            detail = f" ({score:.2f})" if isinstance(score, (int, float)) else ""
            return Drop("language", f"detected {lang}{detail}")
        return None
