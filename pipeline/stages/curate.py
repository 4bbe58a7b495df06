"""Curation stages: caption/image quality, URL/hash blocklists, metadata balancing.

Each is a composite PTransform returning ``(main, rejects)``, or, for the
checks of captions and URLs, a step of the caption stages (``captions``: run
on batches before download). The filters live in ``clipcurate.filters``;
``FilterStage`` / ``filter_step`` turn any of them into a stage or a step and
build it once per worker, so blocklists and entry lists are read once per
worker, not per row.
"""
from __future__ import annotations

from typing import Callable

import apache_beam as beam

from clipcurate.filters.balance import BalanceConfig, BalanceDecision, EntryMatcher, entry_rank, load_entries
from clipcurate.filters.base import reject_row
from clipcurate.filters.blocklist import BlocklistConfig, HashBlocklist, UrlBlocklist
from clipcurate.filters.quality import CaptionQuality, ImageQuality, QualityConfig
from clipcurate.pipeline.stages.base import REJECTS, RowCheckDoFn, Timer, split
from clipcurate.pipeline.stages.captions import CaptionStep, per_row


class FilterStage(beam.PTransform):
    """Any filter of ``clipcurate.filters`` as a stage: ``make(config)`` builds it once per worker,
    its ``check(row)`` keeps (None) or names a reason; counting and routing live in RowCheckDoFn."""

    def __init__(self, stage: str, make: Callable[[object], object], config):
        super().__init__()
        self.stage = stage
        self.make = make
        self.config = config

    def expand(self, rows):
        make, config = self.make, self.config

        def build():
            check = make(config).check
            return lambda row: (row, check(row))

        return split(rows, "Check", RowCheckDoFn(self.stage, build))

    def as_check(self) -> tuple:
        """(stage, make) for a stage that runs the check itself (``dedup.images``): ``make()`` gives
        ``check(row) -> Drop | None``, built once per worker."""
        make, config = self.make, self.config
        return self.stage, lambda: make(config).check


def filter_step(label: str, stage: str, make: Callable[[object], object], config) -> CaptionStep:
    """A filter of ``clipcurate.filters`` as a step of the caption stages (batches, before download)."""
    def build():
        check = make(config).check
        return lambda row: (row, check(row))

    return CaptionStep(label, stage, per_row(build))


def caption_quality(config: QualityConfig) -> CaptionStep:
    """Caption word-count bounds (``caption_word_count``); a caption step, before download."""
    return filter_step("CaptionQuality", "quality", CaptionQuality, config)


def image_quality(config: QualityConfig) -> FilterStage:
    """Original image size and aspect ratio (``small_image``, ``aspect_ratio``); after download."""
    return FilterStage("quality", ImageQuality, config)


def url_blocklist(config: BlocklistConfig) -> CaptionStep:
    """Listed URLs (``blocked_url``); a caption step, after pair dedup, before download."""
    return filter_step("BlockUrls", "blocklist", UrlBlocklist.from_config, config)


def hash_blocklist(config: BlocklistConfig) -> FilterStage:
    """Listed sha256/md5 digests of the downloaded bytes (``blocked_hash``); after download."""
    return FilterStage("blocklist", HashBlocklist.from_config, config)


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
