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

import functools
import json
import math
import os
import re
import unicodedata
from dataclasses import dataclass
from typing import Optional

import numpy as np

from clipcurate.filters.base import Drop
from clipcurate.filters.lexicon import MIN_FREQUENCY, Lexicon, WordList, load_lexicon, load_wordlist, word_hash

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
_DIGIT_RE = re.compile(r"[0-9]")
_COPY_SUFFIX_RE = re.compile(r"\s*\(\d+\)(?=\.\w{2,5}$)")  # "image (3).png": a file name as saved twice
# Units after a number ("250 ml", "2.4 GHz", "100 x 200 cm", "45 km/h") are no language.
UNITS = frozenset("""
    mm cm dm m km in ft yd mi ml cl dl l oz lb lbs g kg mg t mah ah wh kwh w kw mw v a hz khz mhz ghz
    b kb mb gb tb pb kib mib gib tib bit bps kbps mbps px dpi ppi fps mp mph kph kmh rpm psi bar pa kpa
    °c °f c f k pcs pc pk qt gal cal kcal db ms s sec min h hr hrs x ×
""".split())
_UNIT_SPLIT_RE = re.compile(r"[/·.]")

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
    drop_confidence: with languages, drop a caption as another language when the
        posterior mass of the languages not asked for is at least this.
    word_evidence: with languages, let single words move that threshold
        (``LanguageFilter``: a word only another language has lowers it to
        FOREIGN_WORD_CONFIDENCE, one only a language asked for has raises it to
        KNOWN_WORD_CONFIDENCE).
    """

    languages: Optional[tuple[str, ...]] = None
    min_letters: int = 3
    prior_weight: float = 1.0
    smoothing: float = 5e-5
    temperature: float = 5.0
    lexicon_weight: float = 2.0
    unknown_penalty: float = 3.0
    compound_penalty: Optional[float] = 1.0
    max_frequency: float = 1e-4
    drop_confidence: float = 0.98
    page_prior: float = 0.0
    url_prior: float = 0.0
    word_evidence: bool = True

    def __post_init__(self):
        if self.languages is not None:
            if isinstance(self.languages, str) or not all(isinstance(x, str) and x for x in self.languages):
                raise ValueError("languages must be a tuple of language codes, e.g. ('en', 'de')")
        if self.min_letters < 1:
            raise ValueError("min_letters must be at least 1")
        if self.prior_weight < 0 or self.smoothing <= 0 or self.temperature <= 0:
            raise ValueError("prior_weight must be >= 0, smoothing and temperature > 0")
        if not 0.0 < self.drop_confidence <= 1.0:
            raise ValueError("drop_confidence must be in (0, 1]")
        if self.page_prior < 0 or self.url_prior < 0:
            raise ValueError("page_prior and url_prior must be >= 0")
        if self.lexicon_weight < 0 or self.unknown_penalty < 0:
            raise ValueError("lexicon_weight and unknown_penalty must be >= 0")


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
        out = NGram.normalize(ch) if _is_letter(ch) else " "
        self[cp] = out
        return out


class _LetterTable(dict):
    """str.translate table built on demand: letters and marks kept as they are, the rest -> space."""

    def __missing__(self, cp: int) -> str:
        ch = chr(cp)
        out = ch if _is_letter(ch) else " "
        self[cp] = out
        return out


def _is_letter(ch: str) -> bool:
    kind = unicodedata.category(ch)[0]
    return kind == "M" or (kind == "L" and char_script(ch) != 0)


def strip_non_language(text: str) -> str:
    """The caption without URLs, e-mail addresses, file names, tokens with digits and the units after
    a number."""
    if not text.isascii():  # NFKC: composed accents, fullwidth letters and kana folded
        text = unicodedata.normalize("NFKC", text)
    if "." in text or "/" in text or "@" in text:
        text = _COPY_SUFFIX_RE.sub("", text)
        for pattern in (_URL_RE, _EMAIL_RE, _FILE_RE, _DOMAIN_RE):
            text = pattern.sub(" ", text)
    tokens, after_number = [], False
    for token in text.split():
        if _DIGIT_RE.search(token) and max(token) < "\u2e80":
            after_number = True
        elif after_number and _is_unit(token):
            continue  # after_number stays: "6 ft 2 in", "100 x 200 cm"
        else:
            after_number = False
            tokens.append(token)
    return " ".join(tokens)


def _is_unit(token: str) -> bool:
    parts = [p for p in _UNIT_SPLIT_RE.split(token.lower().strip(",;:()[]")) if p]
    return bool(parts) and all(p in UNITS for p in parts)


# Keyboard rows (QWERTY, QWERTZ, AZERTY): a word that walks along one is a mash, not a word.
_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm", "qwertzuiop", "yxcvbnm", "azertyuiop", "qsdfghjklm", "wxcvbn")
_ADJACENT = frozenset(row[i:i + 2] for row in _ROWS for i in range(len(row) - 1)) | \
    frozenset(row[i + 1] + row[i] for row in _ROWS for i in range(len(row) - 1))
_VOWELS = frozenset("aeiouyàáâãäåæèéêëìíîïòóôõöøùúûüýÿœąęėįųūīēāěůőű")


@functools.lru_cache(maxsize=1 << 16)
def is_mash(word: str) -> bool:
    """A lower-case Latin word that is typed, not written: a keyboard-row walk ("asdfgh", "poiuyt"),
    a short unit repeated ("jkljkl", "aaaaaa", "hahaha"; "murmur" and "couscous" stay words), or five
    letters or more without a vowel ("sdfsdf", "zxcvbnm")."""
    n = len(word)
    if n < 5 or not word.isascii():
        return False
    if sum(word[i:i + 2] in _ADJACENT for i in range(n - 1)) >= 0.8 * (n - 1):
        return True
    if not any(ch in _VOWELS for ch in word):
        return True
    for unit in range(1, 5):
        repeats = n // unit
        if repeats >= 2 and n >= 6 and word == (word[:unit] * (repeats + 1))[:n]:
            return repeats >= 3 or not any(ch in _VOWELS for ch in word[:unit])
    return False


class _WordCache:
    """Per distinct word: script, letter evidence and its evidence per language -- the summed n-gram
    log likelihood over the temperature, plus the lexicon's log frequency times its weight -- and, for
    the filter's word evidence, its ``word_hash`` and the languages whose word list holds it."""

    def __init__(self, model: NgramModel, capacity: int, lexicon: Lexicon, config: "LanguageConfig"):
        self.model = model
        self.capacity = capacity
        self.lexicon = lexicon
        self.config = config
        self._chars = _CharTable()
        self._clear()

    def _clear(self, size: int = 1024):
        # new objects, never cleared in place: a Guesses may still hold the old ``names``
        self.ids: dict[str, int] = {}
        self.names: list[str] = []
        self.script = np.zeros(size, dtype=np.int64)
        self.letters = np.zeros(size, dtype=np.float64)
        self.vec = np.zeros((size, len(self.model.langs)), dtype=np.float32)
        self.hash = np.zeros(size, dtype=np.int64)
        self.listed = np.zeros((size, len(self.model.langs)), dtype=bool)
        self._pending: list[str] = []

    def lookup(self, word: str) -> int:
        wid = self.ids.get(word)
        if wid is None:
            wid = self.ids[word] = len(self.ids)
            self.names.append(word)
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
            padded = f" {word.translate(self._chars)} "
            grams_per_word.append([vocab[g] for n in (1, 2, 3) for i in range(len(padded) - n + 1)
                                   if (g := padded[i:i + n]) in vocab])
        counts = np.array([len(g) for g in grams_per_word])
        flat = np.fromiter((g for grams in grams_per_word for g in grams), dtype=np.int64)
        new = np.zeros((len(self._pending), len(self.model.langs)), dtype=np.float32)
        if flat.size:
            starts = (np.cumsum(counts) - counts)[counts > 0]
            new[np.flatnonzero(counts)] = np.add.reduceat(self.model.log_prob[flat], starts, axis=0)
        config = self.config
        new /= config.temperature
        folded = [w.casefold() for w in self._pending]
        hashes = word_hash(folded)
        logf = self.lexicon.log_freq_of_hashes(hashes)
        if config.lexicon_weight > 0:
            new += config.lexicon_weight * self._lexicon_evidence(folded, logf)
        end = first + len(self._pending)
        self.vec[first:end] = new
        self.hash[first:end] = hashes
        self.listed[first:end] = np.isfinite(logf)
        self._pending = []

    def _lexicon_evidence(self, folded: list[str], logf: np.ndarray) -> np.ndarray:
        """(words, profiles): log frequency in each language's word list (``logf``, of the case-folded
        words); a word not in a list is rarer than its cut-off (MIN_FREQUENCY): it scores the cut-off
        less ``unknown_penalty``, or less only ``compound_penalty`` when two words of that list make it
        up ("laptop|tasche", "clip|art")."""
        config = self.config
        cut = math.log(MIN_FREQUENCY)
        out = np.clip(logf, np.float32(cut - config.unknown_penalty), np.float32(math.log(config.max_frequency)))
        splits = [(i, k) for i, w in enumerate(folded) if len(w) >= 2 * _MIN_PART
                  for k in range(_MIN_PART, len(w) - _MIN_PART + 1)]
        if splits and config.compound_penalty is not None:
            parts = self.lexicon.log_freq([folded[i][:k] for i, k in splits] + [folded[i][k:] for i, k in splits])
            both = np.isfinite(parts[:len(splits)]) & np.isfinite(parts[len(splits):])
            compound = np.zeros(logf.shape, dtype=bool)
            np.logical_or.at(compound, np.array([i for i, _ in splits]), both)
            out = np.where(compound, np.maximum(out, np.float32(cut - config.compound_penalty)), out)
        return out

    def _grow(self, size: int):
        for name in ("script", "letters", "vec", "hash", "listed"):
            old = getattr(self, name)
            new = np.zeros((size,) + old.shape[1:], dtype=old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)


