"""Reading an output folder for the report: stats.json, counts, histogram counts, language counts,
the kept rows shown (spread evenly, lowest similarity) and the rejects' example rows; nothing here
draws or writes HTML.

Memory is bounded by one output file: the kept and the rejects Parquet files are read one after
the other, a batch at a time and only the columns needed, and what the page shows is accumulated
from them (in two passes: the finite min and max of each histogram's values, then the counts on the
shared bins), never held for the whole output. Kept thumbnails come from the tar shards."""
from __future__ import annotations

import base64
import io
import json
import math
import os
import tarfile
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image

from clipcurate.pipeline import files as fs
from clipcurate.pipeline.inspect.report.charts import finite_range, histogram_edges
from clipcurate.pipeline.inspect.stats import kept_files, reject_files
from clipcurate.schemas.reasons import FUNNEL

REPORT_NAME = "report.html"

STAGE_ORDER = FUNNEL  # the order rows pass the stages in

_KEPT_COLUMNS = ("key", "caption", "similarity", "language", "original_width", "original_height",
                 "width", "height", "textness")
_REJECT_COLUMNS = _KEPT_COLUMNS + ("url", "stage", "reason", "error_message")
_SHOWN_KEPT_COLUMNS = ("key", "caption", "similarity")  # + _shard: a kept tile
_NUMBER_COLUMNS = ("similarity", "original_width", "original_height", "width", "height", "textness")
_IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
_BATCH_ROWS = 65_536  # rows read at a time from one Parquet file

HISTOGRAMS = ("similarity", "size", "textness")  # the histograms' values: see _histogram_values
SERIES = ("kept", "rejected")


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
class Histogram:
    edges: np.ndarray | None           # shared by the series; None: no finite value at all
    counts: dict                       # series -> counts per bin


@dataclass(frozen=True)
class RunData:
    """What the report shows, accumulated from an output folder."""
    stats: dict
    kept_rows: int                     # rows in the kept Parquet files
    rejected_rows: int                 # rows in the rejects files
    reject_groups: list                # (stage, reason, rows) counted in the rejects files, first seen first
    histograms: dict                   # HISTOGRAMS name -> Histogram
    languages: dict                    # series -> {language: rows}
    kept_even: list                    # row dicts (key, caption, similarity, _shard), spread evenly
    kept_lowest: list                  # the same for the lowest similarities kept, lowest first
    reject_examples: dict              # reason -> list of row dicts (with "thumbnail" bytes or None)
    sizes_total: int | None            # sum of shards/sizes.json


# ---------------------------------------------------------------- reading

def _present(f, names: tuple) -> list[str]:
    schema = pq.read_schema(f)
    return [n for n in names if n in schema.names]


def _batches(path: str, names: tuple):
    """The columns ``names`` that ``path`` has, as tables of at most _BATCH_ROWS rows, in row order."""
    with fs.open_read(path) as f:
        columns = _present(f, names)
        f.seek(0)
        for batch in pq.ParquetFile(f).iter_batches(batch_size=_BATCH_ROWS, columns=columns):
            yield pa.Table.from_batches([batch])


def _num_rows(path: str) -> int:
    with fs.open_read(path) as f:
        return pq.ParquetFile(f).metadata.num_rows


def _shard_of(path: str) -> str:
    """The tar holding the images of a kept Parquet file's rows."""
    return os.path.splitext(path)[0] + ".tar"


def _column(table: pa.Table, name: str, kind: pa.DataType) -> pa.ChunkedArray:
    """Column ``name`` cast to ``kind``; all null where the file has no such column."""
    if name in table.column_names:
        return table.column(name).cast(kind)
    return pa.chunked_array([pa.nulls(table.num_rows, kind)])


def _rows(table: pa.Table, names: tuple) -> list[dict]:
    """The rows of ``table`` as dicts with exactly ``names`` (None where the file has no such column)."""
    columns = {n: table.column(n).to_pylist() if n in table.column_names else [None] * table.num_rows
               for n in names}
    return [{n: columns[n][i] for n in names} for i in range(table.num_rows)]


