"""Write the rejects: per stage, key-range shards ``OUT/rejects/STAGE/NNNNN.parquet`` of at most about
``reject_rows_per_file`` rows each, every row with its stage, reason and message (the
``reject_schema``). A stage with millions of rejects is many files written by many workers, never
one group on one worker; rows are spread over a stage's files by a hash of where they came from,
and sorted by input order inside each file, so the same input gives the same files.
"""
from __future__ import annotations

import hashlib
import math

import apache_beam as beam

from clipcurate import schemas
from clipcurate.pipeline import files as fs
from clipcurate.pipeline.files import write_table
from clipcurate.pipeline.sinks.arrow import to_table
from clipcurate.pipeline.sinks.shards import WriteConfig
from clipcurate.pipeline.stages.base import key_range
from clipcurate.schemas.layout import REJECTS
from clipcurate.schemas.records import input_order


def rejects_dir(out: str) -> str:
    return fs.join(out, REJECTS)


def part_of(row: dict, parts: int) -> int:
    """The file of a stage's rejects a row goes to: a hash of its input place, in ``parts`` ranges."""
    where = f"{row.get('source_file')}\0{row.get('source_row')}\0{row.get('key')}".encode()
    return key_range(hashlib.sha256(where).hexdigest(), parts)


class _WriteRejects(beam.DoFn):
    def __init__(self, config: WriteConfig):
        self.config = config

    def process(self, item):
        (stage, part), rows = item
        rows = sorted(rows, key=input_order)
        schema = schemas.reject_schema(list(self.config.extra_fields))
        path = fs.join(rejects_dir(self.config.output_dir), stage, f"{part:05d}.parquet")
        write_table(path, to_table(rows, schema), self.config.row_group_rows)
        yield stage, len(rows)


class WriteRejects(beam.PTransform):
    def __init__(self, config: WriteConfig):
        super().__init__()
        self.config = config

    def expand(self, rejects):
        n = self.config.reject_rows_per_file
        staged = rejects | "ByStage" >> beam.Map(lambda r: (r.get("stage") or "internal", r))
        counts = (staged | "Stages" >> beam.Map(lambda kv: kv[0])
                  | "PerStage" >> beam.combiners.Count.PerElement())
        return (
            staged
            | "Part" >> beam.Map(lambda kv, c: ((kv[0], part_of(kv[1], max(1, math.ceil(c[kv[0]] / n)))), kv[1]),
                                 beam.pvalue.AsDict(counts))
            | "GroupPart" >> beam.GroupByKey()
            | "Write" >> beam.ParDo(_WriteRejects(self.config))
        )
