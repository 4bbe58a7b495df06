"""Read Common Crawl WARC and WAT files (gzip'd or not) into pair rows.

- WARC ``response`` records with a 2xx HTML payload: pairs from the page with
  ``crawl.parse_page`` (page_url = WARC-Target-URI); other records are skipped.
- WAT ``metadata`` records (JSON): ``Envelope.Payload-Metadata.
  HTTP-Response-Metadata.HTML-Metadata.Links`` entries with ``path`` ==
  "IMG@/src" and a non-empty ``alt``, resolved against ``Head.Base`` (if
  any) and the WARC-Target-URI; caption_source is "alt" (WAT keeps no
  figcaptions).

Both kinds of file may be mixed. Every row gets ``source_file`` = the path and
``source_row`` = its index in the file. A record that cannot be read (invalid
JSON, an HTML parser failure) becomes an ingest ``malformed_row`` reject and
reading goes on; a file that cannot be read on (not a WARC, a corrupt gzip
member) ends with one ``malformed_row`` reject after the rows read so far.
"""
from __future__ import annotations

import json
import urllib.parse
import zlib
from dataclasses import dataclass
from typing import Iterator, Optional

import apache_beam as beam
import pyarrow as pa
from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed

from clipcurate.filters.normalize import clean_caption
from clipcurate.pipeline import files as fs
from clipcurate.pipeline.sources.base import BATCH, MALFORMED, ReadEach, ReadFileDoFn, malformed_row
from clipcurate.pipeline.sources.crawler import decode_html, is_html, parse_page

IMG_PATH = "IMG@/src"
PAIR = "pair"
_FILE_ERRORS = (ArchiveLoadFailed, OSError, EOFError, zlib.error, ValueError)


def html_record_pairs(record) -> list[dict]:
    """Pairs of one WARC response record (empty unless a 2xx HTML response)."""
    if record.http_headers is None:
        return []
    status = record.http_headers.get_statuscode()
    ctype = record.http_headers.get_header("Content-Type")
    if not (status or "").startswith("2") or not is_html(ctype):
        return []
    page_url = record.rec_headers.get_header("WARC-Target-URI")
    if not page_url:
        raise ValueError("response record without WARC-Target-URI")
    text = decode_html(record.content_stream().read(), ctype)
    declared = record.http_headers.get_header("Content-Language")
    return [p.row() for p in parse_page(text, page_url, content_language=declared).pairs]


def wat_record_pairs(payload: bytes, target_uri: Optional[str]) -> list[dict]:
    """Pairs of one WAT metadata record's JSON payload."""
    envelope = json.loads(payload).get("Envelope") or {}
    page_url = (envelope.get("WARC-Header-Metadata") or {}).get("WARC-Target-URI") or target_uri
    html_meta = (((envelope.get("Payload-Metadata") or {}).get("HTTP-Response-Metadata") or {})
                 .get("HTML-Metadata") or {})
    links = html_meta.get("Links") or []
    if not page_url or not links:
        return []
    base = page_url
    head_base = (html_meta.get("Head") or {}).get("Base")
    if head_base:
        base = urllib.parse.urljoin(page_url, head_base)
    declared = ((((envelope.get("Payload-Metadata") or {}).get("HTTP-Response-Metadata") or {})
                 .get("Headers") or {}).get("Content-Language") or "").strip()[:35]
    out = []
    for link in links:
        if not isinstance(link, dict) or link.get("path") != IMG_PATH:
            continue
        src, caption = (link.get("url") or "").strip(), clean_caption(link.get("alt"))
        if not src or not caption or src.lower().startswith("data:"):
            continue
        out.append({"url": urllib.parse.urljoin(base, src), "caption": caption, "page_url": page_url,
                    "caption_source": "alt", **({"page_language": declared} if declared else {})})
    return out


def _record_pairs(record) -> list[dict]:
    if record.rec_type == "response":
        return html_record_pairs(record)
    if record.rec_type == "metadata" and "json" in (record.rec_headers.get_header("Content-Type") or ""):
        return wat_record_pairs(record.content_stream().read(), record.rec_headers.get_header("WARC-Target-URI"))
    return []


