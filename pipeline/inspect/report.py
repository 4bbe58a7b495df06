"""report.html: one self-contained page showing a run at a glance.

Headline counts, the funnel, histograms (similarity with the threshold,
image sizes, textness), languages, and thumbnail grids of kept and rejected
samples. Everything is inline: charts are SVG drawn here, thumbnails are
``data:`` URIs, and a Content-Security-Policy forbids the page to load
anything at all. All text from the data is HTML-escaped.
"""
from __future__ import annotations

import base64
import glob
import html
import io
import json
import math
import os
import tarfile
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image

from clipcurate.pipeline.files import atomic_write_text  # noqa: E402
from clipcurate.schemas.reasons import FUNNEL  # noqa: E402

REPORT_NAME = "report.html"

STAGE_ORDER = FUNNEL  # the order rows pass the stages in

_KEPT_COLUMNS = ("key", "caption", "similarity", "language", "original_width", "original_height",
                 "width", "height", "textness")
_REJECT_COLUMNS = _KEPT_COLUMNS + ("url", "stage", "reason", "error_message")
_IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")

KEPT_COLOUR = "#2b7bba"
REJECTED_COLOUR = "#e8743b"
MARKER_COLOUR = "#c0392b"


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


# ---------------------------------------------------------------- reading

@dataclass(frozen=True)
class RunData:
    """What the report shows, read from an output folder."""
    stats: dict
    kept: pa.Table                     # _KEPT_COLUMNS + _shard (tar path)
    rejects: pa.Table                  # _REJECT_COLUMNS + _has_thumb
    reject_examples: dict              # reason -> list of row dicts (with "thumbnail" bytes or None)
    sizes_total: int | None            # sum of shards/sizes.json


