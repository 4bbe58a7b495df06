"""Write the rows that survived a metadata-only run (``run --until STAGE``): OUT/pairs/NNNNN.parquet.

Each file is a key range (``key_range``: one file per ``rows_per_file`` input rows), sorted by key, with the
input's columns and the fields the stages that ran added (``schemas.records``): the table a user
filters before downloading anything, as LAION and DataComp users do first. The rows never go
through a shuffle: each bundle writes its rows of each file to a temporary piece, the pieces' paths
are grouped by file, and each file is made from its pieces.
"""
from __future__ import annotations

import math
import os
import tempfile
import uuid

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue

from clipcurate import schemas
from clipcurate.pipeline import files as fs
from clipcurate.pipeline.files import write_table
from clipcurate.pipeline.packed import row_columns
from clipcurate.pipeline.sinks.arrow import columns_table
from clipcurate.pipeline.stages.base import Timer, key_range
from clipcurate.schemas.layout import PAIRS
from clipcurate.schemas.records import fields_after


def pairs_schema(stage: str, extra: tuple) -> pa.Schema:
    """The sample fields that exist after ``stage``, then the user columns."""
    present = fields_after(stage)
    return pa.schema([f for f in schemas.SAMPLE_FIELDS if f.name in present] + list(extra))


PIECES = "_pieces/pairs"  # under the staging folder: each bundle's rows of a part, until the part's file is written
SPILL_ROWS = 20_000       # a part's rows are written to its piece this many at a time (a row group)
SPILL_BYTES = 32 << 20    # at most this much Arrow data waits in a bundle, over all parts (the largest go first)


class _SpillParts(beam.DoFn):
    """Batches of rows -> (part, piece path): each bundle writes its rows of each part to a temporary
    Parquet piece (``PIECES/PPPPP/UUID.parquet``), so the shuffle that follows moves the pieces'
    paths, not the rows (a runner that holds a shuffle in memory holds almost nothing). Each batch
    becomes one Arrow table, cut by part; a part's rows wait as Arrow data until ``SPILL_ROWS`` of
    them, or until all parts' waiting data passes ``SPILL_BYTES`` (bounded whatever the number of
    parts). A piece is written on local disk and, for an object store, copied there when its bundle
    ends."""

    def __init__(self, output_dir: str, schema: pa.Schema, rows_per_file: int):
        self.output_dir, self.schema, self.rows_per_file = output_dir, schema, rows_per_file

    def setup(self):
        self.timer = Timer("write")

    def start_bundle(self):
        self._pieces = {}   # part -> (ParquetWriter, local path, final path)
        self._waiting = {}  # part -> [tables]
        self._rows, self._bytes = {}, 0

    def process(self, rows, total: int):
        """``total``: the input rows (the launcher's estimate, or a count); a part is ``rows_per_file`` of them."""
        if not rows:
            return
        parts = max(1, math.ceil(total / self.rows_per_file))
        with self.timer:
            n, columns = row_columns(rows, self.schema.names)  # grouped by shape: files are sorted by key anyway
            table = columns_table(columns, self.schema)
            where = np.fromiter((key_range(key, parts) for key in columns["key"]), dtype=np.int64, count=n)
            order = np.argsort(where, kind="stable")
            bounds = np.flatnonzero(np.diff(where[order])) + 1
            for idx in np.split(order, bounds):
                part = int(where[idx[0]])
                piece = table.take(pa.array(idx))
                self._waiting.setdefault(part, []).append(piece)
                self._rows[part] = self._rows.get(part, 0) + piece.num_rows
                self._bytes += piece.nbytes
                if self._rows[part] >= SPILL_ROWS:
                    self._spill(part)
            while self._bytes > SPILL_BYTES:
                self._spill(max(self._rows, key=self._rows.get))

    def _spill(self, part: int):
        tables = self._waiting.pop(part)
        self._rows.pop(part)
        self._bytes -= sum(t.nbytes for t in tables)
        if part not in self._pieces:
            name = f"{uuid.uuid4().hex}.parquet"
            final = fs.join(self.output_dir, PIECES, f"{part:05d}", name)
            if fs.is_remote(final):
                local = os.path.join(tempfile.gettempdir(), f"clipcurate-piece-{name}")
            else:
                local = final
                os.makedirs(os.path.dirname(local), exist_ok=True)
            self._pieces[part] = (pq.ParquetWriter(local, self.schema, compression="zstd"), local, final)
        self._pieces[part][0].write_table(pa.concat_tables(tables))

    def finish_bundle(self):
        with self.timer:
            for part in list(self._waiting):
                self._spill(part)
            for part, (writer, local, final) in sorted(self._pieces.items()):
                writer.close()
                if local != final:  # an object store: copy the piece there
                    with open(local, "rb") as f:
                        fs.atomic_write(final, f.read())
                    os.remove(local)
                yield WindowedValue((part, final), GlobalWindow().max_timestamp(), [GlobalWindow()])
        self._pieces = {}


class _WritePart(beam.DoFn):
    def __init__(self, output_dir: str, schema: pa.Schema, row_group_rows: int):
        self.output_dir, self.schema, self.row_group_rows = output_dir, schema, row_group_rows

    def setup(self):
        self.timer = Timer("write")

    def process(self, item):
        part, pieces = item
        pieces = sorted(set(pieces))
        with self.timer:
            tables = []
            for path in pieces:
                with fs.open_read(path) as f:
                    tables.append(pq.read_table(f, schema=self.schema))
            table = pa.concat_tables(tables) if tables else self.schema.empty_table()
            n = table.num_rows  # keys are unique after pair dedup: the key order is the file's order
            write_table(fs.join(self.output_dir, PAIRS, f"{part:05d}.parquet"), table, self.row_group_rows,
                        sort_by="key")
            fs.delete(pieces)
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
        """``batches``: lists of rows (the caption stages' output). Each bundle writes its rows of each
        part (a key range) to a piece (``_SpillParts``); the pieces' paths are grouped by part and each
        part's pieces make its file, sorted by key. The number of parts comes from ``expected_rows``
        (the launcher's estimate of the input rows: the rows go straight on, and files hold fewer
        rows where many are dropped) or, without one, from a count of the rows (a side input: every
        row waits for it)."""
        schema = pairs_schema(self.stage, self.extra)
        if self.expected_rows is not None:
            total = self.expected_rows
        else:
            total = beam.pvalue.AsSingleton(batches | "Rows" >> beam.Map(len) | "Total" >> beam.CombineGlobally(sum))
        pieces = batches | "Spill" >> beam.ParDo(_SpillParts(self.output_dir, schema, self.rows_per_file), total)
        return (pieces
                | "GroupPart" >> beam.GroupByKey()
                | "Write" >> beam.ParDo(_WritePart(self.output_dir, schema, self.row_group_rows)))
