"""Write the rejects: per stage, key-range shards ``OUT/rejects/STAGE/NNNNN.parquet`` of at most about
``reject_rows_per_file`` rows each, every row with its stage, reason and message (the
``reject_schema``). A stage with millions of rejects is many files written by many workers, never
one group on one worker; rows are spread over a stage's files by a hash of where they came from,
and sorted by input order inside each file, so the same input gives the same files. Rejects are
batched and packed (``pipeline.packed``) where each stage makes them, before they meet: what waits
for the per-stage counts (a side input) and what is shuffled to the files are packed batches, never
one element per rejected row.
"""
from __future__ import annotations

import hashlib
import math
from collections import Counter

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc

from clipcurate import schemas
from clipcurate.pipeline import files as fs
from clipcurate.pipeline.files import write_table
from clipcurate.pipeline.packed import pack_by, unpack_columns, unpack_rows
from clipcurate.pipeline.sinks.arrow import columns_table
from clipcurate.pipeline.sinks.shards import WriteConfig
from clipcurate.pipeline.stages.base import key_range
from clipcurate.schemas.layout import REJECTS


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
        schema = schemas.reject_schema(list(self.config.extra_fields))
        # one Arrow table a packed batch (no dict a row), sorted by input order a row group at a time
        tables = [columns_table(unpack_columns([data], schema.names)[1], schema) for data in packs]
        table = pa.concat_tables(tables) if tables else schema.empty_table()
        path = fs.join(rejects_dir(self.config.output_dir), stage, f"{part:05d}.parquet")
        write_table(path, table, self.config.row_group_rows, order=input_order_indices(table))
        yield stage, table.num_rows


class WriteRejects(beam.PTransform):
    def __init__(self, config: WriteConfig):
        super().__init__()
        self.config = config

    def expand(self, rejects):
        """``rejects``: a PCollection of reject rows, or a tuple of them (one per stage)."""
        n = self.config.reject_rows_per_file
        sources = rejects if isinstance(rejects, tuple) else (rejects,)
        packed = tuple(
            pcoll
            | f"Batch{i}" >> beam.BatchElements(min_batch_size=64, max_batch_size=4096)
            | f"Pack{i}" >> beam.FlatMap(_pack_by_stage)
            for i, pcoll in enumerate(sources))
        packs = packed | "Packs" >> beam.Flatten()
        counts = (packs | "Stages" >> beam.Map(lambda pack: (pack[0], pack[1]))
                  | "PerStage" >> beam.CombinePerKey(sum))
        return (
            packs
            | "Part" >> beam.FlatMap(_to_parts, beam.pvalue.AsDict(counts), n)
            | "GroupPart" >> beam.GroupByKey()
            | "Write" >> beam.ParDo(_WriteRejects(self.config))
        )


def input_order_indices(table: pa.Table) -> pa.Array:
    """The rows' order by ``records.input_order`` (file, row, key; a missing one first), stable."""
    keys = pa.table({"file": pc.fill_null(table["source_file"], ""),
                     "row": pc.fill_null(table["source_row"], -1),
                     "key": pc.fill_null(table["key"], "")})
    return pc.sort_indices(keys, sort_keys=[("file", "ascending"), ("row", "ascending"), ("key", "ascending")])


def stage_of(row: dict) -> str:
    return row.get("stage") or "internal"


def _pack_by_stage(rows: list) -> list:
    """A batch of rejects -> (stage, rows, packed rows) for each stage in it."""
    by_stage = Counter(stage_of(r) for r in rows)
    return [(stage, by_stage[stage], data) for stage, data in pack_by(rows, stage_of)]


def _to_parts(pack: tuple, counts: dict, rows_per_file: int) -> list:
    """One stage's packed rejects -> ((stage, file), packed rows) for each file they go to."""
    stage, _, data = pack
    parts = max(1, math.ceil(counts[stage] / rows_per_file))
    return pack_by(unpack_rows(data), lambda row: (stage, part_of(row, parts)))
