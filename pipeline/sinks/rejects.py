"""Write the rejects: per stage, key-range shards ``OUT/rejects/STAGE/NNNNN.parquet`` of at most about
``reject_rows_per_file`` rows each, every row with its stage, reason and message (the
``reject_schema``). A stage with millions of rejects is many files written by many workers, never
one group on one worker; rows are spread over a stage's files by a hash of where they came from,
and sorted by input order inside each file, so the same input gives the same files. The rows of a
batch of rejects that go to the same file travel packed as one value (``pipeline.packed``).
"""
from __future__ import annotations

import hashlib
import math
from collections import Counter

import apache_beam as beam

from clipcurate import schemas
from clipcurate.pipeline import files as fs
from clipcurate.pipeline.files import write_table
from clipcurate.pipeline.packed import pack_by, unpack_rows
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
        (stage, part), packs = item
        rows = sorted((row for data in packs for row in unpack_rows(data)), key=input_order)
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
        batches = rejects | "Batch" >> beam.BatchElements(min_batch_size=64, max_batch_size=4096)
        counts = (batches | "Stages" >> beam.FlatMap(lambda rows: Counter(stage_of(r) for r in rows).items())
                  | "PerStage" >> beam.CombinePerKey(sum))
        return (
            batches
            | "Part" >> beam.FlatMap(_to_parts, beam.pvalue.AsDict(counts), n)
            | "GroupPart" >> beam.GroupByKey()
            | "Write" >> beam.ParDo(_WriteRejects(self.config))
        )


def stage_of(row: dict) -> str:
    return row.get("stage") or "internal"


def _to_parts(rows: list, counts: dict, rows_per_file: int) -> list:
    """A batch of rejects -> ((stage, file), packed rows) for each file it touches."""
    def place(row):
        stage = stage_of(row)
        return stage, part_of(row, max(1, math.ceil(counts[stage] / rows_per_file)))
    return pack_by(rows, place)
