"""The image decisions with the image bytes shuffled once: exact dedup, the per-row image checks
(hash blocklist, image quality) and near dedup, as one stage.

Run one after the other, these stages would shuffle every downloaded image twice (exact dedup's
group by sha256, near dedup's join of the rows with its decisions). Here only small records meet:

1. Each row is checked where it was downloaded: the image checks in their order (the first that
   fails marks the row with its reason), then, for an unmarked row, its fingerprint
   (``near_print``). The row itself stays where it is.
2. Exact: (sha256, input order, row id, where, URL) per row, grouped by sha256 and read twice (the
   first in input order is kept; the others get ``duplicate_image``), as ``DedupImages`` decides.
3. Near: the summaries (keys, thumbnail, preference) of the rows that are neither exact duplicates
   nor marked join the exact decisions by row id, and ``NearDecisions`` decides on those, as
   ``NearDedup`` does on the rows the stages before it kept.
4. The rows join all decisions by row id (the one shuffle of the bytes) and leave with the first
   reason in stage order: exact duplicate, then the check's mark, then near duplicate. A reject
   is the row as the stage that dropped it saw it (``phash`` only on near duplicates and kept rows).

Outputs are those of ``DedupImages``, the checks and ``NearDedup`` run one after the other.
"""
from __future__ import annotations

import typing

import apache_beam as beam

from clipcurate.filters.base import reject_row
from clipcurate.pipeline.stages.base import REJECTS, Timer, error_message
from clipcurate.pipeline.stages.dedup.near import NearDecisions, NearDedupConfig, fingerprint_of, row_id, summary_of
from clipcurate.schemas.records import input_order, where

SUMMARIES, EXACT = "summaries", "exact"


class _Mark(beam.DoFn):
    """row -> (row id, (row, mark, phash)): the mark is the first failing check's (reason, message),
    or None; and, tagged, the row's exact-dedup entry and (unmarked rows) its summary."""

    def __init__(self, checks: tuple):
        self.checks = checks

    def setup(self):
        self.fns = [(make(), Timer(stage)) for stage, make in self.checks]
        self.timer = Timer("image_dedup")

    def process(self, row):
        rid = row_id(row)
        yield beam.pvalue.TaggedOutput(EXACT, (row.get("sha256"), (input_order(row), rid, where(row), row.get("url"))))
        mark = None
        for fn, timer in self.fns:
            timer.count()
            with timer:
                try:
                    drop = fn(row)
                except Exception as err:  # noqa: BLE001 - a bad record is data, not a crash
                    mark = ("internal_error", error_message(err))
                    break
            if drop is not None:
                mark = (drop.reason, drop.message)
                break
        phash = None
        if mark is None:
            self.timer.count()
            with self.timer:
                try:
                    fp = fingerprint_of(row)
                except Exception as err:  # noqa: BLE001
                    mark = ("internal_error", error_message(err))
                else:
                    phash = fp.phash
                    yield beam.pvalue.TaggedOutput(SUMMARIES, (rid, summary_of(row, fp.keys, fp.thumb)))
        yield rid, (row, mark, phash)


def _exact_decisions(item) -> typing.Iterator[tuple[str, tuple]]:
    """One sha256's entries -> (row id, message) for every entry but the first in input order. Two
    passes over the group, so a picture under a million URLs is never sorted or held in a list."""
    _, entries = item
    best = None
    for e in entries:
        if best is None or e[0] < best[0]:
            best = e
    message = f"same image bytes as {best[2]} ({best[3]})"
    for e in entries:
        if e[1] != best[1]:
            yield e[1], message


def _not_exact(item) -> typing.Iterator[tuple]:
    _, grouped = item
    if next(iter(grouped[EXACT]), None) is None:
        yield from grouped[SUMMARIES]


class _Decide(beam.DoFn):
    def process(self, item):
        _, grouped = item
        exact = next(iter(grouped[EXACT]), None)
        near = min(grouped["near"], key=lambda d: d[0], default=None)
        for row, mark, phash in grouped["rows"]:
            if exact is not None:
                yield beam.pvalue.TaggedOutput(REJECTS, reject_row(row, "duplicate_image", exact))
                continue
            if mark is not None:
                yield beam.pvalue.TaggedOutput(REJECTS, reject_row(row, *mark))
                continue
            out = dict(row, phash=phash)
            if near is not None:
                yield beam.pvalue.TaggedOutput(REJECTS, reject_row(out, "near_duplicate_image", near[1]))
            else:
                yield out


class ImageDecisions(beam.PTransform):
    """rows with ``image`` -> (kept, rejects). ``checks``: (stage, make) pairs, ``make()`` giving a
    per-row ``check(row) -> Drop | None`` (built once per worker); ``near``: near dedup's config.
    Without near dedup the flow runs ``DedupImages`` and the checks, which shuffle the bytes once too."""

    def __init__(self, checks: tuple, near: NearDedupConfig):
        super().__init__()
        self.checks, self.near = tuple(checks), near

    def expand(self, rows):
        marked = rows | "Mark" >> beam.ParDo(_Mark(self.checks)).with_outputs(EXACT, SUMMARIES, main="rows")
        exact = (marked[EXACT] | "BySha256" >> beam.GroupByKey()
                 | "KeepFirst" >> beam.FlatMap(_exact_decisions))
        # typed Any: inferred types would put 64-bit unsigned keys through Beam's (signed) int coder
        summaries = ({SUMMARIES: marked[SUMMARIES], EXACT: exact}
                     | "JoinExact" >> beam.CoGroupByKey()
                     | "NotExact" >> beam.FlatMap(_not_exact).with_output_types(typing.Any))
        near = summaries | "Near" >> NearDecisions(self.near)
        result = ({"rows": marked.rows, EXACT: exact, "near": near}
                  | "Join" >> beam.CoGroupByKey()
                  | "Decide" >> beam.ParDo(_Decide()).with_outputs(REJECTS, main="main"))
        return result.main, result[REJECTS]
