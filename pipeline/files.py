"""Every file the pipeline reads or writes goes through here: local paths with ``os``, anything with a
scheme (``s3://``, ``gs://``, ...) through Beam's ``FileSystems``, so object stores work wherever
Beam's extra for them is installed.

- Writes are atomic: a temporary name beside the target, then a rename (on an object store the
  rename is a copy and a delete, so the final name never holds half an object). A killed process
  leaves the old file or the new one, never half of one.
- ``resolve_local``/``resolve_under``: the containment check for files read from inside a root;
  ``read_under`` reads one such file, checking the file it opened (not the path before opening)
  folder (labelled images, always local).

Light on imports (Beam's FileSystems only when a path has a scheme), so every module can use it.
"""
from __future__ import annotations

import fnmatch
import glob
import io
import json
import os
import posixpath
import shutil
import stat as stat_
import uuid
from contextlib import contextmanager
from typing import BinaryIO, Optional

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq


def is_remote(path) -> bool:
    """Whether ``path`` names an object in a Beam filesystem other than the local one (has a scheme)."""
    text = os.fspath(path)
    return "://" in text and not text.startswith("file://")


FLAGS_ENV = "CLIPCURATE_FILESYSTEM_FLAGS"  # Beam flags for FileSystems, inherited by worker processes
_configured = False


def configure(flags: list[str]) -> None:
    """Beam's filesystem options (``--s3_endpoint_url URL``, credentials, ...) for this process and,
    through the environment, for the worker processes it starts (a local dask cluster's workers are
    not handed the pipeline's options for the files our DoFns open themselves)."""
    global _configured
    os.environ[FLAGS_ENV] = json.dumps(list(flags))
    _configured = False


def _fs():
    global _configured
    from apache_beam.io.filesystems import FileSystems

    if not _configured:
        _configured = True
        flags = json.loads(os.environ.get(FLAGS_ENV) or "[]")
        if flags:
            from apache_beam.options.pipeline_options import PipelineOptions

            FileSystems.set_options(PipelineOptions(flags))
    return FileSystems


def _plain():
    from apache_beam.io.filesystem import CompressionTypes

    return CompressionTypes.UNCOMPRESSED  # gzip is ours to detect, never Beam's by extension


def join(base, *parts: str) -> str:
    base = os.fspath(base)
    if is_remote(base):
        return posixpath.join(base.rstrip("/"), *parts)
    return os.path.join(base, *parts)


def basename(path) -> str:
    return posixpath.basename(os.fspath(path).rstrip("/")) if is_remote(path) else os.path.basename(path)


def exists(path) -> bool:
    return _fs().exists(os.fspath(path)) if is_remote(path) else os.path.exists(path)


def is_file(path) -> bool:
    if not is_remote(path):
        return os.path.isfile(path)
    return any(m == os.fspath(path) for m, _ in match_sizes(os.fspath(path)))


def is_dir(path) -> bool:
    """A local folder, or an object-store prefix with at least one object under it."""
    if not is_remote(path):
        return os.path.isdir(path)
    return bool(match_sizes(join(path, "*")))


def match_sizes(pattern: str) -> list[tuple[str, int]]:
    """(path, size in bytes) of the objects a remote glob matches, sorted; none when it matches nothing."""
    from apache_beam.io.filesystem import BeamIOError

    try:
        found = _fs().match([pattern])[0].metadata_list
    except BeamIOError:
        return []
    return sorted((m.path, m.size_in_bytes) for m in found)


def match(pattern) -> list[str]:
    """Files matching a glob (``**`` recurses), sorted; remote patterns through FileSystems.match."""
    pattern = os.fspath(pattern)
    if not is_remote(pattern):
        return sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
    return [p for p, _ in match_sizes(pattern)]


def list_files(folder, pattern: str = "*") -> list[str]:
    """The files directly in ``folder`` whose names match ``pattern``, sorted."""
    if not is_remote(folder):
        if not os.path.isdir(folder):
            return []
        return sorted(os.path.join(folder, n) for n in os.listdir(folder)
                      if fnmatch.fnmatch(n, pattern) and os.path.isfile(os.path.join(folder, n)))
    prefix = join(folder, "")
    return [p for p in match(join(folder, pattern)) if "/" not in p[len(prefix):]]


def stat(path) -> tuple[int, int]:
    """(size in bytes, modification time in whole seconds) of a file."""
    if not is_remote(path):
        st = os.stat(path)
        return st.st_size, int(st.st_mtime)
    found = _fs().match([os.fspath(path)])[0].metadata_list
    if not found:
        raise FileNotFoundError(path)
    return found[0].size_in_bytes, int(found[0].last_updated_in_seconds or 0)


def open_read(path) -> BinaryIO:
    """A binary, seekable file object to read ``path`` (bytes as stored: no decompression)."""
    if is_remote(path):
        return _fs().open(os.fspath(path), compression_type=_plain())
    return open(path, "rb")


def read_bytes(path) -> bytes:
    with open_read(path) as f:
        return f.read()


def read_text(path) -> str:
    return read_bytes(path).decode("utf-8")


def makedirs(path) -> None:
    """A local folder (and its parents); nothing to do on an object store, where prefixes are implied."""
    if not is_remote(path):
        os.makedirs(path, exist_ok=True)


