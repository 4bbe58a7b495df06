"""Caption cleanup, URL checks and the stable content key (per-row functions)."""
from __future__ import annotations

import hashlib
import html
import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

from clipcurate.filters.base import Drop

_SPACE = re.compile(r"\s+")
_CC = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # exactly Unicode category Cc
_REMOVED = ("Cc", "Cf", "Zl", "Zp", "Cs", "Co")  # categories replaced by a space in captions
_TAGS = re.compile(r"</?[A-Za-z][A-Za-z0-9]*(?:\s[^<>]{0,200})?/?>")


@dataclass(frozen=True)
class NormalizeConfig:
    max_caption_chars: int = 1000  # longer captions (after cleanup) are dropped: caption_too_long
    strip_html_tags: bool = True


def clean_caption(text) -> str:
    """HTML entities decoded, tags and control characters removed, whitespace collapsed, NFC."""
    if text is None:
        return ""
    text = str(text)
    if "&" in text:
        for _ in range(2):  # doubly escaped alt-text (&amp;amp;) is common on the web
            unescaped = html.unescape(text)
            if unescaped == text:
                break
            text = unescaped
    if "<" in text:
        text = _TAGS.sub(" ", text)
    if text.isascii():  # the common case: of the removed categories only Cc is ASCII, and NFC changes nothing
        text = _CC.sub(" ", text)
    else:
        text = "".join(" " if unicodedata.category(ch) in _REMOVED else ch for ch in text)
        text = unicodedata.normalize("NFC", text)
    return _SPACE.sub(" ", text).strip()


# A URL that canonicalizes to itself but for the scheme's and host's case, an empty path and the
# fragment: ASCII http(s), a plain host name, no port or credentials, path and query made only of
# characters quote() leaves alone. Such URLs (most of the web's) skip urlsplit/quote/urlunsplit.
_SAFE = r"A-Za-z0-9/%:@!$&'()*+,;=._~\-"
_SIMPLE_URL = re.compile(rf"(?i:(https?))://([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)(/[{_SAFE}]*)?(?:\?([{_SAFE}?]*))?(?:#.*)?",
                         re.DOTALL)


def normalize_url(url) -> tuple[str | None, Drop | None]:
    """A canonical http(s) URL, or the reason it is not one."""
    if url is None or not str(url).strip():
        return None, Drop("missing_url")
    raw = str(url).strip()
    if _CC.search(raw):
        return None, Drop("malformed_url", "control characters in URL")
    simple = _SIMPLE_URL.fullmatch(raw)
    if simple:
        scheme, host, path, query = simple.groups()
        return f"{scheme.lower()}://{host.lower()}{path or '/'}{'?' + query if query else ''}", None
    return canonical_url(raw)


def canonical_url(raw: str) -> tuple[str | None, Drop | None]:
    """The general path of ``normalize_url`` for a stripped URL without control characters."""
    try:
        parts = urlsplit(raw)
        scheme = parts.scheme.lower()
        if not scheme:
            return None, Drop("malformed_url", f"no scheme: {raw[:200]}")
        if scheme not in ("http", "https"):
            return None, Drop("unsupported_scheme", f"scheme {scheme!r} is not http or https")
        host = parts.hostname
        if not host:
            return None, Drop("malformed_url", f"no host: {raw[:200]}")
        port = parts.port  # raises ValueError for a bad port
    except ValueError as err:
        return None, Drop("malformed_url", f"{err}: {raw[:200]}")
    try:
        host = host.encode("idna").decode("ascii") if not host.isascii() else host.lower()
    except UnicodeError:
        return None, Drop("malformed_url", f"invalid host name: {host[:200]}")
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if port is not None and not ((scheme == "http" and port == 80) or (scheme == "https" and port == 443)):
        host = f"{host}:{port}"
    if parts.username or parts.password:
        return None, Drop("malformed_url", "credentials in URL")
    path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    query = quote(parts.query, safe="/%:@!$&'()*+,;=-._~?")
    return urlunsplit((scheme, host, path, query, "")), None


def content_key(url: str, caption: str) -> str:
    """A stable key from the normalized URL and caption: independent of sharding and order."""
    return hashlib.sha256(f"{url}\x00{caption}".encode("utf-8")).hexdigest()[:24]


class Normalizer:
    """Cleans one row in place of a copy; returns (row, None) or (row, Drop)."""

    def __init__(self, config: NormalizeConfig):
        self.config = config

    def __call__(self, row: dict) -> tuple[dict, Drop | None]:
        out = dict(row)
        caption = clean_caption(row.get("caption"))
        out["caption"] = caption
        if row.get("local_path") is not None or row.get("invalid_path"):
            url = str(row.get("url") or "")
        else:
            url, drop = normalize_url(row.get("url"))
            if drop:
                out["url"] = None if row.get("url") is None else str(row.get("url"))[:2000]
                out["caption"] = caption[:2000]
                return out, drop
        out["url"] = url
        if not caption:
            return out, Drop("empty_caption")
        if len(caption) > self.config.max_caption_chars:
            out["caption"] = caption[:2000]
            return out, Drop("caption_too_long", f"{len(caption)} characters > {self.config.max_caption_chars}")
        out["key"] = content_key(url, caption)
        return out, None
