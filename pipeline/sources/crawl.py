"""The crawl as a Beam source: seed URLs -> pair rows, one site per element.

A crawl's frontier must stay per site and within its page budget, so the
unit of work is a site: the seeds are grouped by scheme://host:port (by a
GroupByKey over the seed file's lines, which the pipeline reads itself; or
when the transform is built, for seeds given in the config), each site is
crawled breadth-first in one DoFn call (``crawl.crawl_site``), and its pairs come out sorted by (page_url,
position). ``source_row`` numbers the rows of all sites in page_url order:
each site's rows are counted, and a site's offset is the count of the sites
before it (a small side input), so the numbers do not depend on which worker
crawled what, and equal the row order of ``clipcurate crawl``'s table.
"""
from __future__ import annotations

import apache_beam as beam
from apache_beam.metrics import Metrics

from clipcurate.pipeline.sources.crawler import (
    CrawlConfig, crawl_site, group_by_site, read_seeds, site_of, site_sort_key,
)
from clipcurate.pipeline.net.fetch import Fetcher
from clipcurate.pipeline.sources.base import ReadEach
from clipcurate.pipeline.stages.base import NAMESPACE, Timer


class _CrawlSiteDoFn(beam.DoFn):
    """(site, seeds) -> (site, [pair row, ...]) for one site."""

    def __init__(self, config: CrawlConfig):
        self.config = config

    def setup(self):
        self.fetcher = Fetcher(self.config.fetch)
        self.timer = Timer("crawl")
        self.counters = {name: Metrics.counter(NAMESPACE, f"crawl_{name}") for name in
                         ("pages_fetched", "pages_failed", "pages_not_html", "pages_refused_robots",
                          "images_refused_robots", "pairs")}

    def teardown(self):
        self.fetcher.close()

    def process(self, element):
        site, seeds = element
        with self.timer:
            pairs, stats = crawl_site(site, seeds, self.config, self.fetcher)
        for name, counter in self.counters.items():
            counter.inc(getattr(stats, name))
        yield site, [p.row() for p in pairs]


def _seeds_by_site(path: str):
    """(site, (line order, seed URL)) for the seed file's http(s) URLs; other lines are skipped."""
    seeds, _ = read_seeds(path)
    for i, url in enumerate(seeds):
        site = site_of(url)
        if site is not None:
            yield site, (i, url)


def _offsets(counts: dict) -> dict:
    """site -> number of rows of the sites before it in page_url order."""
    out, total = {}, 0
    for site in sorted(counts, key=site_sort_key):
        out[site] = total
        total += counts[site]
    return out


class _NumberRows(beam.DoFn):
    def __init__(self, source_file: str):
        self.source_file = source_file

    def setup(self):
        self.input_rows = Metrics.counter(NAMESPACE, "input_rows")

    def process(self, element, offsets):
        site, rows = element
        start = offsets[site]
        self.input_rows.inc(len(rows))
        for i, row in enumerate(rows):
            yield dict(row, source_file=self.source_file, source_row=start + i)


class Crawl(beam.PTransform):
    """PBegin -> pair rows: dicts with url, caption, page_url, caption_source, source_file, source_row."""

    def __init__(self, config: CrawlConfig):
        super().__init__()
        self.config = config

    def expand(self, pbegin):
        if self.config.seeds:  # given (clipcurate crawl): grouped here
            crawled, _ = pbegin | "Sites" >> ReadEach(group_by_site(self.config.seeds), _CrawlSiteDoFn(self.config))
        else:  # the seed file is read by the pipeline, not by the launcher
            crawled = (
                pbegin
                | "SeedFile" >> beam.Create([self.config.source])
                | "Seeds" >> beam.FlatMap(_seeds_by_site)
                | "BySite" >> beam.GroupByKey()
                | "InOrder" >> beam.MapTuple(lambda site, seeds: (site, tuple(url for _, url in sorted(seeds))))
                | "Spread" >> beam.Reshuffle()
                | "CrawlSite" >> beam.ParDo(_CrawlSiteDoFn(self.config))
            )
        offsets = (
            crawled
            | "CountRows" >> beam.Map(lambda kv: (kv[0], len(kv[1])))
            | "ToDict" >> beam.combiners.ToDict()
            | "Offsets" >> beam.Map(_offsets)
        )
        return crawled | "Number" >> beam.ParDo(_NumberRows(self.config.source_file),
                                                 offsets=beam.pvalue.AsSingleton(offsets))
