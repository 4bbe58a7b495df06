"""The download stage's saved work units: OUT/_work/download/NNNNN.parquet, one file per unit.

A unit file holds what each fetch gave, per (url, local path): the image and its facts, or the
reason it failed. It is Parquet, so a file in OUT/_work can never run code when it is read back
(a pickle could). A rerun looks every row of a unit up by its url and local path: a row found
takes the saved result (its own caption, language and columns stay those of this run), a row not
found is fetched. So options that act after the download (selection, dedup, image filters) rerun
from the saved images without a request, and a row set changed upstream fetches only the new rows
of each unit. Internal errors are not saved: they are tried again.
"""
from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq

from clipcurate.filters.base import reject_row
from clipcurate.pipeline import files as fs

IMAGE_FIELDS = ("sha256", "md5", "width", "height", "original_width", "original_height")
UNIT_SCHEMA = pa.schema([
    pa.field("url", pa.string()), pa.field("local_path", pa.string()), pa.field("ok", pa.bool_()),
    pa.field("image", pa.binary()), pa.field("sha256", pa.string()), pa.field("md5", pa.string()),
    pa.field("width", pa.int32()), pa.field("height", pa.int32()),
    pa.field("original_width", pa.int32()), pa.field("original_height", pa.int32()),
    pa.field("reason", pa.string()), pa.field("error_message", pa.string()),
])


def fetch_key(row: dict) -> tuple[str, str]:
    """What a fetch depends on: the URL, or the local file of a labelled row."""
    return str(row.get("url") or ""), str(row.get("local_path") or "")


def unit_path(work_dir: str, unit: int) -> str:
    return fs.join(work_dir, f"{unit:05d}.parquet")


def sample_row(row: dict, image: bytes, facts: dict) -> dict:
    """The kept row: the input row (without its local-file fields) with the image and its facts."""
    out = {k: v for k, v in row.items() if k not in ("local_path", "invalid_path")}
    out.update(image=image, **{k: facts[k] for k in IMAGE_FIELDS})
    return out


def load_unit(path: str) -> dict[tuple[str, str], dict]:
    """fetch_key -> saved result of a unit file; empty when there is none or it cannot be read."""
    if not fs.exists(path):
        return {}
    try:
        table = pq.read_table(io.BytesIO(fs.read_bytes(path)))
    except (OSError, pa.ArrowException, ValueError):
        return {}  # a torn or foreign file: the unit is fetched again
    return {(r["url"] or "", r["local_path"] or ""): r for r in table.to_pylist()}


def result_from(saved: dict, row: dict) -> tuple[bool, dict]:
    """A saved result applied to this run's row: (True, sample) or (False, reject)."""
    if saved["ok"]:
        return True, sample_row(row, saved["image"], saved)
    return False, reject_row(row, saved["reason"], saved["error_message"] or "")


def save_unit(path: str, rows: list, results: list) -> None:
    """Write a unit's results (internal errors left out), atomically."""
    records = []
    for row, (ok, out) in zip(rows, results):
        url, local = fetch_key(row)
        if ok:
            records.append({"url": url, "local_path": local, "ok": True, "image": out["image"],
                            **{k: out.get(k) for k in IMAGE_FIELDS}})
        elif out.get("reason") != "internal_error":
            records.append({"url": url, "local_path": local, "ok": False, "reason": out.get("reason"),
                            "error_message": out.get("error_message")})
    table = pa.Table.from_pylist(records, schema=UNIT_SCHEMA)
    fs.write_table(path, table)