_MIN_PART = 3  # letters in each part of a compound


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


@dataclass(frozen=True)
class WordEvidence:
    """The words the identifier scored (those in each text's script), one entry per occurrence."""

    text: np.ndarray     # (words,) int64: the text it is in
    hashes: np.ndarray   # (words,) int64: ``word_hash`` of the case-folded word
    listed: np.ndarray   # (words, profiles) bool: the language's small word list holds it
    ids: np.ndarray      # (words,) int64: index in ``names``
    names: list          # the words, as the identifier normalized them

    def word(self, i: int) -> str:
        return self.names[int(self.ids[i])]


class Guesses:
    """``LanguageIdentifier.guess_batch``'s answers: the best language and score per text, and the whole
    posterior over the profiles (a row sums to 1; a row of zeros where the text has no language)."""

    __slots__ = ("codes", "langs", "scores", "posterior", "valid", "words")

    def __init__(self, codes: list[str], langs: list[str], scores: list[float], posterior: np.ndarray,
                 valid: np.ndarray, words: Optional[WordEvidence] = None):
        self.codes = codes          # output code of each profile column ("zh-cn" -> "zh")
        self.langs = langs          # per text: ISO code or ``und``
        self.scores = scores        # per text: the best language's posterior times its script's share
        self.posterior = posterior  # (texts, profiles)
        self.valid = valid          # (texts,) bool: False for ``und``
        self.words = words          # the scored words, for the filter's word evidence

    def __len__(self) -> int:
        return len(self.langs)

    def pairs(self) -> list[tuple[str, float]]:
        return list(zip(self.langs, self.scores))

    def share_of(self, languages) -> np.ndarray:
        """(texts,) the posterior mass of ``languages`` (output codes); 0.0 for ``und`` texts."""
        wanted = set(languages)
        columns = [i for i, code in enumerate(self.codes) if code in wanted]
        return self.posterior[:, columns].sum(axis=1) if columns else np.zeros(len(self.langs))