def delete(paths) -> None:
    """Delete files; missing ones are fine."""
    paths = [os.fspath(p) for p in paths]
    local = [p for p in paths if not is_remote(p)]
    remote = [p for p in paths if is_remote(p) and exists(p)]
    for p in local:
        try:
            os.remove(p)
        except FileNotFoundError:
            pass
    if remote:
        _fs().delete(remote)


def delete_tree(folder) -> None:
    """A folder (or every object under a prefix) and all it holds; a missing one is fine."""
    if not is_remote(folder):
        shutil.rmtree(folder, ignore_errors=True)
        return
    delete(match(join(folder, "**")))


def rename(src, dst) -> None:
    """Move a file (a copy and a delete on an object store)."""
    if is_remote(src) or is_remote(dst):
        _fs().rename([os.fspath(src)], [os.fspath(dst)])
    else:
        os.makedirs(os.path.dirname(os.fspath(dst)) or ".", exist_ok=True)
        os.replace(src, dst)


@contextmanager
def atomic_path(path):
    """A temporary local path to write to; renamed onto ``path`` when the block ends without error."""
    path = os.fspath(path)
    if is_remote(path):
        raise ValueError(f"atomic_path is for local files; write {path} with atomic_write")
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write(path, data: bytes) -> None:
    path = os.fspath(path)
    if is_remote(path):
        tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
        f = _fs().create(tmp, compression_type=_plain())
        try:
            f.write(data)
        finally:
            f.close()
        try:
            _fs().rename([tmp], [path])
        finally:
            if exists(tmp):
                delete([tmp])
        return
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def atomic_write_text(path, text: str) -> None:
    atomic_write(path, text.encode("utf-8"))


def write_table(path, table: pa.Table, row_group_rows: int | None = None, sort_by: str | None = None,
                order: pa.Array | None = None) -> None:
    """A Parquet file (zstd), written atomically. With ``sort_by`` the rows go in that column's order
    (or in ``order``, row indices), taken a row group at a time (no sorted copy of the whole table)."""
    buf = io.BytesIO()
    if sort_by is None and order is None:
        pq.write_table(table, buf, row_group_size=row_group_rows, compression="zstd")
    else:
        order = pc.sort_indices(table.column(sort_by)) if order is None else order
        step = row_group_rows or max(1, table.num_rows)
        with pq.ParquetWriter(buf, table.schema, compression="zstd") as writer:
            if table.num_rows == 0:
                writer.write_table(table)
            for start in range(0, table.num_rows, step):
                writer.write_table(table.take(order.slice(start, step)), row_group_size=step)
    atomic_write(path, buf.getvalue())


def resolve_local(root: str, relpath: str) -> Optional[str]:
    """The absolute real path of ``relpath`` under ``root``, or None when it
    resolves (through ``..`` or symlinks) outside ``root``. The file need not exist."""
    try:
        return resolve_under(os.path.realpath(root), relpath)
    except (ValueError, OSError):
        return None


def resolve_under(base: str, relpath: str) -> Optional[str]:
    try:
        target = os.path.realpath(os.path.join(base, relpath))
    except (ValueError, OSError):
        return None
    if target == base or os.path.commonpath([base, target]) != base:
        return None
    return target


class OutsideRoot(Exception):
    """The file opened lies outside the folder it must be read from."""


def _opened_path(fd: int) -> Optional[str]:
    """The real path of an open descriptor: /proc on Linux, F_GETPATH on macOS; None if unknown."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        pass
    try:
        import fcntl

        return os.fsdecode(fcntl.fcntl(fd, fcntl.F_GETPATH, b"\0" * 1024).rstrip(b"\0"))
    except (ImportError, AttributeError, OSError):
        return None


def read_under(root: str, relpath: str, max_bytes: int) -> bytes:
    """The bytes of the regular file ``relpath`` under ``root``. Open first, then check: the path of the
    file actually opened must lie inside ``root``, so a symlink swapped in between a check and the open
    cannot lead outside. Raises OutsideRoot, FileTooLarge (with the size) or OSError."""
    base = os.path.realpath(root)
    if resolve_under(base, relpath) is None:
        raise OutsideRoot(relpath)
    fd = os.open(os.path.join(base, relpath), os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO must not hang
    try:
        real = _opened_path(fd)
        if real is None:  # no way to name the descriptor: its inode must be the checked path's
            checked = resolve_under(base, relpath)
            same = checked is not None and os.path.samestat(os.fstat(fd), os.stat(checked))
        else:
            same = real != base and os.path.commonpath([base, real]) == base
        if not same:
            raise OutsideRoot(relpath)
        info = os.fstat(fd)
        if not stat_.S_ISREG(info.st_mode):
            raise OSError(f"{relpath} is not a regular file")
        if info.st_size > max_bytes:
            raise FileTooLarge(info.st_size)
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(max_bytes + 1)[: max_bytes + 1]
    finally:
        os.close(fd)


class FileTooLarge(Exception):
    """A local file above the byte cap; ``args[0]`` is its size."""


def write_run_count(out: str, name: str, field: str, total: int) -> str:
    """A run-internal count beside the outputs (``name``, JSON ``{field: total}``), for the launcher."""
    path = join(out, name)
    atomic_write(path, json.dumps({field: int(total)}).encode())
    return path


def take_run_count(out: str, name: str, field: str) -> Optional[int]:
    """The count ``write_run_count`` left, or None when there is none; the file is removed either way."""
    path = join(out, name)
    if not exists(path):
        return None
    total = int(json.loads(read_bytes(path))[field])
    delete([path])
    return total
