"""Reading an output folder for the report: stats.json, the kept rows (Parquet), the rejects with
example thumbnails, and kept thumbnails from the tar shards; nothing here draws or writes HTML."""
from __future__ import annotations

import base64
import io
import json
import os
import tarfile
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image

from clipcurate.pipeline import files as fs
from clipcurate.pipeline.inspect.stats import kept_files, reject_files
from clipcurate.schemas.reasons import FUNNEL

REPORT_NAME = "report.html"

STAGE_ORDER = FUNNEL  # the order rows pass the stages in

_KEPT_COLUMNS = ("key", "caption", "similarity", "language", "original_width", "original_height",
                 "width", "height", "textness")
_REJECT_COLUMNS = _KEPT_COLUMNS + ("url", "stage", "reason", "error_message")
_IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")

@dataclass(frozen=True)
class ReportConfig:
    kept_thumbnails: int = 48          # evenly spread over the kept samples in key order
    borderline_thumbnails: int = 16    # kept samples with the lowest similarity
    rejected_per_reason: int = 8       # examples per reject reason (with thumbnails first)
    thumbnail_px: int = 96             # longest side of an inline thumbnail
    thumbnail_quality: int = 75
    histogram_bins: int = 30
    max_bars: int = 24                 # bars in a bar chart; the rest are summed as "other"
    caption_chars: int = 300           # captions are cut to this many characters


@dataclass(frozen=True)
class RunData:
    """What the report shows, read from an output folder."""
    stats: dict
    kept: pa.Table                     # _KEPT_COLUMNS + _shard (tar path)
    rejects: pa.Table                  # _REJECT_COLUMNS + _has_thumb
    reject_examples: dict              # reason -> list of row dicts (with "thumbnail" bytes or None)
    sizes_total: int | None            # sum of shards/sizes.json


def _concat(tables: list[pa.Table], columns: tuple, extra: dict[str, pa.DataType]) -> pa.Table:
    """One table with exactly ``columns`` + ``extra`` (missing ones as nulls)."""
    wanted = list(columns) + list(extra)
    out = []
    for t in tables:
        arrays = []
        for name in wanted:
            if name in t.column_names:
                arrays.append(t.column(name).combine_chunks())
            else:
                arrays.append(pa.nulls(t.num_rows, extra.get(name, _default_type(name))))
        out.append(pa.table(arrays, names=wanted))
    if not out:
        return pa.table([pa.array([], extra.get(n, _default_type(n))) for n in wanted], names=wanted)
    return pa.concat_tables(out, promote_options="permissive")


def _default_type(name: str) -> pa.DataType:
    if name in ("similarity", "textness"):
        return pa.float32()
    if name in ("width", "height", "original_width", "original_height"):
        return pa.int32()
    return pa.string()


def _present(f, names: tuple) -> list[str]:
    schema = pq.read_schema(f)
    return [n for n in names if n in schema.names]


def _read_columns(path: str, names: tuple) -> pa.Table:
    with fs.open_read(path) as f:
        columns = _present(f, names)
        f.seek(0)
        return pq.read_table(f, columns=columns)


def load_kept(out_dir: str) -> pa.Table:
    tables = []
    for path in kept_files(out_dir):
        t = _read_columns(path, _KEPT_COLUMNS)
        tar = os.path.splitext(path)[0] + ".tar"
        tables.append(t.append_column("_shard", pa.array([tar] * t.num_rows, pa.string())))
    return _concat(tables, _KEPT_COLUMNS, {"_shard": pa.string()})


def _reason_column(table: pa.Table) -> pa.Array:
    return pc.fill_null(table.column("reason").combine_chunks().cast(pa.string()), "unknown")


def _take_thumbnail_examples(table: pa.Table, examples: dict, per_reason: int) -> None:
    """Add rows that carry a thumbnail to ``examples``, up to ``per_reason`` per reason."""
    with_thumb = table.filter(pc.is_valid(table.column("thumbnail")))
    if with_thumb.num_rows == 0 or "reason" not in with_thumb.column_names:
        return
    reasons = _reason_column(with_thumb)
    for reason in pc.unique(reasons).to_pylist():
        need = per_reason - len(examples.get(reason, []))
        if need > 0:
            rows = with_thumb.filter(pc.equal(reasons, reason)).slice(0, need).to_pylist()
            examples.setdefault(reason, []).extend(rows)


