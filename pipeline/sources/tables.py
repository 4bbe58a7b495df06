"""Ingest: read tables of URL/caption pairs (Parquet, CSV, TSV, JSONL; gzip too).

The input is checked up front (files exist, columns exist, one schema for all
files); then each file is read as Arrow record batches, with the URL and
caption columns renamed to ``url`` and ``caption``, clashing user columns
renamed (``src_<name>``) and ``source_file``/``source_row`` added. A line that
cannot be parsed becomes a ``malformed_row`` reject, never a crash.
"""
from __future__ import annotations

import csv
import glob
import io
import json
from dataclasses import dataclass

import apache_beam as beam
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from clipcurate import schemas
from clipcurate.pipeline import files as fs
from clipcurate.pipeline.sources.base import ReadEach, ReadFileDoFn, malformed_row
from clipcurate.pipeline.sources.errors import InputError

FORMATS = ("parquet", "csv", "tsv", "jsonl")


@dataclass(frozen=True)
class IngestConfig:
    files: tuple[str, ...]
    url_col: str = "url"
    caption_col: str = "caption"
    input_format: str | None = None  # None: from each file's extension
    batch_rows: int = 4096


def expand_inputs(patterns, any_extension: bool = False) -> tuple[str, ...]:
    """Files named by paths or globs (local or ``s3://``/``gs://``...), sorted, each once (a folder:
    its tables, or all files with any_extension)."""
    files = []
    for pattern in patterns:
        if glob.has_magic(pattern):
            matched = fs.match(pattern)
            if not matched:
                raise InputError(f"no input file matches {pattern!r}")
            files.extend(matched)
        elif fs.is_file(pattern):
            files.append(pattern)
        elif fs.is_dir(pattern):
            matched = [p for p in fs.list_files(pattern) if any_extension or format_of(p) is not None]
            if not matched:
                raise InputError(f"input folder {pattern!r} holds no .parquet/.csv/.tsv/.jsonl file")
            files.extend(matched)
        else:
            raise InputError(f"input file {pattern!r} does not exist")
    seen, out = set(), []
    for f in files:
        if f not in seen:
            seen.add(f)
            out.append(f)
    return tuple(out)


def format_of(path: str) -> str | None:
    """The table format a file name says (.parquet/.pq, .csv, .tsv, .jsonl/.ndjson/.json, each optionally .gz)."""
    name = path.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    for ext, fmt in ((".parquet", "parquet"), (".pq", "parquet"), (".csv", "csv"), (".tsv", "tsv"),
                     (".jsonl", "jsonl"), (".ndjson", "jsonl"), (".json", "jsonl")):
        if name.endswith(ext):
            return fmt
    return None


def file_format(path: str, forced: str | None = None) -> str:
    fmt = forced or format_of(path)
    if fmt not in FORMATS:
        raise InputError(f"cannot tell the format of {path!r}: use .parquet, .csv, .tsv or .jsonl (optionally .gz)")
    return fmt


def _stream(path: str):
    if fs.is_remote(path):
        return pa.input_stream(fs.open_read(path), compression="gzip" if path.lower().endswith(".gz") else None)
    return pa.input_stream(path, compression="detect")


def _parquet(path: str):
    """What pyarrow's Parquet readers take: the local path, or a seekable file object of a remote one."""
    return fs.open_read(path) if fs.is_remote(path) else path


def _csv_options(path: str, fmt: str):
    delimiter = "\t" if fmt == "tsv" else ","
    with _stream(path) as f:
        header = f.read(1 << 16).split(b"\n")[0]
    text = header.decode("utf-8-sig", "replace").rstrip("\r\n")
    # read every column as text: types inferred per file would not agree across files
    names = next(csv.reader([text], delimiter=delimiter)) if text else []
    parse = pacsv.ParseOptions(delimiter=delimiter, quote_char=False if fmt == "tsv" else '"',
                               newlines_in_values=fmt == "csv")
    convert = pacsv.ConvertOptions(column_types={n: pa.string() for n in names},
                                   strings_can_be_null=False, quoted_strings_can_be_null=False)
    return names, parse, convert