def _esc(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


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


def _present(path: str, names: tuple) -> list[str]:
    schema = pq.read_schema(path)
    return [n for n in names if n in schema.names]


def load_kept(out_dir: str) -> pa.Table:
    tables = []
    for path in sorted(glob.glob(os.path.join(out_dir, "shards", "*.parquet"))):
        t = pq.read_table(path, columns=_present(path, _KEPT_COLUMNS))
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
    for path in sorted(glob.glob(os.path.join(out_dir, "rejects", "*.parquet"))):
        t = pq.read_table(path, columns=_present(path, _REJECT_COLUMNS + ("thumbnail",)))
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
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def load_run(out_dir: str, config: ReportConfig) -> RunData:
    stats = _read_json(os.path.join(out_dir, "stats.json")) or {}
    sizes = _read_json(os.path.join(out_dir, "shards", "sizes.json"))
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


def read_tar_images(tar_path: str, keys: set[str]) -> dict[str, bytes]:
    """The image bytes of ``keys`` from a WebDataset tar (missing keys are left out)."""
    found: dict[str, bytes] = {}
    if not keys or not os.path.exists(tar_path):
        return found
    with tarfile.open(tar_path, "r:") as tar:
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


# ---------------------------------------------------------------- SVG charts

_CHART_WIDTH = 540


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if value != 0 and (abs(value) >= 10000 or abs(value) < 0.01):
            return f"{value:.3g}"
        return f"{value:.3f}".rstrip("0").rstrip(".") if not value.is_integer() else f"{int(value):,}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _tick(value: float) -> str:
    """An axis label: three significant figures, no exponent below 10^5."""
    if value == 0 or 1e-3 <= abs(value) < 1e5:
        text = f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
        return text
    return f"{value:.2e}"


def _figure(svg_body: str, height: int, title: str, caption: str) -> str:
    return (f'<figure><svg class="chart" viewBox="0 0 {_CHART_WIDTH} {height}" width="{_CHART_WIDTH}" '
            f'height="{height}" role="img" aria-label="{_esc(title)}"><title>{_esc(title)}</title>'
            f'{svg_body}</svg><figcaption><b>{_esc(title)}</b> {_esc(caption)}</figcaption></figure>')


def no_data_chart(title: str, caption: str = "") -> str:
    body = (f'<rect x="0" y="0" width="{_CHART_WIDTH}" height="60" fill="#f6f6f6"/>'
            f'<text x="{_CHART_WIDTH // 2}" y="35" text-anchor="middle" class="muted">no data</text>')
    return _figure(body, 60, title, caption or "no data")


def _legend(series: list[tuple[str, str]], x: float, y: float) -> str:
    parts = []
    for name, colour in series:
        parts.append(f'<rect x="{x:.1f}" y="{y - 9:.1f}" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{x + 14:.1f}" y="{y:.1f}">{_esc(name)}</text>')
        x += 24 + 7 * len(name)
    return "".join(parts)


def bar_chart(title: str, rows: list[tuple[str, list[float]]], series: list[tuple[str, str]],
              caption: str = "", max_bars: int = 24) -> str:
    """Horizontal stacked bars: one row per label, one segment per series (name, colour)."""
    rows = [(label, [float(v or 0) for v in values]) for label, values in rows]
    if not rows or not any(sum(v) for _, v in rows):
        return no_data_chart(title, caption)
    if len(rows) > max_bars:
        rest = rows[max_bars - 1:]
        other = [sum(v[i] for _, v in rest) for i in range(len(series))]
        rows = rows[:max_bars - 1] + [(f"other ({len(rest)})", other)]
    label_w, right_pad, bar_h, gap, top = 170, 70, 16, 5, 28
    height = top + len(rows) * (bar_h + gap) + 10
    total_max = max(sum(v) for _, v in rows)
    scale = (_CHART_WIDTH - label_w - right_pad) / total_max
    parts = [_legend(series, label_w, 16)] if len(series) > 1 else []
    for i, (label, values) in enumerate(rows):
        y = top + i * (bar_h + gap)
        short = label if len(label) <= 28 else label[:27] + "\u2026"
        parts.append(f'<text x="{label_w - 6}" y="{y + bar_h - 4}" text-anchor="end">'
                     f'<title>{_esc(label)}</title>{_esc(short)}</text>')
        x = float(label_w)
        for value, (name, colour) in zip(values, series):
            w = value * scale
            if w > 0:
                parts.append(f'<rect x="{x:.1f}" y="{y}" width="{max(w, 1):.1f}" height="{bar_h}" fill="{colour}">'
                             f'<title>{_esc(label)}: {_esc(name)} {_esc(_fmt(value))}</title></rect>')
            x += w
        text = " / ".join(_fmt(int(v) if float(v).is_integer() else v) for v in values)
        parts.append(f'<text x="{x + 5:.1f}" y="{y + bar_h - 4}">{_esc(text)}</text>')
    return _figure("".join(parts), height, title, caption)


def _edges(values: list[np.ndarray], bins: int, log: bool, marker: float | None) -> np.ndarray | None:
    finite = [v[np.isfinite(v)] for v in values]
    allv = np.concatenate(finite) if finite else np.array([])
    if allv.size == 0:
        return None
    lo, hi = float(allv.min()), float(allv.max())
    if marker is not None and math.isfinite(marker):
        lo, hi = min(lo, marker), max(hi, marker)
    if log and lo > 0 and hi / lo > 20:
        return np.geomspace(lo, hi * 1.0001, bins + 1)
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, bins + 1)