def _fill_examples(table: pa.Table, examples: dict, per_reason: int) -> None:
    """Top up ``examples`` with rows that have no thumbnail."""
    if table.num_rows == 0:
        return
    without = table.filter(pc.invert(table.column("_has_thumb")))
    reasons = _reason_column(without)
    for reason in pc.unique(reasons).to_pylist():
        need = per_reason - len(examples.get(reason, []))
        if need > 0:
            rows = without.filter(pc.equal(reasons, reason)).slice(0, need).to_pylist()
            examples.setdefault(reason, []).extend(dict(r, thumbnail=None) for r in rows)


def load_rejects(out_dir: str, per_reason: int) -> tuple[pa.Table, dict]:
    """The rejects table (no thumbnails) and up to ``per_reason`` example rows per reason."""
    tables, examples = [], {}
    for path in reject_files(out_dir):
        t = _read_columns(path, _REJECT_COLUMNS + ("thumbnail",))
        if "thumbnail" in t.column_names:
            _take_thumbnail_examples(t, examples, per_reason)
            has_thumb = pc.is_valid(t.column("thumbnail"))
            t = t.drop_columns(["thumbnail"])
        else:
            has_thumb = pa.array([False] * t.num_rows, pa.bool_())
        tables.append(t.append_column("_has_thumb", has_thumb))
    table = _concat(tables, _REJECT_COLUMNS, {"_has_thumb": pa.bool_()})
    _fill_examples(table, examples, per_reason)
    return table, examples


def _read_json(path: str):
    if not fs.exists(path):
        return None
    return json.loads(fs.read_bytes(path))


def load_run(out_dir: str, config: ReportConfig) -> RunData:
    stats = _read_json(fs.join(out_dir, "stats.json")) or {}
    sizes = _read_json(fs.join(out_dir, "shards", "sizes.json"))
    rejects, examples = load_rejects(out_dir, config.rejected_per_reason)
    return RunData(stats=stats if isinstance(stats, dict) else {}, kept=load_kept(out_dir), rejects=rejects,
                   reject_examples=examples,
                   sizes_total=int(sum(sizes.values())) if isinstance(sizes, dict) else None)


# ---------------------------------------------------------------- thumbnails

def thumbnail_uri(data: bytes | None, config: ReportConfig) -> str | None:
    """A small JPEG ``data:`` URI of an image, or None if the bytes are not a readable image."""
    if not data:
        return None
    px = config.thumbnail_px
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.draft("RGB", (px, px))
            small = im.convert("RGB")
            small.thumbnail((px, px))
            buf = io.BytesIO()
            small.save(buf, "JPEG", quality=config.thumbnail_quality)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def read_parquet_images(parquet_path: str, keys: set[str]) -> dict[str, bytes]:
    """The image bytes of ``keys`` from a Parquet shard's ``image`` column (``--output-format parquet``)."""
    if not keys or not fs.exists(parquet_path):
        return {}
    with fs.open_read(parquet_path) as f:
        if "image" not in pq.ParquetFile(f).schema_arrow.names:
            return {}
        f.seek(0)
        table = pq.read_table(f, columns=["key", "image"], filters=[("key", "in", sorted(keys))])
    return {k: img["bytes"] for k, img in zip(table.column("key").to_pylist(), table.column("image").to_pylist())
            if img and img.get("bytes") is not None}


def read_tar_images(tar_path: str, keys: set[str]) -> dict[str, bytes]:
    """The image bytes of ``keys`` from a WebDataset tar (missing keys are left out); a shard written
    without a tar (``--output-format parquet``) is read from its Parquet file's image column."""
    found: dict[str, bytes] = {}
    if not keys:
        return found
    if not fs.exists(tar_path):
        return read_parquet_images(os.path.splitext(tar_path)[0] + ".parquet", keys)
    with fs.open_read(tar_path) as f, tarfile.open(fileobj=f, mode="r:") as tar:
        for member in tar:
            if not member.isfile():
                continue
            stem, _, ext = os.path.basename(member.name).rpartition(".")
            if ext.lower() in _IMAGE_EXTENSIONS and stem in keys and stem not in found:
                found[stem] = tar.extractfile(member).read()
                if len(found) == len(keys):
                    break
    return found


def kept_thumbnails(rows: list[dict], config: ReportConfig) -> list[dict]:
    """``rows`` (with key and _shard) with a ``uri`` added, read from their tars."""
    by_tar: dict[str, set] = {}
    for r in rows:
        if r.get("key"):
            by_tar.setdefault(r["_shard"], set()).add(r["key"])
    images: dict[tuple, bytes] = {}
    for tar_path, keys in sorted(by_tar.items()):
        for key, data in read_tar_images(tar_path, keys).items():
            images[(tar_path, key)] = data
    return [dict(r, uri=thumbnail_uri(images.get((r["_shard"], r.get("key"))), config)) for r in rows]
