"""The report page: its sections (headline, funnel, distributions, kept and rejected samples, options,
timings) as HTML built from ``RunData`` with the charts, under a Content-Security-Policy that loads nothing."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

from clipcurate.pipeline.inspect.report.charts import (  # noqa: F401
    KEPT_COLOUR, REJECTED_COLOUR, _esc, _fmt, bar_chart, histogram_counts_chart,
)
from clipcurate.pipeline.inspect.report.data import (  # noqa: F401
    ReportConfig, RunData, STAGE_ORDER, kept_thumbnails, selection, thumbnail_uri,
)


# ---------------------------------------------------------------- numbers from the data

def _stage_rank(stage: str) -> int:
    return STAGE_ORDER.index(stage) if stage in STAGE_ORDER else len(STAGE_ORDER)


def reason_counts(data: RunData) -> list[tuple[str, str, int]]:
    """(stage, reason, count) from stats.json, else as counted in the rejects files, in funnel order."""
    out = []
    for entry in data.stats.get("stages") or []:
        for reason, n in (entry.get("reasons") or {}).items():
            out.append((str(entry.get("stage") or "unknown"), str(reason), int(n or 0)))
    if not out and data.rejected_rows:
        out = list(data.reject_groups)
    return sorted(out, key=lambda t: (_stage_rank(t[0]), -t[2], t[1]))


@dataclass(frozen=True)
class Headline:
    input_rows: int | None
    kept: int
    rejected: int
    kept_on_disk: int
    rejected_on_disk: int


def headline(data: RunData) -> Headline:
    kept_on_disk = data.sizes_total if data.sizes_total is not None else data.kept_rows
    rejected_on_disk = data.rejected_rows
    kept = data.stats.get("kept")
    rejected = data.stats.get("rejected")
    return Headline(input_rows=data.stats.get("input_rows"),
                    kept=int(kept) if kept is not None else kept_on_disk,
                    rejected=int(rejected) if rejected is not None else rejected_on_disk,
                    kept_on_disk=kept_on_disk, rejected_on_disk=rejected_on_disk)


# ---------------------------------------------------------------- sections

def _selection(data: RunData) -> tuple[str | None, float | None]:
    return selection(data.stats)


def _histogram(data: RunData, name: str, title: str, caption: str, **options) -> str:
    """Histogram ``name`` of the kept and the rejected rows, from the counts on its shared bins."""
    h = data.histograms[name]
    series = [("kept", KEPT_COLOUR, h.counts["kept"]), ("rejected", REJECTED_COLOUR, h.counts["rejected"])]
    return histogram_counts_chart(title, series, h.edges, caption, **options)


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
    sim = _histogram(
        data, "similarity", "CLIP similarity",
        "Cosine similarity of image and caption; rejected = rejected rows that were scored "
        "(mostly low_similarity). The dashed line is the selection threshold.",
        marker=(threshold, "threshold") if threshold is not None else None, x_label="similarity")
    sizes = _histogram(
        data, "size", "Image size",
        "Shorter side of the original image in pixels (log-spaced bins when the range is wide).",
        log_x=True, x_label="shorter side (px)")
    text = _histogram(data, "textness", "Textness", "How much of the image is text (0 = none).", x_label="textness")
    kept_lang, rej_lang = data.languages["kept"], data.languages["rejected"]
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


def kept_section(data: RunData, config: ReportConfig) -> str:
    rows = kept_thumbnails(data.kept_even, config)
    tiles = "".join(_tile(r["uri"], r["caption"], _sim_line(r["similarity"]), config) for r in rows)
    parts = ['<section id="kept"><h2>Kept samples</h2>']
    if tiles:
        parts.append(f'<p class="muted">{len(rows)} of {data.kept_rows:,} kept samples, spread evenly in key order.</p>'
                     f'<div class="grid kept">{tiles}</div>')
    else:
        parts.append('<p class="muted">no data: no kept samples.</p>')
    if data.kept_lowest:
        low_rows = kept_thumbnails(data.kept_lowest, config)
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