# ---------------------------------------------------------------- numbers

def _floats(table: pa.Table, name: str) -> np.ndarray:
    arr = _column(table, name, pa.float64()).combine_chunks().to_numpy(zero_copy_only=False)
    return arr[np.isfinite(arr)]


def _shorter_side(table: pa.Table) -> np.ndarray:
    """fmin(coalesce(original_width, width), coalesce(original_height, height)), where finite."""
    def side(name: str, fallback: str) -> np.ndarray:
        col = pc.coalesce(_column(table, name, pa.float64()), _column(table, fallback, pa.float64()))
        return col.combine_chunks().to_numpy(zero_copy_only=False).astype(float)
    shorter = np.fmin(side("original_width", "width"), side("original_height", "height"))
    return shorter[np.isfinite(shorter)]


def _histogram_values(table: pa.Table, name: str) -> np.ndarray:
    return _shorter_side(table) if name == "size" else _floats(table, name)


def _merge_range(a: tuple | None, b: tuple | None) -> tuple | None:
    if a is None or b is None:
        return a if b is None else b
    return min(a[0], b[0]), max(a[1], b[1])


def _value_counts(table: pa.Table, name: str, counts: dict) -> None:
    """Add the counts of the non-null values of a column to ``counts``."""
    col = _column(table, name, pa.string()).combine_chunks().drop_null()
    for v in (pc.value_counts(col).to_pylist() if len(col) else []):
        counts[v["values"]] = counts.get(v["values"], 0) + v["counts"]


def _count_groups(table: pa.Table, groups: dict) -> None:
    """Add the rows per (stage, reason) of a rejects batch to ``groups``."""
    pairs = pa.table({"stage": pc.fill_null(_column(table, "stage", pa.string()), "unknown"),
                      "reason": pc.fill_null(_column(table, "reason", pa.string()), "unknown")})
    grouped = pairs.group_by(["stage", "reason"]).aggregate([([], "count_all")])
    for r in grouped.to_pylist():
        groups[(r["stage"], r["reason"])] = groups.get((r["stage"], r["reason"]), 0) + r["count_all"]


def selection(stats: dict) -> tuple[str | None, float | None]:
    """The selection method and threshold recorded in stats.json."""
    sel = stats.get("selection") or {}
    if not isinstance(sel, dict):
        return None, None
    threshold = sel.get("threshold")
    try:
        threshold = float(threshold) if threshold is not None else None
    except (TypeError, ValueError):
        threshold = None
    return sel.get("method"), threshold


def _edges(name: str, value_range: tuple | None, stats: dict, config: ReportConfig) -> np.ndarray | None:
    """The bins page.distributions_section draws histogram ``name`` on."""
    marker = selection(stats)[1] if name == "similarity" else None
    return histogram_edges(value_range, config.histogram_bins, name == "size", marker)


# ---------------------------------------------------------------- kept rows shown

def pick_even(n_rows: int, n: int) -> list[int]:
    """Up to ``n`` row numbers spread evenly over ``n_rows`` rows, ascending."""
    if n_rows == 0 or n <= 0:
        return []
    return sorted(set(np.linspace(0, n_rows - 1, min(n, n_rows)).round().astype(int).tolist()))


def _shown_rows(table: pa.Table, local: list[int], shard: str) -> list[dict]:
    """Rows ``local`` of a kept batch as tile dicts (key, caption, similarity, _shard)."""
    picked = table.take(pa.array(local, pa.int64()))
    return [dict(r, _shard=shard) for r in _rows(picked, _SHOWN_KEPT_COLUMNS)]


