"""The normalize stage: record batches (or single rows) -> lists of clean rows with a content key.

One list per input element: a record batch stays a batch (the stages after it shuffle and step
through batches, not rows); a single row (labelled, crawled) becomes a list of one.
"""
from __future__ import annotations

import apache_beam as beam
import pyarrow as pa

from clipcurate.filters.base import reject_row
from clipcurate.filters.normalize import NormalizeConfig, Normalizer
from clipcurate.pipeline.stages.base import REJECTS, Timer, internal_error


class _NormalizeDoFn(beam.DoFn):
    def __init__(self, config: NormalizeConfig):
        self.config = config

    def setup(self):
        self.normalizer = Normalizer(self.config)
        self.timer = Timer("normalize")

    def process(self, item):
        rows = item.to_pylist() if isinstance(item, pa.RecordBatch) else [item]
        self.timer.count(len(rows))
        with self.timer:
            kept, out = [], []
            for row in rows:
                try:
                    clean, drop = self.normalizer(row)
                except Exception as err:  # noqa: BLE001
                    out.append(beam.pvalue.TaggedOutput(REJECTS, internal_error(row, err)))
                    continue
                if drop is None:
                    kept.append(clean)
                else:
                    out.append(beam.pvalue.TaggedOutput(REJECTS, reject_row(clean, drop.reason, drop.message)))
        if kept:
            yield kept
        yield from out


class Normalize(beam.PTransform):
    def __init__(self, config: NormalizeConfig):
        super().__init__()
        self.config = config

    def expand(self, pcoll):
        result = pcoll | "Clean" >> beam.ParDo(_NormalizeDoFn(self.config)).with_outputs(REJECTS, main="main")
        return result.main, result[REJECTS]
