"""DuckDB over an output folder: the views ``pairs`` (kept samples) and ``rejects``.

Local outputs are read by DuckDB itself (``read_parquet`` over the files). An output on an object
store (``s3://``, ``gs://``, ...) is read through Beam's FileSystems, the same client the pipeline
wrote it with, as an Arrow dataset that DuckDB scans lazily (only the columns and row groups a query
needs are fetched); DuckDB's own httpfs extension is not needed, so nothing is downloaded at run time.
"""
from __future__ import annotations

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from clipcurate.pipeline import files as fs
from clipcurate.pipeline.inspect.stats import kept_files, reject_files

_EMPTY = ("SELECT NULL::VARCHAR AS key, NULL::VARCHAR AS url, NULL::VARCHAR AS caption, NULL::VARCHAR AS stage, "
          "NULL::VARCHAR AS reason, NULL::FLOAT AS similarity WHERE false")


class _BeamFiles(pafs.FileSystemHandler):
    """Read-only Arrow filesystem over Beam's FileSystems (full URLs as paths)."""

    def get_type_name(self):
        return "beam"

    def normalize_path(self, path):
        return path

    def get_file_info(self, paths):
        out = []
        for path in paths:
            found = dict(fs.match_sizes(path))
            if path in found:
                out.append(pafs.FileInfo(path, pafs.FileType.File, size=found[path]))
            else:
                out.append(pafs.FileInfo(path, pafs.FileType.NotFound))
        return out

    def get_file_info_selector(self, selector):
        base = fs.join(selector.base_dir, "")
        return [pafs.FileInfo(p, pafs.FileType.File, size=n) for p, n in fs.match_sizes(base + "**")
                if selector.recursive or "/" not in p[len(base):]]

    def open_input_file(self, path):
        return pa.PythonFile(fs.open_read(path), mode="r")

    def open_input_stream(self, path):
        return self.open_input_file(path)

    def _read_only(self, *args, **kwargs):
        raise NotImplementedError("the output is opened read-only")

    create_dir = delete_dir = delete_dir_contents = delete_root_dir_contents = delete_file = _read_only
    move = copy_file = open_output_stream = open_append_stream = _read_only


def _remote_view(con, view: str, files: list[str]) -> None:
    filesystem = pafs.PyFileSystem(_BeamFiles())
    schemas = []
    for path in files:
        with fs.open_read(path) as f:
            schemas.append(pq.read_schema(f))
    dataset = ds.dataset(files, schema=pa.unify_schemas(schemas, promote_options="permissive"),
                         format="parquet", filesystem=filesystem)
    con.register(f"_{view}_files", dataset)
    con.execute(f"CREATE VIEW {view} AS SELECT * FROM _{view}_files")


def connect(out: str):
    """A DuckDB connection with the views ``pairs`` and ``rejects`` over the output ``out``."""
    con = duckdb.connect()
    for view, files in (("pairs", kept_files(out)), ("rejects", reject_files(out))):
        if not files:
            con.execute(f"CREATE VIEW {view} AS {_EMPTY}")
        elif fs.is_remote(out):
            _remote_view(con, view, files)
        else:
            listing = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
            con.execute(f"CREATE VIEW {view} AS SELECT * FROM read_parquet([{listing}], union_by_name=true)")
    return con