class LanguageIdentifier:
    """Deterministic language identification of short texts; profiles load once."""

    def __init__(self, config: Optional[LanguageConfig] = None, profile_dir: Optional[str] = None,
                 word_cache_size: int = 200_000, lexicon_cache: Optional[str] = "default"):
        self.config = config or LanguageConfig()
        self.model = load_ngram_model(profile_dir, self.config.smoothing)
        langs = self.model.langs
        self.out_codes = [_OUTPUT_CODE.get(lang, lang) for lang in langs]
        self._log_prior = self.config.prior_weight * np.log(
            np.array([WEB_PRIOR.get(lang, _DEFAULT_PRIOR) for lang in langs]))
        self._letters = _LetterTable()
        lexicon = load_lexicon(langs, cache=lexicon_cache)
        self._words = _WordCache(self.model, word_cache_size, lexicon, self.config)
        # CJK decisions: the profile column that names each rule's language.
        self._rule_lang = {_S["han"]: langs.index("zh-cn"), _S["kana"]: langs.index("ja"),
                           _S["hangul"]: langs.index("ko")}
        self._columns = _code_columns(langs)

    def detect(self, text: str) -> tuple[str, float]:
        """(ISO code, score in [0, 1]); ``und`` with score 0.0 when there is no language."""
        return self.detect_batch([text])[0]

    def detect_batch(self, texts: list[str], hints: Optional[list] = None) -> list[tuple[str, float]]:
        """``detect`` for many texts at once (same results, much faster per text)."""
        return self.guess_batch(texts, hints).pairs()

    def guess_batch(self, texts: list[str], hints: Optional[list] = None) -> Guesses:
        """The answers of ``detect_batch`` with the whole posterior. ``hints``: per text ``None`` or a
        sequence of (language code, weight in nats) added to that language's log posterior before
        normalizing (the page's declared language, the URL's country: see ``row_hints``)."""
        words = self._words
        words.reset_if_full()
        per_text = [[words.lookup(w) for w in self._words_of(t)] for t in texts]
        words.flush()
        return self._decide(per_text, self._bonus(hints, len(texts)))

    def _bonus(self, hints: Optional[list], n: int) -> Optional[np.ndarray]:
        """(texts, profiles) log-prior bonus from the hints, or None when there is none."""
        if not hints:
            return None
        rows, cols, weights = [], [], []
        for i, text_hints in enumerate(hints):
            for code, weight in text_hints or ():
                for col in self._columns.get(code, ()):
                    rows.append(i)
                    cols.append(col)
                    weights.append(weight)
        if not rows:
            return None
        bonus = np.zeros((n, len(self.model.langs)))
        np.maximum.at(bonus, (np.array(rows), np.array(cols)), np.array(weights, dtype=np.float64))
        return bonus

    def _words_of(self, text: str) -> list[str]:
        """Normalized words that can carry language evidence: no acronyms, no keyboard mashes."""
        words = strip_non_language(text).translate(self._letters).split()
        if len(words) == 1 and words[0].isupper() and len(words[0]) > 1:
            return []  # a lone all-caps word is an acronym or a brand (NASA, UNESCO), no language
        out = []
        for word in words:
            if word.isupper() and len(word) <= 4:  # acronyms, sizes, codes: no language
                continue
            word = word.lower()
            if not is_mash(word):
                out.append(word)
        return out

    def _decide(self, per_text: list[list[int]], bonus: Optional[np.ndarray] = None) -> Guesses:
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
        logits = loglik + self._log_prior
        if bonus is not None:
            logits = logits + bonus
        logits = np.where(self.model.script_langs[chosen], logits, -np.inf)
        best = np.argmax(logits, axis=1)
        top = logits[rows, best]
        valid = np.isfinite(top) & (chosen_evidence >= self.config.min_letters)
        safe_top = np.where(valid, top, 0.0)
        posterior = np.exp(logits - safe_top[:, None])
        posterior /= np.maximum(posterior.sum(axis=1, keepdims=True), 1e-300)
        # a CJK script decides by rule: all the mass on its language
        rule_col = np.array([self._rule_lang.get(int(c), 0) for c in chosen])
        cjk_rows = np.flatnonzero(use_cjk)
        posterior[cjk_rows] = 0.0
        posterior[cjk_rows, rule_col[cjk_rows]] = 1.0
        posterior[~valid] = 0.0
        lang = np.where(use_cjk, rule_col, best)
        score = np.round(posterior[rows, lang] * share, 4).tolist()
        codes = self.out_codes
        lang = lang.tolist()
        langs = [codes[lang[i]] if valid[i] else UNDETERMINED for i in range(n)]
        scores = [score[i] if valid[i] else 0.0 for i in range(n)]
        scored = np.flatnonzero(keep)
        evidence = WordEvidence(text_of[scored], words.hash[flat[scored]], words.listed[flat[scored]],
                                flat[scored], words.names)
        return Guesses(codes, langs, scores, posterior, valid, evidence)