def _lowest_candidates(table: pa.Table, offset: int, k: int, shard: str) -> list[tuple]:
    """The ``k`` lowest non-null similarities of a kept batch as (sort key, row dict); the sort key
    orders as Arrow's stable ascending sort of the whole output does (NaN after numbers, then row)."""
    sims = _column(table, "similarity", pa.float64()).combine_chunks()
    n = min(k, len(sims) - sims.null_count)
    if n <= 0:
        return []
    local = pc.array_sort_indices(sims, order="ascending", null_placement="at_end").slice(0, n).to_pylist()
    values = sims.take(pa.array(local, pa.int64())).to_pylist()
    keys = [(math.isnan(v), 0.0 if math.isnan(v) else v, offset + i) for v, i in zip(values, local)]
    return list(zip(keys, _shown_rows(table, local, shard)))


# ---------------------------------------------------------------- reject examples

def _reasons(table: pa.Table) -> pa.Array:
    return pc.fill_null(_column(table, "reason", pa.string()).combine_chunks(), "unknown")


def _has_thumbnail(table: pa.Table) -> pa.Array:
    if "thumbnail" not in table.column_names:
        return pa.repeat(pa.scalar(False), table.num_rows)
    return pc.is_valid(table.column("thumbnail")).combine_chunks()


def _take_thumbnail_examples(table: pa.Table, examples: dict, per_reason: int) -> None:
    """Add rows that carry a thumbnail to ``examples``, up to ``per_reason`` per reason."""
    if "thumbnail" not in table.column_names:
        return
    with_thumb = table.filter(pc.is_valid(table.column("thumbnail")))
    if with_thumb.num_rows == 0 or "reason" not in with_thumb.column_names:
        return
    reasons = _reasons(with_thumb)
    for reason in pc.unique(reasons).to_pylist():
        need = per_reason - len(examples.get(reason, []))
        if need > 0:
            rows = with_thumb.filter(pc.equal(reasons, reason)).slice(0, need).to_pylist()
            examples.setdefault(reason, []).extend(rows)


def _take_plain_candidates(table: pa.Table, plain: dict, per_reason: int) -> None:
    """Add rows without a thumbnail to ``plain``, up to ``per_reason`` per reason: the first ones of
    the output, that top up the examples once every file has been searched for thumbnails."""
    without = table.filter(pc.invert(_has_thumbnail(table)))
    if without.num_rows == 0:
        return
    reasons = _reasons(without)
    for reason in pc.unique(reasons).to_pylist():
        need = per_reason - len(plain.get(reason, []))
        if need > 0:
            rows = _rows(without.filter(pc.equal(reasons, reason)).slice(0, need), _REJECT_COLUMNS)
            plain.setdefault(reason, []).extend(dict(r, _has_thumb=False, thumbnail=None) for r in rows)


def _fill_examples(examples: dict, plain: dict, per_reason: int) -> None:
    """Top up ``examples`` with the first rows that have no thumbnail."""
    for reason, rows in plain.items():
        need = per_reason - len(examples.get(reason, []))
        if need > 0:
            examples.setdefault(reason, []).extend(rows[:need])


# ---------------------------------------------------------------- the two passes

@dataclass
class _Tally:
    """What the passes over the files accumulate."""
    kept_rows: int = 0
    rejected_rows: int = 0
    groups: dict = field(default_factory=dict)
    ranges: dict = field(default_factory=dict)      # (histogram, series) -> finite (min, max)
    counts: dict = field(default_factory=dict)      # (histogram, series) -> counts per bin
    languages: dict = field(default_factory=lambda: {s: {} for s in SERIES})
    kept_even: list = field(default_factory=list)
    lowest: list = field(default_factory=list)      # (sort key, row dict), at most borderline_thumbnails
    examples: dict = field(default_factory=dict)
    plain: dict = field(default_factory=dict)


def _add_ranges(table: pa.Table, series: str, tally: _Tally) -> None:
    for name in HISTOGRAMS:
        key = (name, series)
        tally.ranges[key] = _merge_range(tally.ranges.get(key), finite_range(_histogram_values(table, name)))


def _add_counts(table: pa.Table, series: str, edges: dict, tally: _Tally) -> None:
    for name in HISTOGRAMS:
        if edges[name] is not None:
            tally.counts[(name, series)] = tally.counts[(name, series)] + np.histogram(
                _histogram_values(table, name), edges[name])[0]


