"""Local files: atomic writes (a temporary name beside the target, then a rename) and the
containment check for files read from inside a root folder (labelled images).

A killed process leaves either the old file or the new one, never half of one.
Light on imports (no Beam, no torch), so every module can use it.
"""
from __future__ import annotations

import io
import os
import uuid
from contextlib import contextmanager
from typing import Optional

import pyarrow as pa
import pyarrow.parquet as pq


@contextmanager
def atomic_path(path):
    """A temporary path to write to; renamed onto ``path`` when the block ends without error."""
    path = os.fspath(path)
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write(path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def atomic_write_text(path, text: str) -> None:
    atomic_write(path, text.encode("utf-8"))


def write_table(path, table: pa.Table, row_group_rows: int | None = None) -> None:
    """A Parquet file (zstd), written atomically."""
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=row_group_rows, compression="zstd")
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