def _code_columns(langs: tuple[str, ...]) -> dict[str, tuple[int, ...]]:
    """Output code or profile name -> its profile columns ("zh" -> both Chinese profiles)."""
    out: dict[str, list[int]] = {}
    for i, lang in enumerate(langs):
        for code in {lang, _OUTPUT_CODE.get(lang, lang)}:
            out.setdefault(code, []).append(i)
    return {code: tuple(cols) for code, cols in out.items()}


# ---------------------------------------------------------------- priors from where the row was found

# Weights (nats added to a language's log posterior) that --language-page-prior and --language-url-prior
# use when given without a number; chosen with benchmarks/language_filter.py --hints right|wrong.
PAGE_PRIOR = 2.0
URL_PRIOR = 1.0

_TAG_ALIASES = {"nb": "no", "nn": "no", "iw": "he", "in": "id", "ji": "yi", "fil": "tl", "zh-hans": "zh",
                "zh-hant": "zh", "zh-cn": "zh", "zh-tw": "zh", "zh-hk": "zh", "sh": "hr", "bs": "hr", "sr": "hr"}
# country-code TLD -> the languages mostly written under it (a weak hint: one of these)
CCTLD_LANGUAGES = {
    "de": ("de",), "at": ("de",), "ch": ("de", "fr", "it"), "li": ("de",), "fr": ("fr",), "be": ("nl", "fr"),
    "lu": ("fr", "de"), "es": ("es",), "mx": ("es",), "ar": ("es",), "cl": ("es",), "pe": ("es",),
    "it": ("it",), "pt": ("pt",), "br": ("pt",), "nl": ("nl",), "pl": ("pl",), "se": ("sv",), "dk": ("da",),
    "no": ("no",), "fi": ("fi",), "cz": ("cs",), "sk": ("sk",), "hu": ("hu",), "ro": ("ro",), "tr": ("tr",),
    "gr": ("el",), "ru": ("ru",), "ua": ("uk",), "bg": ("bg",), "hr": ("hr",), "si": ("sl",), "lt": ("lt",),
    "lv": ("lv",), "ee": ("et",), "jp": ("ja",), "kr": ("ko",), "cn": ("zh",), "tw": ("zh",), "hk": ("zh",),
    "vn": ("vi",), "id": ("id",), "th": ("th",), "il": ("he",), "ir": ("fa",), "uk": ("en",), "ie": ("en",),
    "au": ("en",), "nz": ("en",), "us": ("en",), "ca": ("en", "fr"), "qc": ("fr",),
}
# two-letter path segments and query values that name a language ("/de/", "/fr-fr/", "?lang=it");
# "id", "in", "it", "no" alone are too often something else
_PATH_LANG_RE = re.compile(r"(?:^|/)([a-z]{2})(?:[-_]([a-z]{2}))?(?=/|$)")
_QUERY_LANG_RE = re.compile(r"(?:^|[?&])(?:lang|language|hl|locale|lc)=([a-z]{2})(?:[-_]([a-z]{2}))?(?=&|$)",
                            re.IGNORECASE)
