"""URL and image-hash blocklists (the way Re-LAION removed entries from LAION-5B).

URL lists are checked before download: each entry is normalized with
``filters.normalize.normalize_url``, as the rows' URLs are, so trivial variants
(case of scheme and host, default port, fragment, percent-encoding) match.
Hash lists are checked after download against the hex digests of the
DOWNLOADED bytes (not the resized image): a 64-character entry is a sha256,
a 32-character one an md5, read from ``row["sha256"]`` and ``row["md5"]``.

A list is a text file (one entry per line; blank lines and lines starting with
``#`` are skipped), or a ``.parquet`` / ``.csv`` file with a ``url`` column
(URL lists) or a ``hash``, ``sha256`` or ``md5`` column (hash lists).
A malformed entry is an error at load time, with its file and line.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator, Optional

from clipcurate.filters.base import Drop
from clipcurate.filters.normalize import normalize_url

_HEX = re.compile(r"^[0-9a-f]+$")
URL_COLUMNS = ("url",)
HASH_COLUMNS = ("hash", "sha256", "md5")


@dataclass(frozen=True)
class BlocklistConfig:
    url_files: tuple[str, ...] = ()
    hash_files: tuple[str, ...] = ()


class BlocklistError(ValueError):
    """A blocklist file that cannot be read, or a malformed entry in one."""


def _table_column(path: str, columns: tuple[str, ...]) -> list:
    import pyarrow as pa

    try:
        if path.endswith(".parquet"):
            import pyarrow.parquet as pq

            table = pq.read_table(path)
        else:
            import pyarrow.csv as pacsv

            table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in columns}))
    except (OSError, pa.ArrowException) as err:
        raise BlocklistError(f"{path}: {err}") from err
    for name in columns:
        if name in table.column_names:
            return table.column(name).to_pylist()
    raise BlocklistError(f"{path}: no column named {' or '.join(columns)} (found {', '.join(table.column_names)})")


def read_entries(path: str, columns: tuple[str, ...]) -> Iterator[tuple[str, str]]:
    """(where, entry) for every entry of a list file; ``where`` is "file:line" for messages."""
    if path.endswith((".parquet", ".csv")):
        for i, value in enumerate(_table_column(path, columns)):
            if value is not None and str(value).strip():
                yield f"{path}:row {i}", str(value).strip()
        return
    try:
        with open(path, encoding="utf-8") as f:
            for i, line in enumerate(f, 1):
                line = line.strip()
                if line and not line.startswith("#"):
                    yield f"{path}:{i}", line
    except (OSError, UnicodeDecodeError) as err:
        raise BlocklistError(f"{path}: {err}") from err


def load_urls(paths) -> frozenset[str]:
    urls = set()
    for path in paths:
        for where, entry in read_entries(path, URL_COLUMNS):
            url, drop = normalize_url(entry)
            if drop is not None:
                raise BlocklistError(f"{where}: not an http(s) URL ({drop.reason}): {entry[:200]}")
            urls.add(url)
    return frozenset(urls)


def load_hashes(paths) -> tuple[frozenset[str], frozenset[str]]:
    """(sha256 digests, md5 digests), lowercase hex."""
    sha256, md5 = set(), set()
    for path in paths:
        for where, entry in read_entries(path, HASH_COLUMNS):
            digest = entry.lower()
            if not _HEX.match(digest) or len(digest) not in (32, 64):
                raise BlocklistError(f"{where}: not a sha256 (64 hex) or md5 (32 hex) digest: {entry[:200]}")
            (sha256 if len(digest) == 64 else md5).add(digest)
    return frozenset(sha256), frozenset(md5)


def check_config(config: BlocklistConfig) -> dict:
    """Read every list once, up front; returns entry counts or raises BlocklistError."""
    sha256, md5 = load_hashes(config.hash_files)
    return {"urls": len(load_urls(config.url_files)), "sha256": len(sha256), "md5": len(md5)}


class UrlBlocklist:
    """Drops rows whose (already normalized) URL is listed."""

    def __init__(self, urls: frozenset[str]):
        self.urls = urls

    @classmethod
    def from_config(cls, config: BlocklistConfig) -> "UrlBlocklist":
        return cls(load_urls(config.url_files))

    def check(self, row: dict) -> Optional[Drop]:
        if row.get("url") in self.urls:
            return Drop("blocked_url")
        return None


class HashBlocklist:
    """Drops rows whose downloaded bytes' sha256 or md5 is listed.

    An md5 list needs ``row["md5"]``; a row without it raises (an
    ``internal_error`` reject), so a missing digest is never a silent pass.
    """

    def __init__(self, sha256: frozenset[str], md5: frozenset[str]):
        self.sha256 = sha256
        self.md5 = md5

    @classmethod
    def from_config(cls, config: BlocklistConfig) -> "HashBlocklist":
        return cls(*load_hashes(config.hash_files))

    def check(self, row: dict) -> Optional[Drop]:
        if self.sha256:
            if (row.get("sha256") or "").lower() in self.sha256:
                return Drop("blocked_hash", f"sha256 {row['sha256']}")
        if self.md5:
            if "md5" not in row:
                raise KeyError("row has no md5 of its downloaded bytes; an md5 blocklist needs the download stage to record it")
            if (row.get("md5") or "").lower() in self.md5:
                return Drop("blocked_hash", f"md5 {row['md5']}")
        return None