def histogram_chart(title: str, series: list[tuple[str, str, np.ndarray]], caption: str = "",
                    bins: int = 30, marker: tuple[float, str] | None = None, log_x: bool = False,
                    x_label: str = "") -> str:
    """Overlaid histograms (name, colour, values) on shared bins, with an optional vertical marker."""
    marker_value = marker[0] if marker and marker[0] is not None else None
    edges = _edges([np.asarray(v, dtype=float) for _, _, v in series], bins, log_x, marker_value)
    if edges is None:
        return no_data_chart(title, caption)
    counts = [np.histogram(np.asarray(v, dtype=float)[np.isfinite(np.asarray(v, dtype=float))], edges)[0]
              for _, _, v in series]
    left, right, top, bottom = 50, 15, 28, 36
    height = 230
    plot_w, plot_h = _CHART_WIDTH - left - right, height - top - bottom
    ymax = max(int(c.max()) for c in counts) or 1
    n = len(edges) - 1
    bar_w = plot_w / n
    logs = log_x and edges[0] > 0 and not np.allclose(np.diff(edges), edges[1] - edges[0])

    def x_of(value: float) -> float:
        if logs:
            pos = (math.log(value) - math.log(edges[0])) / (math.log(edges[-1]) - math.log(edges[0]))
        else:
            pos = (value - edges[0]) / (edges[-1] - edges[0])
        return left + pos * plot_w

    parts = [_legend([(name, colour) for name, colour, _ in series], left, 16),
             f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#999"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#999"/>',
             f'<text x="{left - 4}" y="{top + 8}" text-anchor="end">{ymax:,}</text>',
             f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end">0</text>']
    for (name, colour, _), c in zip(series, counts):
        for i, count in enumerate(c):
            if count:
                h = plot_h * count / ymax
                parts.append(f'<rect x="{left + i * bar_w:.1f}" y="{top + plot_h - h:.1f}" '
                             f'width="{max(bar_w - 1, 1):.1f}" height="{h:.1f}" fill="{colour}" fill-opacity="0.6">'
                             f'<title>{_esc(name)}: {count:,} in [{_esc(_fmt(float(edges[i])))}, '
                             f'{_esc(_fmt(float(edges[i + 1])))})</title></rect>')
    for i in np.linspace(0, n, 6).round().astype(int):
        x = left + i * bar_w
        parts.append(f'<line x1="{x:.1f}" y1="{top + plot_h}" x2="{x:.1f}" y2="{top + plot_h + 4}" stroke="#999"/>'
                     f'<text x="{x:.1f}" y="{top + plot_h + 15}" text-anchor="middle">'
                     f'{_esc(_tick(float(edges[i])))}</text>')
    if x_label:
        parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 4}" text-anchor="middle" class="muted">'
                     f'{_esc(x_label)}</text>')
    if marker_value is not None:
        x = x_of(marker_value)
        parts.append(f'<line class="marker" x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{top + plot_h}" '
                     f'stroke="{MARKER_COLOUR}" stroke-width="2" stroke-dasharray="5,3"/>'
                     f'<text x="{x + 4:.1f}" y="{top + 8}" fill="{MARKER_COLOUR}">'
                     f'{_esc(marker[1])} {_esc(_fmt(float(marker_value)))}</text>')
    return _figure("".join(parts), height, title, caption)


# ---------------------------------------------------------------- numbers from the data

def _floats(table: pa.Table, name: str, mask: pa.Array | None = None) -> np.ndarray:
    col = table.column(name)
    if mask is not None:
        col = col.filter(mask)
    arr = col.combine_chunks().cast(pa.float64()).to_numpy(zero_copy_only=False)
    return arr[np.isfinite(arr)]


def _shorter_side(table: pa.Table) -> np.ndarray:
    w = _floats_aligned(table, "original_width", "width")
    h = _floats_aligned(table, "original_height", "height")
    side = np.fmin(w, h)
    return side[np.isfinite(side)]


def _floats_aligned(table: pa.Table, name: str, fallback: str) -> np.ndarray:
    col = pc.coalesce(table.column(name).cast(pa.float64()), table.column(fallback).cast(pa.float64()))
    return col.combine_chunks().to_numpy(zero_copy_only=False).astype(float)


def _value_counts(table: pa.Table, name: str) -> dict[str, int]:
    """Counts of the non-null values of a column."""
    col = table.column(name).combine_chunks().cast(pa.string()).drop_null()
    return {v["values"]: v["counts"] for v in pc.value_counts(col).to_pylist()} if len(col) else {}


def _stage_rank(stage: str) -> int:
    return STAGE_ORDER.index(stage) if stage in STAGE_ORDER else len(STAGE_ORDER)


def reason_counts(data: RunData) -> list[tuple[str, str, int]]:
    """(stage, reason, count) from stats.json, else from the rejects table, in funnel order."""
    out = []
    for entry in data.stats.get("stages") or []:
        for reason, n in (entry.get("reasons") or {}).items():
            out.append((str(entry.get("stage") or "unknown"), str(reason), int(n or 0)))
    if not out and data.rejects.num_rows:
        pairs = pa.table({"stage": pc.fill_null(data.rejects.column("stage").cast(pa.string()), "unknown"),
                          "reason": pc.fill_null(data.rejects.column("reason").cast(pa.string()), "unknown")})
        grouped = pairs.group_by(["stage", "reason"]).aggregate([([], "count_all")])
        out = [(r["stage"], r["reason"], r["count_all"]) for r in grouped.to_pylist()]
    return sorted(out, key=lambda t: (_stage_rank(t[0]), -t[2], t[1]))