_AMBIGUOUS_SEGMENTS = frozenset({"id", "in", "it", "no", "am", "as", "be", "do", "go", "is", "me", "my", "so",
                                 "to", "up", "us", "ok", "tv", "pr", "hi", "ar"})


def language_of_tag(tag: Optional[str]) -> Optional[str]:
    """The output code of a BCP 47 language tag ("de-AT" -> "de", "zh-Hant" -> "zh", "nb" -> "no"),
    or None when it names no language the identifier knows."""
    tag = (tag or "").strip().lower().replace("_", "-")
    if not tag:
        return None
    code = _TAG_ALIASES.get(tag) or _TAG_ALIASES.get(tag.split("-")[0]) or tag.split("-")[0]
    return code if code in supported_languages() else None


def page_hints(declared: Optional[str], weight: float) -> tuple:
    """Hints from a page's declared language (``<html lang>`` or ``Content-Language``, which may list
    several: "de, en"): (code, weight) each."""
    if not declared or weight <= 0:
        return ()
    codes = dict.fromkeys(c for c in (language_of_tag(t) for t in re.split(r"[,;\s]+", declared)) if c)
    return tuple((code, weight) for code in codes)


def url_languages(url: Optional[str]) -> tuple[str, ...]:
    """Languages a URL points to: its country-code TLD ("shop.example.de"), a language segment in its
    path ("/fr/", "/pt-br/") or a lang= query value."""
    import urllib.parse

    try:
        parts = urllib.parse.urlsplit(url or "")
    except ValueError:
        return ()
    found: list[str] = []
    host = (parts.hostname or "").rstrip(".")
    tld = host.rsplit(".", 1)[-1] if "." in host else ""
    found += CCTLD_LANGUAGES.get(tld, ())
    for match in _PATH_LANG_RE.finditer(parts.path.lower()[:200]):
        lang, region = match.groups()
        if lang in _AMBIGUOUS_SEGMENTS and not region:
            continue
        code = language_of_tag(lang)
        if code:
            found.append(code)
        break  # the first language-like segment only
    for match in _QUERY_LANG_RE.finditer(parts.query[:300]):
        code = language_of_tag(match.group(1))
        if code:
            found.append(code)
    return tuple(dict.fromkeys(found))


