"""report.html: one self-contained page showing a run at a glance.

Headline counts, the funnel, histograms (similarity with the threshold,
image sizes, textness), languages, and thumbnail grids of kept and rejected
samples. Everything is inline: charts are SVG drawn here, thumbnails are
``data:`` URIs, and a Content-Security-Policy forbids the page to load
anything at all. All text from the data is HTML-escaped.

``data`` reads the output folder, ``charts`` draws SVG, ``page`` builds the HTML.
"""
from __future__ import annotations

import os

from clipcurate.pipeline import files as fs
from clipcurate.pipeline.files import atomic_write_text
from clipcurate.pipeline.inspect.report.data import REPORT_NAME, ReportConfig, load_run  # noqa: F401
from clipcurate.pipeline.inspect.report.page import render_html


def render_report(out_dir: str, config: ReportConfig = ReportConfig(), shown_as: str | None = None) -> str:
    """Write ``out_dir/report.html`` from the output folder and return its path; the page names the
    output ``shown_as`` (a run renders it in OUT/_next before publishing it into OUT)."""
    data = load_run(out_dir, config)
    path = fs.join(out_dir, REPORT_NAME)
    name = shown_as or out_dir
    atomic_write_text(path, render_html(data, config, name if fs.is_remote(name) else os.path.abspath(name)))
    return path
