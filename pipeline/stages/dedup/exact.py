"""Exact dedup stages.

Pairs: grouped by normalized URL. Within a URL the row that came first in the
input (by ``source_file``, then ``source_row``) is kept; a later row with the
same caption is a ``duplicate_pair``, one with another caption a
``duplicate_url``. Images: grouped by the sha256 of the downloaded bytes,
the first row in input order is kept, the others are ``duplicate_image``.
"""
from __future__ import annotations

import apache_beam as beam

from clipcurate.filters.base import reject_row
from clipcurate.pipeline.stages.base import REJECTS
from clipcurate.schemas.records import input_order, where


def _url_reason(kept: dict, row: dict) -> tuple[str, str]:
    if row.get("caption") == kept.get("caption"):
        return "duplicate_pair", f"same URL and caption as {where(kept)}"
    return "duplicate_url", f"URL already taken by {where(kept)}"


def _image_reason(kept: dict, row: dict) -> tuple[str, str]:
    return "duplicate_image", f"same image bytes as {where(kept)} ({kept.get('url')})"


class _KeepFirst(beam.DoFn):
    """Of a group, the first row in input order is kept; ``reason(kept, row)`` names why each other one goes."""

    def __init__(self, reason):
        self.reason = reason

    def process(self, item):
        _, rows = item
        rows = sorted(rows, key=input_order)
        kept = rows[0]
        yield kept
        for row in rows[1:]:
            yield beam.pvalue.TaggedOutput(REJECTS, reject_row(row, *self.reason(kept, row)))


class DedupPairs(beam.PTransform):
    def expand(self, rows):
        result = (
            rows
            | "ByUrl" >> beam.Map(lambda r: (r["url"], r))
            | "Group" >> beam.GroupByKey()
            | "KeepFirst" >> beam.ParDo(_KeepFirst(_url_reason)).with_outputs(REJECTS, main="main")
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