def row_hints(row: dict, config: "LanguageConfig") -> tuple:
    """The priors the row gives: its page's declared language (``page_language``, from a crawl or WARC)
    and its page's (else its image's) URL, weighted by ``config.page_prior`` and ``config.url_prior``."""
    hints = page_hints(row.get("page_language"), config.page_prior) if config.page_prior > 0 else ()
    if config.url_prior > 0:
        url = row.get("page_url") or row.get("url")
        hints += tuple((code, config.url_prior) for code in url_languages(url))
    return hints


_SUPPORTED: Optional[frozenset] = None


def supported_languages(profile_dir: Optional[str] = None) -> frozenset:
    """The output codes the identifier can give (langdetect's profiles: "zh-cn", "zh-tw" -> "zh")."""
    global _SUPPORTED
    if profile_dir is not None:
        names = (n for n in os.listdir(profile_dir) if not n.startswith("."))
        return frozenset(_OUTPUT_CODE.get(n, n) for n in names)
    if _SUPPORTED is None:
        _SUPPORTED = supported_languages(langdetect_profile_dir())
    return _SUPPORTED


# Word evidence (LanguageFilter.word_clues). A *foreign* word: held by the small list (>= 1e-6) of a
# language not asked for, and by no list of a language asked for at FOREIGN_ABSENT_BELOW or more
# (wordfreq's large lists where there is one: they reach 1e-8). A *known* word: held by a list of a
# language asked for at KNOWN_WORD_FREQUENCY or more, and by the small list of no other language.
FOREIGN_WORD_CONFIDENCE = 0.7     # a caption with a foreign word: dropped when 70% sure it is another language
KNOWN_WORD_CONFIDENCE = 0.9999    # a caption with a known word: dropped only when all but certain
FOREIGN_ABSENT_BELOW = 1e-7
KNOWN_WORD_FREQUENCY = 10 ** -6.5
_LOG_FOREIGN_ABSENT = math.log(FOREIGN_ABSENT_BELOW)
_LOG_KNOWN = math.log(KNOWN_WORD_FREQUENCY)


@dataclass(frozen=True)
class WordClue:
    """A word that moves one caption's drop threshold: ``kind`` "foreign" (only another language has it)
    or "known" (only a language asked for has it), and the threshold it sets."""

    kind: str
    word: str
    confidence: float