def read_schema(path: str, fmt: str) -> pa.Schema:
    """The schema of one input file, read cheaply (metadata or the first block)."""
    try:
        if fmt == "parquet":
            return pq.read_schema(_parquet(path))
        if fmt in ("csv", "tsv"):
            names, _, _ = _csv_options(path, fmt)
            return pa.schema([pa.field(n, pa.string()) for n in names])
        return _jsonl_head_schema(path)
    except InputError:
        raise
    except (OSError, pa.ArrowException, ValueError) as err:
        raise InputError(f"cannot read {path!r} as {fmt}: {str(err).splitlines()[0]}") from None


SCHEMA_SAMPLE_BYTES = 1 << 20  # a JSONL file's columns are those of its first MiB of lines


def _jsonl_head_schema(path: str) -> pa.Schema:
    """The columns of a JSONL file's first lines (up to ``SCHEMA_SAMPLE_BYTES``), never the whole file."""
    with _stream(path) as f:
        head = f.read(SCHEMA_SAMPLE_BYTES)
    if len(head) == SCHEMA_SAMPLE_BYTES and b"\n" in head:
        head = head[: head.rindex(b"\n") + 1]
    try:
        return pajson.read_json(io.BytesIO(head)).schema
    except pa.ArrowInvalid:
        pass
    rows, _ = _json_objects(enumerate(head.decode("utf-8", "replace").splitlines()))
    return pa.Table.from_pylist([v for _, v in rows]).schema if rows else pa.schema([])


def unify_schemas(schemas_: list[pa.Schema]) -> pa.Schema:
    """One schema for all files; a column whose type differs between files becomes text."""
    fields: dict[str, pa.DataType] = {}
    for schema in schemas_:
        for f in schema:
            t = pa.string() if pa.types.is_null(f.type) else f.type
            if f.name not in fields:
                fields[f.name] = t
            elif fields[f.name] != t:
                fields[f.name] = pa.string()
    return pa.schema([pa.field(n, t) for n, t in fields.items()])


def check_input(config: IngestConfig) -> pa.Schema:
    """Check every file and the URL/caption columns up front; return the unified schema."""
    found = [read_schema(f, file_format(f, config.input_format)) for f in config.files]
    schema = unify_schemas(found)
    for col, flag in ((config.url_col, "--url-col"), (config.caption_col, "--caption-col")):
        missing = [f for f, s in zip(config.files, found) if col not in s.names]
        if missing:
            have = ", ".join(found[config.files.index(missing[0])].names[:12])
            raise InputError(f"column {col!r} ({flag}) is missing in {missing[0]!r}; its columns are: {have}")
    return schema


def _json_objects(numbered) -> tuple[list[tuple[int, dict]], list[tuple[int, str]]]:
    """(index, object) for the lines that are JSON objects, (index, error) for the others."""
    good, bad = [], []
    for index, raw in numbered:
        try:
            value = json.loads(raw)
            if not isinstance(value, dict):
                raise ValueError("line is not a JSON object")
        except ValueError as err:
            bad.append((index, f"invalid JSON: {err}"))
            continue
        good.append((index, value))
    return good, bad


def _read_jsonl(path: str) -> tuple[pa.Table, list[tuple[int, str]]]:
    """A JSONL file as a table, plus (line number, error) for lines that are not JSON objects."""
    try:
        with _stream(path) as f:
            return pajson.read_json(f), []
    except pa.ArrowInvalid:
        pass
    with _stream(path) as f:
        lines = [raw for raw in io.TextIOWrapper(f, encoding="utf-8", errors="replace") if raw.strip()]
    rows, bad = _json_objects(enumerate(lines))
    if not rows:
        return pa.table({}), bad
    table = pa.Table.from_pylist([v for _, v in rows])
    if bad:
        # keep the original line numbers of the good rows
        table = table.append_column("__line", pa.array([i for i, _ in rows], pa.int64()))
    return table, bad


