"""Prompts: a caption that is only a label becomes a sentence.

CLIP's fix for label-only data: "golden_retriever" becomes
"a photo of a golden retriever.", and with a domain hint for an ambiguous
label, "boxer" becomes "a photo of a boxer, a type of dog.".
"""
from __future__ import annotations

import re
import string
import unicodedata
from dataclasses import dataclass
from typing import Optional

DEFAULT_TEMPLATE = "a photo of a {label}."

# Our own set, for zero-shot ensembles and for variety in training prompts.
# Each names the label once; "a {label}" gets the right article.
ENSEMBLE_TEMPLATES: tuple[str, ...] = (
    "a photo of a {label}.",
    "{label}",
    "a picture showing a {label}.",
    "a drawing of a {label}.",
    "clip art of a {label}.",
    "an icon of a {label}.",
    "a close-up of a {label}.",
    "a blurry image of a {label}.",
    "a {label} on a plain white background.",
    "a photo taken outdoors of a {label}.",
    "a watercolor illustration of a {label}.",
    "a pencil sketch showing a {label}.",
    "a small {label} in the corner of the picture.",
    "a snapshot of a {label} taken with a phone.",
    "a 3D render of a {label}.",
    "a stock image of a {label}.",
    "a product photo of a {label} for an online shop.",
    "a grainy, low-light shot of a {label}.",
    "an overhead view of a {label}.",
    "a vintage photograph featuring a {label}.",
    "a screenshot with a {label} in it.",
    "a poster with a {label} on it.",
    "there is a {label} in this image.",
    "a children's book illustration of a {label}.",
    "an old, faded photo of a {label}.",
    "a logo shaped like a {label}.",
)

_FIELDS = frozenset({"label", "domain"})


def _check_template(template: str) -> None:
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as err:
        raise ValueError(f"prompt template {template!r}: {err}") from None
    if "label" not in names:
        raise ValueError(f"prompt template {template!r} has no {{label}} placeholder")
    unknown = names - _FIELDS
    if unknown:
        raise ValueError(f"prompt template {template!r} has unknown placeholders {sorted(unknown)}; only {{label}} and {{domain}}")


@dataclass(frozen=True)
class PromptConfig:
    """How label-only captions become prompts (see ``make_prompt``)."""

    template: str = DEFAULT_TEMPLATE
    domain: Optional[str] = None
    enabled: bool = True

    def __post_init__(self):
        _check_template(self.template)
        if "{domain}" in self.template and not self.domain:
            raise ValueError(f"prompt template {self.template!r} uses {{domain}} but no domain is given")


# --- labels ------------------------------------------------------------------

_NOT_IN_LABEL = re.compile(r"[.!?,;:/\\]")
_LETTER = re.compile(r"[^\W\d_]")
_CAMEL = re.compile(r"(?<=[a-z]{2})(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z]{2})")
_URLISH = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|www\.)", re.IGNORECASE)


def _split_camel(word: str) -> str:
    return _CAMEL.sub(" ", word)


def _words(caption: str) -> list[str]:
    """The words counted by ``is_label_like``: underscores, hyphens and camelCase split."""
    text = caption.replace("_", " ").replace("-", " ")
    return " ".join(_split_camel(w) for w in text.split()).split()


def is_label_like(caption: str) -> bool:
    """True when a caption is only a label.

    The rule: after splitting on underscores, hyphens and camelCase humps
    ("goldenRetriever" -> "golden Retriever"), the caption has one or two
    words; it contains none of . ! ? , ; : / \\ (so sentences, URLs and file
    names such as "IMG_1234.jpg" are not labels); it does not start like a
    URL ("http://", "www."); and it contains at least one letter.
    """
    if not isinstance(caption, str):
        return False
    parts = caption.split(None, 2)
    if not 1 <= len(parts) <= 2:  # splitting further never lowers the count
        return False
    text = " ".join(parts)
    if _URLISH.match(text) or _NOT_IN_LABEL.search(text) or not _LETTER.search(text):
        return False
    return 1 <= len(_words(text)) <= 2


def _is_acronym(word: str) -> bool:
    letters = [c for c in word if c.isalpha()]
    return len(letters) >= 2 and all(c.isupper() for c in letters)


def clean_label(raw: str) -> str:
    """A folder or column label as words: "golden_retriever" / "goldenRetriever"
    -> "golden retriever"; lower case except all-caps acronyms ("NASA", "USB")."""
    text = " ".join(_split_camel(w) for w in raw.replace("_", " ").split())
    return " ".join(w if _is_acronym(w) else w.lower() for w in text.split())


# --- articles ----------------------------------------------------------------

# Letters whose name starts with a vowel sound: "an F", "an M", "an X".
_AN_LETTERS = set("AEFHILMNORSX")
# Acronyms read as words, not letter by letter (a NASA rocket, a SCUBA diver).
_WORD_ACRONYMS = frozenset(
    """NASA NATO NASCAR NAFTA NIMBY NOAA FIFA FEMA LASER LIDAR RADAR SONAR SCUBA SWAT
    SIM SARS MASH RAM ROM LAN MOMA MIDI SATA RAID SNAP HUD HAL FOMO SOHO""".split()
)
_VOWELS = set("AEIOU")
_SILENT_H = ("hour", "honest", "honor", "honour", "heir")
_YOU_SOUND = ("uni", "use", "usa", "usu", "uti", "uto", "ute", "ubi", "uku", "ukr", "ura", "uri", "uro",
              "eu", "ewe")
_NOT_YOU_SOUND = ("unin", "unim", "unident")