class LanguageFilter:
    """Drops a row as another language only when the identifier is sure of it.

    The rule: with ``languages`` asked for, a caption with no language is ``no_language``; otherwise the
    posterior mass of the languages *not* asked for is compared with ``drop_confidence``: at or above
    it the row is dropped as ``language``, below it the row is kept. With ``word_evidence`` one word can
    move that threshold (``word_clues``): a caption with a *foreign* word and no *known* one is dropped
    at min(drop_confidence, FOREIGN_WORD_CONFIDENCE), one with a known word and no foreign one only at
    max(drop_confidence, KNOWN_WORD_CONFIDENCE). A kept row whose best guess is not among the languages
    asked for is *uncertain* (kept on doubt; counted by the stage).
    """

    def __init__(self, config: LanguageConfig, wordlist_cache: Optional[str] = "default"):
        self.config = config
        self._wanted = None if config.languages is None else frozenset(config.languages)
        self._wordlist_cache = wordlist_cache
        self._wordlists: Optional[list[WordList]] = None  # loaded on first use

    def _wanted_wordlists(self) -> list[WordList]:
        """The widest word list of each language asked for; none when one of them has no list (then
        nothing can be said to be missing from them)."""
        if self._wordlists is None:
            lists = [load_wordlist(code, self._wordlist_cache) for code in sorted(self._wanted)]
            self._wordlists = lists if all(x is not None for x in lists) else []
        return self._wordlists

    def word_clues(self, guesses: Guesses) -> list[Optional[WordClue]]:
        """Per text the word that moves its drop threshold, or None (no such word, or words of both
        kinds, or ``word_evidence`` off)."""
        n = len(guesses)
        out: list[Optional[WordClue]] = [None] * n
        ev = guesses.words
        if self._wanted is None or not self.config.word_evidence or ev is None or not len(ev.text):
            return out
        lists = self._wanted_wordlists()
        if not lists:
            return out
        wanted_cols = np.array([code in self._wanted for code in guesses.codes])
        wanted_logf = np.max([wl.log_freq_of_hashes(ev.hashes) for wl in lists], axis=0)
        elsewhere = ev.listed[:, ~wanted_cols].any(axis=1)
        foreign = elsewhere & (wanted_logf < _LOG_FOREIGN_ABSENT)
        known = ~elsewhere & (wanted_logf >= _LOG_KNOWN)
        has_foreign = np.bincount(ev.text[foreign], minlength=n) > 0
        has_known = np.bincount(ev.text[known], minlength=n) > 0
        base = self.config.drop_confidence
        for kind, mask, has, other, confidence in (
                ("foreign", foreign, has_foreign, has_known, min(base, FOREIGN_WORD_CONFIDENCE)),
                ("known", known, has_known, has_foreign, max(base, KNOWN_WORD_CONFIDENCE))):
            at = np.flatnonzero(mask)
            texts, first = np.unique(ev.text[at], return_index=True)
            for text, i in zip(texts.tolist(), at[first].tolist()):
                if has[text] and not other[text]:
                    out[text] = WordClue(kind, ev.word(i), confidence)
        return out

    @property
    def active(self) -> bool:
        return self._wanted is not None

    def wanted_share(self, guesses: Guesses) -> np.ndarray:
        """(texts,) the posterior mass of the languages asked for (1.0 for every text when none are)."""
        if self._wanted is None:
            return np.ones(len(guesses))
        return guesses.share_of(self._wanted)

    def check(self, row: dict, wanted_share: Optional[float] = None, clue: Optional[WordClue] = None) -> Optional[Drop]:
        """Keep (None) or drop the row from its ``language`` columns and the wanted languages' posterior
        mass (``wanted_share``; without it, only the best guess is known: its ``language_score`` is then
        taken as the unwanted mass, a lower bound), with the threshold its ``clue`` sets, if any
        (``word_clues``)."""
        if self._wanted is None:
            return None
        lang = row.get("language") or UNDETERMINED
        if lang == UNDETERMINED:
            return Drop("no_language")
        if lang in self._wanted and wanted_share is None:
            return None
        score = row.get("language_score")
        if wanted_share is None:
            unwanted = float(score) if isinstance(score, (int, float)) else 1.0
        else:
            unwanted = 1.0 - float(wanted_share)
        confidence = self.config.drop_confidence if clue is None else clue.confidence
        if unwanted >= confidence:
            detail = f" ({score:.2f})" if isinstance(score, (int, float)) else ""
            wanted = ",".join(sorted(self._wanted))
            why = ""
            if clue is not None and clue.kind == "foreign":
                why = f" (>= {confidence:g}: {clue.word!r} is a word of another language, not of {wanted})"
            elif clue is not None:
                why = f" (>= {confidence:g} although {clue.word!r} is a word of {wanted} only)"
            return Drop("language", f"detected {lang}{detail}; {unwanted:.3f} sure it is none of {wanted}{why}")
        return None

    def uncertain(self, row: dict) -> bool:
        """A kept row whose best guess is a language not asked for."""
        lang = row.get("language") or UNDETERMINED
        return self._wanted is not None and lang != UNDETERMINED and lang not in self._wanted