def read_whole_table(path: str, fmt: str | None = None, what: str = "table") -> pa.Table:
    """A small table read whole (a labelled table): the formats, gzip and text-typed CSV columns of
    ingest's reader; a line that cannot be parsed is an InputError, since such a table is trusted input."""
    fmt = file_format(path, fmt)
    try:
        if fmt == "parquet":
            return pq.read_table(_parquet(path))
        if fmt in ("csv", "tsv"):
            _, parse, convert = _csv_options(path, fmt)
            with _stream(path) as f:
                return pacsv.read_csv(f, parse_options=parse, convert_options=convert)
        table, bad = _read_jsonl(path)
    except (OSError, pa.ArrowException, ValueError) as err:
        raise InputError(f"cannot read {what} {path}: {str(err).splitlines()[0]}") from None
    if bad:
        line, message = bad[0]
        raise InputError(f"cannot read {what} {path}: line {line + 1}: {message}")
    return table


def _lines(f, block: int = 1 << 20):
    """The lines of a binary stream (without their newline), read a block at a time."""
    rest = b""
    while True:
        data = f.read(block)
        if not data:
            break
        lines = (rest + data).split(b"\n")
        rest = lines.pop()
        yield from lines
    if rest:
        yield rest


class FileReader:
    """Reads one input file into record batches in the pipeline's input layout."""

    def __init__(self, config: IngestConfig, input_schema: pa.Schema):
        self.config = config
        self.input_schema = input_schema
        self.user_fields = schemas.user_fields(input_schema, config.url_col, config.caption_col)
        clashes = set(schemas.column_clashes(input_schema.names, config.url_col, config.caption_col))
        self.renames = {n: schemas.carried_name(n) for n in clashes}

    def read(self, path: str):
        """Yield ("batch", RecordBatch) and ("malformed", dict) items."""
        fmt = file_format(path, self.config.input_format)
        if fmt == "parquet":
            # buffered column reads: a row group of a million rows is read page by page (~13 MB of
            # Arrow memory, not ~50 MB), whatever the row-group size the file was written with
            pf = pq.ParquetFile(_parquet(path), buffer_size=1 << 20, pre_buffer=False)
            start = 0
            for batch in pf.iter_batches(batch_size=self.config.batch_rows):
                yield "batch", self._layout(path, pa.Table.from_batches([batch]), start)
                start += batch.num_rows
        elif fmt in ("csv", "tsv"):
            yield from self._read_csv(path, fmt)
        else:
            yield from self._read_jsonl(path)

    def _batches(self, path: str, table: pa.Table, rows: pa.Array):
        """``table`` in batches of ``batch_rows``, each with its rows' source_row numbers."""
        for offset in range(0, table.num_rows, self.config.batch_rows):
            yield "batch", self._layout(path, table.slice(offset, self.config.batch_rows), offset,
                                        rows.slice(offset, self.config.batch_rows))

    def _read_jsonl(self, path: str):
        """Streamed: ``batch_rows`` lines at a time (pyarrow's parser; line by line for a chunk it
        refuses), so memory holds one chunk, not the file. Blank lines are skipped and not counted."""
        chunk: list[tuple[int, bytes]] = []
        index = 0
        with _stream(path) as f:
            for raw in _lines(f):
                if not raw.strip():
                    continue
                chunk.append((index, raw + b"\n"))
                index += 1
                if len(chunk) >= self.config.batch_rows:
                    yield from self._jsonl_chunk(path, chunk)
                    chunk = []
        if chunk:
            yield from self._jsonl_chunk(path, chunk)

    def _jsonl_chunk(self, path: str, chunk: list[tuple[int, bytes]]):
        try:
            table = pajson.read_json(io.BytesIO(b"".join(line for _, line in chunk)))
            if table.num_rows == len(chunk):
                yield from self._batches(path, table, pa.array([i for i, _ in chunk], pa.int64()))
                return
        except pa.ArrowInvalid:
            pass
        good, bad = _json_objects(chunk)
        for i, message in bad:
            yield "malformed", self._malformed(path, i, message)
        if good:
            yield from self._batches(path, pa.Table.from_pylist([v for _, v in good]),
                                     pa.array([i for i, _ in good], pa.int64()))

    def _read_csv(self, path, fmt):
        """Streamed: pyarrow's CSV reader, a block (4 MiB) at a time. Rows are numbered by physical
        line (after the header), counting the malformed lines, which become rejects."""
        names, parse, convert = _csv_options(path, fmt)
        bad: list[tuple[int, str]] = []

        def on_invalid(row):
            bad.append((row.number, row.text))
            return "skip"

        parse = pacsv.ParseOptions(delimiter=parse.delimiter, quote_char=parse.quote_char,
                                   newlines_in_values=parse.newlines_in_values, invalid_row_handler=on_invalid)
        read = pacsv.ReadOptions(use_threads=False, block_size=1 << 22)
        line, reported, bad_lines = 2, 0, set()  # the physical line of the next good row (line 1: the header)
        try:
            reader = pacsv.open_csv(_stream(path), read_options=read, parse_options=parse, convert_options=convert)
            for batch in reader:
                for number, text in bad[reported:]:
                    yield "malformed", self._malformed(path, (number or 0) - 2, f"wrong number of fields: {text[:200]!r}")
                    if number is not None:
                        bad_lines.add(number)
                reported = len(bad)
                if not bad_lines or max(bad_lines) < line:  # no malformed line ahead: numbers run on
                    rows = list(range(line - 2, line - 2 + batch.num_rows))
                    line += batch.num_rows
                else:
                    rows = []
                    while len(rows) < batch.num_rows:
                        if line not in bad_lines:
                            rows.append(line - 2)
                        line += 1
                yield from self._batches(path, pa.Table.from_batches([batch]), pa.array(rows, pa.int64()))
        except pa.ArrowInvalid as err:
            yield "malformed", self._malformed(path, max(line - 2, 0), f"unreadable {fmt}: {str(err).splitlines()[0]}")
            return
        for number, text in bad[reported:]:
            yield "malformed", self._malformed(path, (number or 0) - 2, f"wrong number of fields: {text[:200]!r}")

    def _layout(self, path: str, table: pa.Table, start: int, rows=None) -> pa.RecordBatch:
        n = table.num_rows
        columns, fields = [], []
        for name, out_name in ((self.config.url_col, "url"), (self.config.caption_col, "caption")):
            col = table.column(name) if name in table.column_names else pa.nulls(n, pa.string())
            if not pa.types.is_string(col.type) and not pa.types.is_large_string(col.type):
                col = col.cast(pa.string(), safe=False) if not pa.types.is_null(col.type) else pa.nulls(n, pa.string())
            columns.append(col)
            fields.append(pa.field(out_name, pa.string()))
        columns.append(pa.array([path] * n, pa.string()))
        fields.append(pa.field("source_file", pa.string()))
        columns.append(rows if rows is not None else pa.array(range(start, start + n), pa.int64()))
        fields.append(pa.field("source_row", pa.int64()))
        for f in self.input_schema:
            if f.name in (self.config.url_col, self.config.caption_col):
                continue
            if f.name in table.column_names:
                col = table.column(f.name)
                if col.type != f.type:
                    col = col.cast(f.type) if not pa.types.is_string(f.type) else _to_text(col)
            else:
                col = pa.nulls(n, f.type)
            columns.append(col)
            fields.append(pa.field(self.renames.get(f.name, f.name), f.type))
        return pa.Table.from_arrays(columns, schema=pa.schema(fields)).combine_chunks().to_batches()[0] if n else \
            pa.RecordBatch.from_pylist([], schema=pa.schema(fields))

    def _malformed(self, path: str, row: int, message: str) -> dict:
        return malformed_row(path, row, message)


def _to_text(col):
    try:
        return col.cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.array([None if v is None else json.dumps(v, default=str) for v in col.to_pylist()], pa.string())


# --- Beam -------------------------------------------------------------------------------



class Ingest(beam.PTransform):
    """Files -> Arrow record batches in the input layout (+ a rejects output)."""

    def __init__(self, config: IngestConfig, input_schema: pa.Schema):
        super().__init__()
        self.config = config
        self.input_schema = input_schema

    def expand(self, pbegin):
        config, schema = self.config, self.input_schema
        return pbegin | "Files" >> ReadEach(config.files, ReadFileDoFn(lambda: FileReader(config, schema).read))