@dataclass(frozen=True)
class Headline:
    input_rows: int | None
    kept: int
    rejected: int
    kept_on_disk: int
    rejected_on_disk: int


def headline(data: RunData) -> Headline:
    kept_on_disk = data.sizes_total if data.sizes_total is not None else data.kept.num_rows
    rejected_on_disk = data.rejects.num_rows
    kept = data.stats.get("kept")
    rejected = data.stats.get("rejected")
    return Headline(input_rows=data.stats.get("input_rows"),
                    kept=int(kept) if kept is not None else kept_on_disk,
                    rejected=int(rejected) if rejected is not None else rejected_on_disk,
                    kept_on_disk=kept_on_disk, rejected_on_disk=rejected_on_disk)


# ---------------------------------------------------------------- sections

def _selection(data: RunData) -> tuple[str | None, float | None]:
    sel = data.stats.get("selection") or {}
    if not isinstance(sel, dict):
        return None, None
    threshold = sel.get("threshold")
    try:
        threshold = float(threshold) if threshold is not None else None
    except (TypeError, ValueError):
        threshold = None
    return sel.get("method"), threshold


def headline_section(data: RunData) -> str:
    h = headline(data)
    method, threshold = _selection(data)
    cards = [("input rows", _fmt(h.input_rows) if h.input_rows is not None else "unknown"),
             ("kept", _fmt(h.kept)), ("rejected", _fmt(h.rejected))]
    if h.input_rows:
        cards.append(("kept share", f"{100 * h.kept / h.input_rows:.1f}%"))
    if threshold is not None:
        cards.append(("threshold", _fmt(threshold)))
    parts = ['<section id="summary"><h2>Summary</h2><div class="cards">']
    parts += [f'<div class="card"><div class="num">{_esc(v)}</div><div class="muted">{_esc(k)}</div></div>'
              for k, v in cards]
    parts.append("</div>")
    checks = []
    if h.input_rows is None:
        checks.append(("warn", "stats.json gives no input row count; the counts cannot be checked."))
    elif h.kept + h.rejected == h.input_rows:
        checks.append(("ok", f"Counts add up: {h.kept:,} kept + {h.rejected:,} rejected = {h.input_rows:,} input rows."))
    else:
        diff = h.input_rows - h.kept - h.rejected
        checks.append(("bad", f"Counts do not add up: {h.kept:,} kept + {h.rejected:,} rejected = "
                              f"{h.kept + h.rejected:,}, but {h.input_rows:,} input rows ({diff:+,} unaccounted)."))
    if h.kept != h.kept_on_disk:
        checks.append(("bad", f"stats.json says {h.kept:,} kept, the shards hold {h.kept_on_disk:,}."))
    if h.rejected != h.rejected_on_disk:
        checks.append(("bad", f"stats.json says {h.rejected:,} rejected, the rejects table holds {h.rejected_on_disk:,}."))
    if method:
        checks.append(("info", f"Selection: {method}" + (f", threshold {_fmt(threshold)}." if threshold is not None else ".")))
    parts += [f'<p class="check {cls}">{_esc(text)}</p>' for cls, text in checks]
    parts.append("</section>")
    return "".join(parts)


def funnel_section(data: RunData, config: ReportConfig) -> str:
    h = headline(data)
    rows = []
    funnel = data.stats.get("funnel") or []
    if funnel:
        first_in = funnel[0].get("rows_in")
        if first_in is not None:
            rows.append(("input", [float(first_in), 0.0]))
        for step in funnel:
            rows_in, rows_out = step.get("rows_in"), step.get("rows_out")
            if rows_out is None:
                continue
            dropped = (rows_in - rows_out) if rows_in is not None else 0
            rows.append((str(step.get("stage")), [float(rows_out), float(dropped)]))
    funnel_chart = bar_chart("Rows after each stage", rows,
                             [("remaining", KEPT_COLOUR), ("dropped at this stage", REJECTED_COLOUR)],
                             "Rows left after each stage, in the order rows pass them.", max_bars=config.max_bars)
    reasons = reason_counts(data)
    reason_chart = bar_chart("Rejected rows by reason", [(f"{s} / {r}", [n]) for s, r, n in reasons],
                             [("rejected", REJECTED_COLOUR)],
                             f"{h.rejected:,} rejected rows, by stage and reason.", max_bars=config.max_bars)
    table = ""
    if reasons:
        body = "".join(f"<tr><td>{_esc(s)}</td><td>{_esc(r)}</td><td class='n'>{n:,}</td></tr>" for s, r, n in reasons)
        table = f"<table><tr><th>stage</th><th>reason</th><th>rows</th></tr>{body}</table>"
    return f'<section id="funnel"><h2>Funnel</h2><div class="row">{funnel_chart}{reason_chart}</div>{table}</section>'


