"""Write the rows that survived a metadata-only run (``run --until STAGE``): OUT/pairs/NNNNN.parquet.

Each file is a key range (``key_range``: one file per ``rows_per_file`` input rows), sorted by key, with the
input's columns and the fields the stages that ran added (``schemas.records``): the table a user
filters before downloading anything, as LAION and DataComp users do first.
"""
from __future__ import annotations

import math

import apache_beam as beam
import pyarrow as pa

from clipcurate import schemas
from clipcurate.pipeline import files as fs
from clipcurate.pipeline.files import write_table
from clipcurate.pipeline.packed import pack_by, unpack_columns
from clipcurate.pipeline.sinks.arrow import columns_table
from clipcurate.pipeline.stages.base import Timer, key_range
from clipcurate.schemas.layout import PAIRS
from clipcurate.schemas.records import fields_after


def pairs_schema(stage: str, extra: tuple) -> pa.Schema:
    """The sample fields that exist after ``stage``, then the user columns."""
    present = fields_after(stage)
    return pa.schema([f for f in schemas.SAMPLE_FIELDS if f.name in present] + list(extra))


class _WritePart(beam.DoFn):
    def __init__(self, output_dir: str, schema: pa.Schema, row_group_rows: int):
        self.output_dir, self.schema, self.row_group_rows = output_dir, schema, row_group_rows

    def setup(self):
        self.timer = Timer("write")

    def process(self, item):
        part, packs = item
        with self.timer:
            # one Arrow table per packed batch, then one concatenation: the file's rows are never
            # Python lists all at once (a file holds up to ~200k rows)
            tables = [columns_table(unpack_columns([data], self.schema.names)[1], self.schema) for data in packs]
            table = pa.concat_tables(tables) if tables else self.schema.empty_table()
            n = table.num_rows  # keys are unique after pair dedup: the key order is the file's order
            write_table(fs.join(self.output_dir, PAIRS, f"{part:05d}.parquet"), table, self.row_group_rows,
                        sort_by="key")
        self.timer.count(n)
        yield n


class WritePairs(beam.PTransform):
    def __init__(self, output_dir: str, stage: str, extra_fields: tuple, rows_per_file: int = 200_000,
                 row_group_rows: int = 100_000, expected_rows: int | None = None):
        super().__init__()
        self.output_dir, self.stage, self.extra = output_dir, stage, extra_fields
        self.rows_per_file, self.row_group_rows = rows_per_file, row_group_rows
        self.expected_rows = expected_rows

    def expand(self, batches):
        """``batches``: lists of rows (the caption stages' output). Each batch is cut by key range into
        one packed value per part (``pipeline.packed``), so the shuffle moves a few values per batch,
        not one element per row. The number of parts comes from ``expected_rows`` (the launcher's
        estimate of the input rows: the rows go straight on, and files hold fewer rows where many are
        dropped) or, without one, from a count of the rows (a side input: every row waits for it)."""
        schema = pairs_schema(self.stage, self.extra)
        n = self.rows_per_file
        if self.expected_rows is not None:
            parts = max(1, math.ceil(self.expected_rows / n))
            split = batches | "Part" >> beam.FlatMap(split_by_part, parts)
        else:
            total = batches | "Rows" >> beam.Map(len) | "Total" >> beam.CombineGlobally(sum)
            split = batches | "Part" >> beam.FlatMap(lambda rows, t: split_by_part(rows, max(1, math.ceil(t / n))),
                                                     beam.pvalue.AsSingleton(total))
        return (split
                | "GroupPart" >> beam.GroupByKey()
                | "Write" >> beam.ParDo(_WritePart(self.output_dir, schema, self.row_group_rows)))


def split_by_part(rows: list, parts: int) -> list:
    """[(part, packed rows of that part)] for one batch, parts by key range (``key_range``)."""
    return pack_by(rows, lambda row: key_range(row["key"], parts))
