"""Curation stages: caption/image quality, URL/hash blocklists, metadata balancing.

Each is a composite PTransform returning ``(main, rejects)``. The filters
live in ``clipcurate.filters`` and are built once per worker (in the DoFn's
setup, via ``pipeline.stage``'s adapter), so blocklists and entry lists are
read once per worker, not per row.
"""
from __future__ import annotations

from typing import Callable

import apache_beam as beam

from clipcurate.filters.balance import BalanceConfig, BalanceDecision, EntryMatcher, entry_rank, load_entries
from clipcurate.filters.base import reject_row
from clipcurate.filters.blocklist import BlocklistConfig, HashBlocklist, UrlBlocklist
from clipcurate.filters.quality import CaptionQuality, ImageQuality, QualityConfig
from clipcurate.pipeline.stages.base import REJECTS, RowCheckDoFn, Timer, split


def _checking(make_filter: Callable[[], object]):
    """A ``make()`` for RowCheckDoFn: builds the filter, returns row -> (row, Drop | None)."""
    def make():
        check = make_filter().check
        return lambda row: (row, check(row))
    return make


def _row_check(rows, stage: str, make_filter):
    return split(rows, "Check", RowCheckDoFn(stage, _checking(make_filter)))


class CaptionQualityStage(beam.PTransform):
    """Caption word-count bounds (``caption_word_count``); before download."""

    def __init__(self, config: QualityConfig):
        super().__init__()
        self.config = config

    def expand(self, rows):
        config = self.config
        return _row_check(rows, "quality", lambda: CaptionQuality(config))


class ImageQualityStage(beam.PTransform):
    """Original image size and aspect ratio (``small_image``, ``aspect_ratio``); after download."""

    def __init__(self, config: QualityConfig):
        super().__init__()
        self.config = config

    def expand(self, rows):
        config = self.config
        return _row_check(rows, "quality", lambda: ImageQuality(config))


class BlocklistUrls(beam.PTransform):
    """Listed URLs (``blocked_url``); after normalize, before download."""

    def __init__(self, config: BlocklistConfig):
        super().__init__()
        self.config = config

    def expand(self, rows):
        config = self.config
        return _row_check(rows, "blocklist", lambda: UrlBlocklist.from_config(config))


class BlocklistHashes(beam.PTransform):
    """Listed sha256/md5 digests of the downloaded bytes (``blocked_hash``); after download."""

    def __init__(self, config: BlocklistConfig):
        super().__init__()
        self.config = config

    def expand(self, rows):
        config = self.config
        return _row_check(rows, "blocklist", lambda: HashBlocklist.from_config(config))


def balance_key(row: dict) -> str:
    return str(row.get("key") or row.get("url") or "")


class _Match(beam.DoFn):
    """row -> (row, matched entries); the entry list is read once per worker."""

    def __init__(self, config: BalanceConfig):
        self.config = config

    def setup(self):
        self.matcher = EntryMatcher(load_entries(self.config.entries_file))
        self.timer = Timer("balance")

    def process(self, row):
        with self.timer:
            matched = self.matcher.matches(row.get("caption"))
        yield row, matched


class _Decide(beam.DoFn):
    def __init__(self, config: BalanceConfig):
        self.config = config

    def process(self, item, limits):
        row, matched = item
        drop = BalanceDecision(self.config, limits).check(balance_key(row), matched)
        if drop is None:
            yield row
        else:
            yield beam.pvalue.TaggedOutput(REJECTS, reject_row(row, drop.reason, drop.message))


class Balance(beam.PTransform):
    """At most about ``cap`` pairs per matched entry (``balance_cap``); last, before writing.

    Per entry, only the ``cap`` smallest ranks travel (a combiner, so a
    popular entry never gathers its rows in one place); the entries that
    reached the cap become a side input {entry: largest chosen rank}.
    """

    def __init__(self, config: BalanceConfig):
        super().__init__()
        self.config = config

    def expand(self, rows):
        config = self.config
        matched = rows | "Match" >> beam.ParDo(_Match(config))
        limits = (
            matched
            | "PerEntry" >> beam.FlatMap(lambda item: [(e, entry_rank(balance_key(item[0]), e)) for e in item[1]])
            | "Smallest" >> beam.combiners.Top.PerKey(config.cap, reverse=True)
            | "Full" >> beam.Filter(lambda kv: len(kv[1]) >= config.cap)
            | "Limit" >> beam.Map(lambda kv: (kv[0], max(kv[1])))
        )
        result = matched | "Decide" >> beam.ParDo(_Decide(config), beam.pvalue.AsDict(limits)).with_outputs(REJECTS, main="main")
        return result.main, result[REJECTS]