def distributions_section(data: RunData, config: ReportConfig) -> str:
    _, threshold = _selection(data)
    kept, rej = data.kept, data.rejects
    sim = histogram_chart(
        "CLIP similarity", [("kept", KEPT_COLOUR, _floats(kept, "similarity")),
                            ("rejected", REJECTED_COLOUR, _floats(rej, "similarity"))],
        "Cosine similarity of image and caption; rejected = rejected rows that were scored "
        "(mostly low_similarity). The dashed line is the selection threshold.",
        bins=config.histogram_bins, marker=(threshold, "threshold") if threshold is not None else None,
        x_label="similarity")
    sizes = histogram_chart(
        "Image size", [("kept", KEPT_COLOUR, _shorter_side(kept)), ("rejected", REJECTED_COLOUR, _shorter_side(rej))],
        "Shorter side of the original image in pixels (log-spaced bins when the range is wide).",
        bins=config.histogram_bins, log_x=True, x_label="shorter side (px)")
    text = histogram_chart(
        "Textness", [("kept", KEPT_COLOUR, _floats(kept, "textness")),
                     ("rejected", REJECTED_COLOUR, _floats(rej, "textness"))],
        "How much of the image is text (0 = none).", bins=config.histogram_bins, x_label="textness")
    kept_lang, rej_lang = _value_counts(kept, "language"), _value_counts(rej, "language")
    langs = sorted(set(kept_lang) | set(rej_lang), key=lambda k: (-(kept_lang.get(k, 0) + rej_lang.get(k, 0)), k))
    lang = bar_chart("Languages", [(k, [kept_lang.get(k, 0), rej_lang.get(k, 0)]) for k in langs],
                     [("kept", KEPT_COLOUR), ("rejected", REJECTED_COLOUR)],
                     "Caption language as detected, kept and rejected rows.", max_bars=config.max_bars)
    return (f'<section id="distributions"><h2>Distributions</h2><div class="row">{sim}{lang}</div>'
            f'<div class="row">{sizes}{text}</div></section>')


def _caption_text(caption, config: ReportConfig) -> str:
    text = "" if caption is None else str(caption)
    return text if len(text) <= config.caption_chars else text[:config.caption_chars - 1] + "\u2026"


def _tile(uri: str | None, caption, lines: list[str], config: ReportConfig) -> str:
    caption_text = _caption_text(caption, config)
    hover = "\n".join([caption_text] + lines)
    img = (f'<img src="{uri}" alt="{_esc(caption_text)}" loading="lazy">' if uri
           else '<div class="noimg">no image</div>')
    meta = "".join(f'<div class="meta">{_esc(line)}</div>' for line in lines)
    return (f'<figure class="tile" title="{_esc(hover)}">{img}<figcaption>'
            f'<div class="cap">{_esc(caption_text)}</div>{meta}</figcaption></figure>')


def _sim_line(similarity) -> list[str]:
    if similarity is None or (isinstance(similarity, float) and math.isnan(similarity)):
        return []
    return [f"similarity {similarity:.3f}"]


def _pick_even(n_rows: int, n: int) -> list[int]:
    if n_rows == 0 or n <= 0:
        return []
    return sorted(set(np.linspace(0, n_rows - 1, min(n, n_rows)).round().astype(int).tolist()))


def _kept_rows(table: pa.Table, indices: list[int]) -> list[dict]:
    if not indices:
        return []
    return table.select(["key", "caption", "similarity", "_shard"]).take(pa.array(indices, pa.int64())).to_pylist()


