"""Exact dedup stages.

Pairs: grouped by normalized URL. Within a URL the row that came first in the
input (by ``source_file``, then ``source_row``) is kept; a later row with the
same caption is a ``duplicate_pair``, one with another caption a
``duplicate_url``. The shuffle moves buckets, not rows: each batch's rows go to
``PairDedupConfig.buckets`` buckets by a CRC of the URL, packed into one value
per bucket (``pipeline.packed``). The bucket count is set at launch from the
input's size (``buckets_for``), so the rows flow from the reader into the
buckets without waiting for a count. A bucket's worker reads the bucket twice:
first to find each URL's first row (it holds one small entry per distinct URL,
not the rows), then to sort the rows out, so a URL repeated a million times
costs no more than one seen twice. Images: grouped by the sha256 of the downloaded bytes,
the first row in input order is kept, the others are ``duplicate_image``.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import apache_beam as beam

from clipcurate.filters.base import reject_row
from clipcurate.pipeline.packed import pack_by, unpack_rows
from clipcurate.pipeline.stages.base import REJECTS
from clipcurate.schemas.records import input_order, order_of, place_of, where


def _image_reason(kept: dict, row: dict) -> tuple[str, str]:
    return "duplicate_image", f"same image bytes as {where(kept)} ({kept.get('url')})"


class _KeepFirst(beam.DoFn):
    """Of a group, the first row in input order is kept; ``reason(kept, row)`` names why each other one goes.

    Two passes over the group (a Beam group can be iterated again): the first finds the kept row,
    the second rejects the others, so a group of a million copies of one placeholder picture is
    never sorted or copied into a list here."""

    def __init__(self, reason):
        self.reason = reason

    def process(self, item):
        _, rows = item
        best, kept, best_order = None, None, None
        for i, row in enumerate(rows):
            order = input_order(row)
            if best is None or order < best_order:
                best, kept, best_order = i, row, order
        yield kept
        for i, row in enumerate(rows):
            if i != best:
                yield beam.pvalue.TaggedOutput(REJECTS, reject_row(row, *self.reason(kept, row)))


@dataclass(frozen=True)
class PairDedupConfig:
    buckets: int = 16        # URL hash buckets: the groups of the shuffle (``buckets_for`` sizes them)
    batch_rows: int = 2048   # kept rows leave a bucket in lists of at most this many


BUCKET_ROWS = 100_000   # about this many rows a bucket
BYTES_PER_ROW = 64      # an input table's bytes a row, at least (Parquet of URL + caption: ~70-100)


def rows_for(input_bytes: int) -> int:
    """The launcher's estimate of an input's rows from its bytes (at most this many, for small rows)."""
    return math.ceil(input_bytes / BYTES_PER_ROW)


def buckets_for(input_bytes: int) -> int:
    """Buckets for an input of ``input_bytes``: about ``BUCKET_ROWS`` rows each if rows are small."""
    return max(1, math.ceil(rows_for(input_bytes) / BUCKET_ROWS))


def _bucket_of(url: str, buckets: int) -> int:
    return zlib.crc32(url.encode("utf-8", "surrogatepass")) % buckets


def _to_buckets(rows: list, buckets: int) -> list:
    """One batch -> (bucket, packed rows of that bucket) for each bucket it touches."""
    return pack_by(rows, lambda row: _bucket_of(row["url"], buckets))


class _KeepFirstPerUrl(beam.DoFn):
    """A bucket's packed batches -> batches of kept rows, and a reject per later row of a URL."""

    def __init__(self, batch_rows: int):
        self.batch_rows = batch_rows

    def process(self, item):
        _, packs = item
        # url -> (source file, source row, key, pack << 32 | row, caption) of its first row: flat, with
        # one copy of each file name and the message's place made only for a reject, so that a
        # bucket's ~100,000 URLs hold ~40 MB less than with a tuple order, a tuple index and a string
        files: dict = {}
        first: dict = {}
        for p, data in enumerate(packs):
            for i, row in enumerate(unpack_rows(data)):
                seen = first.get(row["url"])
                if seen is None or input_order(row) < order_of(*seen[:3]):
                    file = row.get("source_file")
                    first[row["url"]] = (files.setdefault(file, file), row.get("source_row"), row.get("key"),
                                         p << 32 | i, row.get("caption"))
        kept = []
        for p, data in enumerate(packs):
            for i, row in enumerate(unpack_rows(data)):
                file, source_row, _, at, caption = first[row["url"]]
                if at == p << 32 | i:
                    kept.append(row)
                    if len(kept) >= self.batch_rows:
                        yield kept
                        kept = []
                elif row.get("caption") == caption:
                    yield beam.pvalue.TaggedOutput(REJECTS, reject_row(
                        row, "duplicate_pair", f"same URL and caption as {place_of(file, source_row)}"))
                else:
                    yield beam.pvalue.TaggedOutput(REJECTS, reject_row(
                        row, "duplicate_url", f"URL already taken by {place_of(file, source_row)}"))
        if kept:
            yield kept


class DedupPairs(beam.PTransform):
    """batches of rows -> (batches of kept rows, rejects)."""

    def __init__(self, config: PairDedupConfig = PairDedupConfig()):
        super().__init__()
        self.config = config

    def expand(self, batches):
        result = (
            batches
            | "ByUrl" >> beam.FlatMap(_to_buckets, self.config.buckets)
            | "Group" >> beam.GroupByKey()
            | "KeepFirst" >> beam.ParDo(_KeepFirstPerUrl(self.config.batch_rows)).with_outputs(REJECTS, main="main")
        )
        return result.main, result[REJECTS]


class DedupImages(beam.PTransform):
    def expand(self, rows):
        result = (
            rows
            | "BySha256" >> beam.Map(lambda r: (r["sha256"], r))
            | "Group" >> beam.GroupByKey()
            | "KeepFirst" >> beam.ParDo(_KeepFirst(_image_reason)).with_outputs(REJECTS, main="main")
        )
        return result.main, result[REJECTS]