def _take_shown(table: pa.Table, offset: int, even: list[int], shard: str, k: int, tally: _Tally) -> None:
    """Keep the rows of a kept batch (its first row is row ``offset`` of the output) that are picked
    evenly, and those among the ``k`` lowest similarities so far."""
    local = [i - offset for i in even if offset <= i < offset + table.num_rows]
    if local:
        tally.kept_even.extend(_shown_rows(table, local, shard))
    if k > 0:
        candidates = tally.lowest + _lowest_candidates(table, offset, k, shard)
        tally.lowest = sorted(candidates, key=lambda c: c[0])[:k]


def _scan_kept(out_dir: str, config: ReportConfig, tally: _Tally) -> None:
    """Pass 1 over the kept files: rows, value ranges, languages and the rows shown."""
    paths = kept_files(out_dir)
    even = pick_even(sum(_num_rows(p) for p in paths), config.kept_thumbnails)  # rows counted in the footers
    for path in paths:
        for table in _batches(path, _KEPT_COLUMNS):
            _add_ranges(table, "kept", tally)
            _value_counts(table, "language", tally.languages["kept"])
            _take_shown(table, tally.kept_rows, even, _shard_of(path), config.borderline_thumbnails, tally)
            tally.kept_rows += table.num_rows


def _scan_rejects(out_dir: str, config: ReportConfig, tally: _Tally) -> None:
    """Pass 1 over the rejects files: rows, (stage, reason) counts, value ranges, languages, examples."""
    per_reason = config.rejected_per_reason
    for path in reject_files(out_dir):
        for table in _batches(path, _REJECT_COLUMNS + ("thumbnail",)):
            tally.rejected_rows += table.num_rows
            _count_groups(table, tally.groups)
            _add_ranges(table, "rejected", tally)
            _value_counts(table, "language", tally.languages["rejected"])
            _take_thumbnail_examples(table, tally.examples, per_reason)
            _take_plain_candidates(table, tally.plain, per_reason)
    _fill_examples(tally.examples, tally.plain, per_reason)


def _count_bins(out_dir: str, edges: dict, tally: _Tally) -> None:
    """Pass 2: the histograms' counts on their shared bins, summed file by file."""
    for name in HISTOGRAMS:
        for series in SERIES:
            tally.counts[(name, series)] = np.zeros(0 if edges[name] is None else len(edges[name]) - 1, np.int64)
    for series, paths in (("kept", kept_files(out_dir)), ("rejected", reject_files(out_dir))):
        for path in paths:
            for table in _batches(path, _NUMBER_COLUMNS):
                _add_counts(table, series, edges, tally)


def _histograms(out_dir: str, stats: dict, config: ReportConfig, tally: _Tally) -> dict:
    edges = {name: _edges(name, _merge_range(tally.ranges.get((name, "kept")), tally.ranges.get((name, "rejected"))),
                          stats, config) for name in HISTOGRAMS}
    _count_bins(out_dir, edges, tally)
    return {name: Histogram(edges[name], {s: tally.counts[(name, s)] for s in SERIES}) for name in HISTOGRAMS}


def _read_json(path: str):
    if not fs.exists(path):
        return None
    return json.loads(fs.read_bytes(path))


def load_run(out_dir: str, config: ReportConfig) -> RunData:
    stats = _read_json(fs.join(out_dir, "stats.json")) or {}
    stats = stats if isinstance(stats, dict) else {}
    sizes = _read_json(fs.join(out_dir, "shards", "sizes.json"))
    tally = _Tally()
    _scan_rejects(out_dir, config, tally)
    _scan_kept(out_dir, config, tally)
    return RunData(stats=stats, kept_rows=tally.kept_rows, rejected_rows=tally.rejected_rows,
                   reject_groups=[(s, r, n) for (s, r), n in tally.groups.items()],
                   histograms=_histograms(out_dir, stats, config, tally), languages=tally.languages,
                   kept_even=tally.kept_even, kept_lowest=[row for _, row in tally.lowest],
                   reject_examples=tally.examples,
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