def kept_section(data: RunData, config: ReportConfig) -> str:
    kept = data.kept
    rows = kept_thumbnails(_kept_rows(kept, _pick_even(kept.num_rows, config.kept_thumbnails)), config)
    tiles = "".join(_tile(r["uri"], r["caption"], _sim_line(r["similarity"]), config) for r in rows)
    parts = ['<section id="kept"><h2>Kept samples</h2>']
    if tiles:
        parts.append(f'<p class="muted">{len(rows)} of {kept.num_rows:,} kept samples, spread evenly in key order.</p>'
                     f'<div class="grid kept">{tiles}</div>')
    else:
        parts.append('<p class="muted">no data: no kept samples.</p>')
    sims = kept.column("similarity").combine_chunks().cast(pa.float64())
    n_scored = kept.num_rows - sims.null_count
    if n_scored and config.borderline_thumbnails > 0:
        order = pc.array_sort_indices(sims, order="ascending", null_placement="at_end")
        low = order.slice(0, min(config.borderline_thumbnails, n_scored)).to_pylist()
        low_rows = kept_thumbnails(_kept_rows(kept, low), config)
        tiles = "".join(_tile(r["uri"], r["caption"], _sim_line(r["similarity"]), config) for r in low_rows)
        parts.append(f'<h3>Lowest similarity kept</h3><p class="muted">The {len(low_rows)} kept samples closest '
                     f'to the threshold: are these still good pairs?</p><div class="grid borderline">{tiles}</div>')
    parts.append("</section>")
    return "".join(parts)


def _reject_tiles(rows: list[dict], config: ReportConfig) -> str:
    tiles = []
    for r in rows:
        lines = _sim_line(r.get("similarity"))
        if r.get("error_message"):
            lines.append(str(r["error_message"])[:200])
        tiles.append(_tile(thumbnail_uri(r.get("thumbnail"), config), r.get("caption"), lines, config))
    return f'<div class="grid rejected">{"".join(tiles)}</div>'


def _reject_table(rows: list[dict], config: ReportConfig) -> str:
    """Examples of a reason whose rows never reached the image stage: caption, message and URL as text."""
    body = "".join(f"<tr><td>{_esc(_caption_text(r.get('caption'), config))}</td>"
                   f"<td>{_esc(r.get('error_message') or '')}</td>"
                   f"<td class='url'>{_esc(str(r.get('url') or '')[:300])}</td></tr>" for r in rows)
    return f"<table class='examples'><tr><th>caption</th><th>message</th><th>url</th></tr>{body}</table>"


def rejects_section(data: RunData, config: ReportConfig) -> str:
    parts = ['<section id="rejected"><h2>Rejected samples by reason</h2>']
    if not data.reject_examples:
        parts.append('<p class="muted">no data: no rejected rows.</p></section>')
        return "".join(parts)
    counts = reason_counts(data)
    totals = {r: n for _, r, n in counts}
    stage_of = {r: s for s, r, _ in counts}
    order = sorted(data.reject_examples, key=lambda r: (_stage_rank(stage_of.get(r, "")), -totals.get(r, 0), r))
    for reason in order:
        rows = data.reject_examples[reason]
        stage = stage_of.get(reason) or (rows[0].get("stage") if rows else None) or "unknown"
        total = totals.get(reason, len(rows))
        body = (_reject_tiles(rows, config) if any(r.get("thumbnail") for r in rows)
                else _reject_table(rows, config))
        parts.append(f'<div class="reason" data-reason="{_esc(reason)}"><h3>{_esc(reason)} '
                     f'<span class="muted">({_esc(stage)}, {total:,} rows; {len(rows)} shown)</span></h3>{body}</div>')
    parts.append("</section>")
    return "".join(parts)


def _flatten(prefix: str, value, out: list) -> None:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out.append((prefix, value))


