"""report.html: self-contained, escaped, with charts and thumbnail grids, and renders in a real browser."""
from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
from html.parser import HTMLParser

import pytest
from PIL import Image

from clipcurate.pipeline import cli
from clipcurate.pipeline.inspect.report import ReportConfig, render_report
from fake_output import EVIL_CAPTION, REJECT_KINDS, URL_CAPTION, write_fake_output


class _Tags(HTMLParser):
    """Every start tag with its attributes, and the reject reason section it lies in."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict, str | None]] = []
        self._reason: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "div" and "data-reason" in attrs:
            self._reason = attrs["data-reason"]
        elif tag == "section":
            self._reason = None
        self.tags.append((tag, attrs, self._reason))


def parse(page: str) -> list[tuple[str, dict, str | None]]:
    parser = _Tags()
    parser.feed(page)
    return parser.tags


def read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("run"))
    fake = write_fake_output(out)
    path = render_report(out)
    return fake, path, read(path)


def test_written_to_the_output_folder_atomically(rendered):
    fake, path, _ = rendered
    assert path == os.path.join(fake.out, "report.html")
    assert not [n for n in os.listdir(fake.out) if ".tmp" in n]


def test_page_loads_nothing_from_outside(rendered):
    _, _, page = rendered
    tags = parse(page)
    for tag, attrs, _ in tags:
        for name in ("src", "href", "srcset", "poster", "data"):
            value = attrs.get(name)
            if value is None:
                continue
            assert "http://" not in value and "https://" not in value, (tag, name, value[:80])
            assert value.startswith("data:image/jpeg;base64,") if name == "src" else value.startswith("#")
    assert not [t for t, _, _ in tags if t in ("script", "link", "iframe", "object", "embed")]
    assert "url(" not in page and "@import" not in page
    assert "Content-Security-Policy" in page


def test_at_least_three_charts_each_with_a_title(rendered):
    _, _, page = rendered
    charts = [a for t, a, _ in parse(page) if t == "svg" and a.get("class") == "chart"]
    assert len(charts) >= 5  # funnel, reasons, similarity, languages, sizes, textness
    assert page.count('<svg class="chart"') == len(charts)
    assert page.count("<figcaption><b>") == len(charts)


def test_similarity_histogram_marks_the_threshold(rendered):
    _, _, page = rendered
    assert 'class="marker"' in page and "threshold 0.25" in page
    assert "Counts add up: 40 kept + 21 rejected = 61 input rows." in page


def _decoded(uri: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))


def test_kept_thumbnails_are_small_jpegs_with_caption_and_similarity(rendered):
    fake, _, page = rendered
    tags = parse(page)
    kept_imgs = []
    in_kept_grid = False
    for tag, attrs, _ in tags:
        if tag == "div" and "grid" in attrs.get("class", ""):
            in_kept_grid = attrs["class"] == "grid kept"
        elif tag == "img" and in_kept_grid:
            kept_imgs.append(attrs)
    assert len(kept_imgs) == len(fake.kept_keys) == 40
    for attrs in kept_imgs:
        im = _decoded(attrs["src"])
        assert im.format == "JPEG" and max(im.size) <= 96
    hover = [a["title"] for t, a, _ in tags if t == "figure" and "tile" in a.get("class", "")]
    assert any(URL_CAPTION in h and "similarity 0.270" in h for h in hover)
    assert "similarity 0.260</div>" in page  # shown below the image too
    assert 'class="grid borderline"' in page


def test_rejected_examples_are_grouped_by_reason(rendered):
    fake, _, page = rendered
    tags = parse(page)
    sections = {a["data-reason"] for t, a, _ in tags if "data-reason" in a}
    assert sections == set(fake.reject_counts)
    for _, reason, has_thumb, *_ in REJECT_KINDS:
        imgs = [a for t, a, r in tags if t == "img" and r == reason]
        if has_thumb:
            assert len(imgs) == 3, reason
            assert all(_decoded(a["src"]).format == "JPEG" for a in imgs)
        else:
            assert imgs == [], reason
    assert "404 Not Found" in page  # the error message of http_error rows


def test_untrusted_captions_are_escaped(rendered):
    _, _, page = rendered
    assert "<script" not in page
    assert "<b>bold" not in page
    assert "&lt;script&gt;alert(&quot;owned&quot;)&lt;/script&gt;" in page
    assert EVIL_CAPTION not in page


def test_no_thumbnail_column_and_no_stats(tmp_path):
    fake = write_fake_output(str(tmp_path), kept=10, thumbnails=False, stats=False)
    page = read(render_report(fake.out))
    tags = parse(page)
    assert not [a for t, a, r in tags if t == "img" and r is not None]
    assert {a["data-reason"] for t, a, _ in tags if "data-reason" in a} == set(fake.reject_counts)
    assert "no input row count" in page
    assert ">10</div>" in page and ">21</div>" in page  # kept and rejected counted from the files
    assert page.count('<svg class="chart"') >= 3


def test_empty_run_shows_no_data(tmp_path):
    os.makedirs(tmp_path / "shards")
    (tmp_path / "stats.json").write_text(json.dumps({"input_rows": 0, "kept": 0, "rejected": 0}))
    page = read(render_report(str(tmp_path)))
    assert page.count('<svg class="chart"') >= 3
    assert page.count(">no data</text>") >= 3
    assert "no data: no kept samples" in page and "no data: no rejected rows" in page
    assert "stats.json records no options" in page and "stats.json records no timings" in page


def test_counts_that_do_not_match_the_files_are_flagged(tmp_path):
    fake = write_fake_output(str(tmp_path), kept=5, rejects_per_kind=1)
    stats = json.loads((tmp_path / "stats.json").read_text())
    stats.update(kept=7, input_rows=20)
    (tmp_path / "stats.json").write_text(json.dumps(stats))
    page = read(render_report(fake.out))
    assert "Counts do not add up" in page
    assert "stats.json says 7 kept, the shards hold 5." in page


def test_grid_sizes_follow_the_config(tmp_path):
    fake = write_fake_output(str(tmp_path), kept=30, rejects_per_kind=5)
    config = ReportConfig(kept_thumbnails=6, borderline_thumbnails=0, rejected_per_reason=2)
    tags = parse(read(render_report(fake.out, config)))
    assert len([a for t, a, r in tags if t == "img" and r is None]) == 6
    for reason in fake.thumbnail_reasons:
        assert len([a for t, a, r in tags if t == "img" and r == reason]) == 2


def test_cli_renders_and_prints_the_path(tmp_path, capsys):
    fake = write_fake_output(str(tmp_path / "out"), kept=4, rejects_per_kind=1)
    assert cli.main(["report", fake.out]) == 0
    assert capsys.readouterr().out.strip() == os.path.join(fake.out, "report.html")
    assert os.path.exists(os.path.join(fake.out, "report.html"))


def test_cli_refuses_a_folder_that_is_not_an_output(tmp_path, capsys):
    assert cli.main(["report", str(tmp_path)]) == 2
    assert "not a clipcurate output folder" in capsys.readouterr().err


# ---------------------------------------------------------------- a real browser

def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _browser(args: list[str], tmp_path) -> subprocess.CompletedProcess:
    binary = _chromium()
    if binary is None:
        pytest.skip("no chromium binary on PATH (Debian: apt-get install -y chromium)")
    cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}"] + args
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)


def test_renders_in_headless_chromium(rendered, tmp_path):
    _, path, _ = rendered
    url = "file://" + os.path.abspath(path)
    dom = _browser(["--dump-dom", url], tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count('<svg class="chart"') >= 5
    assert dom.stdout.count("<img") >= 40 + 9
    assert "Kept samples" in dom.stdout and "low_similarity" in dom.stdout

    shot = tmp_path / "report.png"
    result = _browser([f"--screenshot={shot}", "--window-size=1200,2000", url], tmp_path)
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    with Image.open(shot) as im:
        assert im.size == (1200, 2000)
        colours = im.convert("RGB").getcolors(maxcolors=1_000_000)
    assert colours is not None and len(colours) > 100  # text, bars and photos, not a blank page
    most = max(n for n, _ in colours)
    assert most < 0.95 * 1200 * 2000
