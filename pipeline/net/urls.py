"""URL helpers for fetching: origin keys, ASCII (IDNA, percent-encoded) URLs, Retry-After parsing."""
from __future__ import annotations

import email.utils
import time
import urllib.parse
from typing import Optional


def origin(parts: urllib.parse.SplitResult) -> str:
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{parts.hostname}:{port}"


def ascii_url(url: str) -> str:
    """``url`` with an IDNA host and percent-encoded non-ASCII path/query (HTTP needs ASCII)."""
    if url.isascii():
        return url
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname.encode("idna").decode("ascii") if parts.hostname else ""
    except (ValueError, UnicodeError):
        return url  # left as is: the request fails as malformed_url
    netloc = host if ":" not in host else f"[{host}]"
    if parts.port:
        netloc += f":{parts.port}"
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    safe = "/?&=+%:@!$'()*,;~[]"
    return urllib.parse.urlunsplit((parts.scheme, netloc, urllib.parse.quote(parts.path, safe=safe),
                                    urllib.parse.quote(parts.query, safe=safe),
                                    urllib.parse.quote(parts.fragment, safe=safe)))


def retry_after_seconds(value: Optional[str]) -> Optional[float]:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())