def tables_section(data: RunData) -> str:
    options: list = []
    if isinstance(data.stats.get("options"), dict) and data.stats["options"]:
        _flatten("", data.stats["options"], options)
    rows = "".join(f"<tr><td>{_esc(k)}</td><td><code>{_esc(json.dumps(v, default=str))}</code></td></tr>"
                   for k, v in options)
    opt_html = (f"<table><tr><th>option</th><th>value</th></tr>{rows}</table>" if rows
                else '<p class="muted">no data: stats.json records no options.</p>')
    timings = data.stats.get("timings") or {}
    total = timings.get("total_s")
    stage_times = timings.get("stages") or {}
    t_rows = []
    for stage, seconds in sorted(stage_times.items(), key=lambda kv: (_stage_rank(kv[0]), kv[0])):
        share = f"{100 * seconds / total:.1f}%" if total and isinstance(seconds, (int, float)) else ""
        t_rows.append(f"<tr><td>{_esc(stage)}</td><td class='n'>{_esc(_fmt(seconds))}</td><td class='n'>{share}</td></tr>")
    if total is not None:
        t_rows.append(f"<tr class='total'><td>total</td><td class='n'>{_esc(_fmt(total))}</td><td></td></tr>")
    time_html = (f"<table><tr><th>stage</th><th>seconds</th><th>share</th></tr>{''.join(t_rows)}</table>" if t_rows
                 else '<p class="muted">no data: stats.json records no timings.</p>')
    return (f'<section id="options"><h2>Options</h2>{opt_html}</section>'
            f'<section id="timings"><h2>Timings</h2>{time_html}</section>')


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0 auto;
max-width:1320px;padding:16px 24px;color:#222;background:#fff}
h1{margin:0 0 4px}h2{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:28px}
.muted{color:#777}nav a{margin-right:12px;color:#2b7bba}
.cards{display:flex;flex-wrap:wrap;gap:12px}.card{border:1px solid #ddd;border-radius:6px;padding:10px 16px;min-width:120px}
.num{font-size:26px;font-weight:600}
.check{padding:6px 10px;border-radius:4px;margin:6px 0}.ok{background:#e6f4ea}.bad{background:#fdecea}
.warn{background:#fff4e5}.info{background:#eef4fb}
.row{display:flex;flex-wrap:wrap;gap:16px}figure{margin:0}
svg.chart{max-width:100%;height:auto;font-size:11px;fill:#333;background:#fcfcfc;border:1px solid #eee}
svg.chart text.muted{fill:#888}figcaption{font-size:12px;color:#555;max-width:540px;margin:4px 0 12px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(124px,1fr));gap:10px}
.tile{border:1px solid #e3e3e3;border-radius:4px;padding:4px;background:#fafafa}
.tile img,.noimg{display:block;width:96px;height:96px;object-fit:contain;margin:0 auto;background:#eee}
.noimg{line-height:96px;text-align:center;color:#999;font-size:11px}
.tile figcaption{margin:4px 0 0;font-size:11px}
.cap{display:-webkit-box;-webkit-line-clamp:3;-webkit-box-orient:vertical;overflow:hidden;word-break:break-word}
.meta{color:#888;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
table{border-collapse:collapse;font-size:13px;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}tr.total td{font-weight:600}
code{word-break:break-all}td.url{color:#666;word-break:break-all;max-width:420px}
"""

# nothing may be fetched: images only from data: URIs, styles only inline
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def render_html(data: RunData, config: ReportConfig, title: str) -> str:
    sections = [headline_section(data), funnel_section(data, config), distributions_section(data, config),
                kept_section(data, config), rejects_section(data, config), tables_section(data)]
    nav = "".join(f'<a href="#{a}">{t}</a>' for a, t in (
        ("summary", "Summary"), ("funnel", "Funnel"), ("distributions", "Distributions"), ("kept", "Kept"),
        ("rejected", "Rejected"), ("options", "Options"), ("timings", "Timings")))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_esc(title)}</title><style>{_CSS}</style></head><body>"
            f"<h1>clipcurate run report</h1><p class=\"muted\">{_esc(title)}</p><nav>{nav}</nav>"
            + "".join(sections) + "</body></html>\n")


def render_report(out_dir: str, config: ReportConfig = ReportConfig()) -> str:
    """Write ``out_dir/report.html`` from the output folder and return its path."""
    data = load_run(out_dir, config)
    path = os.path.join(out_dir, REPORT_NAME)
    atomic_write_text(path, render_html(data, config, os.path.abspath(out_dir)))
    return path