def _check_member_complete(records: ArchiveIterator, end: int):
    """A gzip member whose compressed stream stops early is read quietly as a short record: refuse it."""
    decompressor = getattr(records.reader, "decompressor", None)
    if decompressor is not None and getattr(decompressor, "eof", True) is False:
        raise ArchiveLoadFailed(f"truncated gzip member before offset {end}")


def _check_fully_read(f, end: int):
    """warcio stops quietly at a truncated last gzip member: bytes left after the last record mean one."""
    f.seek(end)
    tail = f.read(4096)
    if tail.strip():
        raise ArchiveLoadFailed(f"truncated record or trailing bytes at offset {end}")


def iter_pairs(path: str) -> Iterator[tuple[str, dict]]:
    """("pair", row) for the pairs of one WARC/WAT file, ("malformed", reject row) where reading failed."""
    index = 0
    try:
        with fs.open_read(path) as f:
            records = ArchiveIterator(f)
            end = 0  # where the last complete record ends
            for record in records:
                if record.format != "warc":
                    raise ArchiveLoadFailed(f"not a WARC record (read as {record.format!r})")
                where = record.rec_headers.get_header("WARC-Record-ID") or f"record after offset {end}"
                try:
                    pairs = _record_pairs(record)
                except (ValueError, AssertionError, UnicodeError, AttributeError) as err:
                    # invalid JSON (ValueError), a JSON value of the wrong shape, an HTML parser failure
                    pairs = [(MALFORMED, malformed_row(path, index, f"{where}: {type(err).__name__}: {err}"))]
                else:
                    pairs = [(PAIR, pair) for pair in pairs]
                end = records.get_record_offset() + records.get_record_length()
                _check_member_complete(records, end)  # before yielding: a cut record's pairs are not kept
                for kind, pair in pairs:
                    yield kind, (pair if kind == MALFORMED else dict(pair, source_file=path, source_row=index))
                    index += 1
            _check_fully_read(f, end)
    except _FILE_ERRORS as err:
        yield MALFORMED, malformed_row(path, index, f"unreadable WARC/WAT file: {type(err).__name__}: {str(err).strip()[:500]}")


# --- Beam -------------------------------------------------------------------------------

PAIR_SCHEMA = pa.schema([pa.field("url", pa.string()), pa.field("caption", pa.string()),
                         pa.field("source_file", pa.string()), pa.field("source_row", pa.int64()),
                         pa.field("page_url", pa.string()), pa.field("caption_source", pa.string())])
LANGUAGE_FIELD = pa.field("page_language", pa.string())  # only in batches with a page that declares one


@dataclass(frozen=True)
class WarcConfig:
    files: tuple[str, ...]
    batch_rows: int = 4096


def _batch(rows: list[dict]) -> pa.RecordBatch:
    declared = any("page_language" in row for row in rows)
    return pa.RecordBatch.from_pylist(rows, schema=PAIR_SCHEMA.append(LANGUAGE_FIELD) if declared else PAIR_SCHEMA)


def read_batches(path: str, batch_rows: int):
    """One WARC/WAT file as ("batch", RecordBatch of ``PAIR_SCHEMA``, plus ``page_language`` where a page
    declares it) and ("malformed", reject row) items."""
    batch = []
    for kind, row in iter_pairs(path):
        if kind == MALFORMED:
            yield kind, row
            continue
        batch.append(row)
        if len(batch) >= batch_rows:
            yield BATCH, _batch(batch)
            batch = []
    if batch:
        yield BATCH, _batch(batch)


class ReadWarc(beam.PTransform):
    """PBegin -> (record batches of pairs in ``PAIR_SCHEMA``, malformed_row reject dicts); a file per element."""

    def __init__(self, config: WarcConfig):
        super().__init__()
        self.config = config

    def expand(self, pbegin):
        n = self.config.batch_rows
        return pbegin | "Files" >> ReadEach(self.config.files, ReadFileDoFn(lambda: lambda path: read_batches(path, n)))