def _reads_as_word(acronym: str) -> bool:
    """An all-caps word read as a word rather than letter by letter."""
    if acronym in _WORD_ACRONYMS:
        return True
    letters = "".join(c for c in acronym if c.isalpha())
    if len(letters) < 4 or not letters.isalpha() or letters != acronym:
        return False
    # Consonant then vowel, no run of three consonants: NASA, FIFA, MIDI.
    if letters[0] in _VOWELS or letters[1] not in _VOWELS:
        return False
    run = 0
    for c in letters:
        run = 0 if c in _VOWELS else run + 1
        if run >= 3:
            return False
    return True


def _number_article(digits: str) -> str:
    if digits[0] == "8":
        return "an"  # eight, eighty, eight hundred ...
    if digits[:2] in ("11", "18") and (len(digits) % 3 == 2 or len(digits) == 4):
        return "an"  # eleven, eighteen (thousand, hundred as in 1800s)
    return "a"


def _word_article(word: str) -> str:
    w = unicodedata.normalize("NFKD", word.lower())  # "éclair" -> "e" + accent
    if w.startswith(_SILENT_H):
        return "an"
    if w in ("one", "once") or (w.startswith("one") and not w.startswith("oner")):
        return "a"
    if w.startswith(_YOU_SOUND) and not w.startswith(_NOT_YOU_SOUND):
        return "a"
    return "an" if w[0] in "aeiou" else "a"


def indefinite_article(phrase: str) -> str:
    """ "a" or "an" for the phrase, by the sound of its first word.

    Handles silent h (an hour), "you"/"w" sounds (a unicorn, a European, a one),
    letters and acronyms by letter name (an FBI agent, an MRI, a UFO, an X-ray,
    a U-turn), acronyms read as words (a NASA rocket), and numbers (an 8-bit,
    an 11, a 7).
    """
    text = phrase.strip().lstrip("\"'([{“‘")
    if not text:
        return "a"
    first = text.split()[0]
    if first[0].isdigit():
        return _number_article(re.match(r"\d+", first).group())
    head = first.split("-")[0]
    if len(head) == 1 and head.isalpha() and (first != head or head.isupper()):
        return "an" if head.upper() in _AN_LETTERS else "a"  # a letter: X-ray, U-turn
    token = re.match(r"\w*", first).group() or first
    if _is_acronym(token) and not _reads_as_word(token):
        return "an" if token[0].upper() in _AN_LETTERS else "a"
    if not token[0].isalpha():
        return "a"
    return _word_article(token)


# --- prompts -----------------------------------------------------------------

_PLACEHOLDER = re.compile(r"(?:\b([Aa]n?) )?\{(label|domain)\}")
_TRAILING = re.compile(r"[.!?]*\s*$")
_LEADING_ARTICLE = re.compile(r"^(?:a|an)\s+(?=\S)", re.IGNORECASE)


def _with_domain_slot(template: str) -> str:
    if "{domain}" in template:
        return template
    cut = _TRAILING.search(template).start()
    return template[:cut] + ", a type of {domain}" + template[cut:]


def make_prompt(label: str, template: str = DEFAULT_TEMPLATE, domain: Optional[str] = None) -> str:
    """The sentence for a label: ``make_prompt("apple")`` -> "a photo of an apple.".

    The label is cleaned (``clean_label``) and a leading "a"/"an" dropped. An
    "a {label}" (or "A", "an", "An") in the template gets the article that fits
    the label. With a domain: a template with a ``{domain}`` placeholder fills
    it (articles fixed the same way); a template without one gets
    ", a type of {domain}" before its trailing . ! ? (or at its end), so the
    default gives "a photo of a boxer, a type of dog.".
    """
    _check_template(template)
    words = _LEADING_ARTICLE.sub("", clean_label(label))
    if not words:
        raise ValueError(f"label {label!r} has no words")
    values = {"label": words}
    if domain:
        values["domain"] = " ".join(domain.split())
        template = _with_domain_slot(template)
    elif "{domain}" in template:
        raise ValueError(f"prompt template {template!r} uses {{domain}} but no domain is given")

    def fill(m: re.Match) -> str:
        value = values[m.group(2)]
        article = m.group(1)
        if article is None:
            return value
        fitted = indefinite_article(value)
        if article[0] == "A":
            fitted = fitted.capitalize()
        return f"{fitted} {value}"

    return _PLACEHOLDER.sub(fill, template)


class PromptRewriter:
    """Turns a row whose caption is only a label into a row with a prompt."""

    _CACHE_SIZE = 100_000

    def __init__(self, config: PromptConfig):
        self.config = config
        self._cache: dict[str, tuple[str, str]] = {}  # labels repeat: prompt each once

    def prompt_for(self, caption) -> Optional[tuple[str, str]]:
        """(prompt, cleaned label) when the caption is label-like, else None."""
        if not self.config.enabled or not is_label_like(caption):
            return None
        found = self._cache.get(caption)
        if found is None:
            label = clean_label(caption)
            found = (make_prompt(label, self.config.template, self.config.domain), label)
            if len(self._cache) >= self._CACHE_SIZE:
                self._cache.clear()
            self._cache[caption] = found
        return found

    def rewrite(self, row: dict) -> dict:
        """A copy with caption = prompt, raw_caption = the original caption
        (an existing non-empty raw_caption is kept) and label = cleaned label
        (unless the row has one); the row itself when the caption is not a label."""
        found = self.prompt_for(row.get("caption"))
        if found is None:
            return row
        prompt, label = found
        out = dict(row)
        out["raw_caption"] = row.get("raw_caption") or row["caption"]
        out["caption"] = prompt
        if not row.get("label"):
            out["label"] = label
        return out
