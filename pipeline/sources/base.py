"""What the sources share: one skeleton, "items -> spread over workers -> read each".

The items are files (tables, WARC/WAT) or a crawl's sites. ``ReadEach``
creates them, reshuffles so that each worker takes its own items, and applies
a DoFn per item with a rejects output. File readers share ``ReadFileDoFn``:
a reader yields ``("batch", RecordBatch)`` for rows and ``("malformed", row)``
for what could not be read (an ingest ``malformed_row`` reject, built by
``malformed_row``); the DoFn counts both as input rows.
"""
from __future__ import annotations

from typing import Callable, Iterable

import apache_beam as beam
from apache_beam.metrics import Metrics

from clipcurate.filters.base import reject_row
from clipcurate.pipeline.stages.base import NAMESPACE, REJECTS

BATCH, MALFORMED = "batch", "malformed"


def malformed_row(path: str, index: int, message: str) -> dict:
    """The reject for a line, record or file of ``path`` that cannot be read."""
    return reject_row({"url": None, "caption": None, "source_file": path, "source_row": int(index)},
                      "malformed_row", message)


class ReadFileDoFn(beam.DoFn):
    """path -> record batches (main) and malformed_row rejects; ``make()`` builds the reader once per worker."""

    def __init__(self, make: Callable[[], Callable[[str], Iterable[tuple]]]):
        self.make = make

    def setup(self):
        self.read = self.make()
        self.rows = Metrics.counter(NAMESPACE, "input_rows")

    def process(self, path):
        for kind, item in self.read(path):
            if kind == BATCH:
                self.rows.inc(item.num_rows)
                yield item
            else:
                self.rows.inc()
                yield beam.pvalue.TaggedOutput(REJECTS, item)


class ReadEach(beam.PTransform):
    """PBegin -> (main, rejects): one ``dofn`` call per item, items spread over the workers."""

    def __init__(self, items, dofn: beam.DoFn):
        super().__init__()
        self.items = list(items)
        self.dofn = dofn

    def expand(self, pbegin):
        result = (
            pbegin
            | "Items" >> beam.Create(self.items)
            | "Spread" >> beam.Reshuffle()
            | "Read" >> beam.ParDo(self.dofn).with_outputs(REJECTS, main="main")
        )
        return result.main, result[REJECTS]
