"""report.html: self-contained, escaped, with charts and thumbnail grids, and renders in a real browser."""
from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from clipcurate.pipeline import cli
from clipcurate.pipeline.inspect.report import ReportConfig, render_report
from fake_output import EVIL_CAPTION, REJECT_KINDS, URL_CAPTION, jpeg_bytes, write_fake_output


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


# ---------------------------------------------------------------- an output of several files

def _chart(page: str, title: str) -> str:
    start = page.index(f'aria-label="{title}"')
    return page[start:page.index("</figure>", start)]


def _binned(chart: str, series: str) -> int:
    """The rows a histogram shows for ``series``: the sum of its bars' counts."""
    return sum(int(n.replace(",", "")) for n in re.findall(rf"<title>{series}: ([\d,]+) in \[", chart))


def _captions(page: str, grid: str) -> list[str]:
    start = page.index(f'class="grid {grid}"')
    end = min(i for i in (page.find("<h3>", start), page.index("</section>", start)) if i >= 0)
    return re.findall(r'<div class="cap">(.*?)</div>', page[start:end])


def _write(path, columns: dict) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    types = {"similarity": pa.float32(), "textness": pa.float32(), "width": pa.int32(), "height": pa.int32(),
             "original_width": pa.int32(), "original_height": pa.int32(), "thumbnail": pa.binary()}
    pq.write_table(pa.table({k: pa.array(v, types.get(k, pa.string())) for k, v in columns.items()}), str(path))


def _kept_file(path, first: int, sims: list, **columns) -> None:
    n = len(sims)
    _write(path, {"key": [f"k{first + i:03d}" for i in range(n)], "caption": [f"kept row {first + i}" for i in range(n)],
                  "similarity": sims, "language": ["en"] * (n - 1) + ["de"], **columns})


def test_an_output_of_several_files_is_shown_whole(tmp_path):
    """Three kept Parquet files and three rejects files: the totals, the histograms, the languages, the
    kept rows spread over all files and the lowest similarities (ties in file order) come from every file."""
    out = tmp_path / "out"
    _kept_file(out / "pairs" / "00000.parquet", 0, [0.5, 0.31, None, 0.6, 0.45], textness=[0.1, 0.2, 0.3, 0.4, 0.5],
               original_width=[400, 300, 200, 100, 800], original_height=[300, 300, 300, 300, 300])
    _kept_file(out / "pairs" / "00001.parquet", 5, [0.7, 0.3, 0.33, None, 0.8, 0.9, 0.31],
               textness=[0.0] * 7, width=[64] * 6 + [None], height=[48] * 6 + [None])
    _kept_file(out / "pairs" / "00002.parquet", 12, [0.3, 0.65, 0.55, 0.4],
               original_width=[None, 500, None, 600], width=[90, 90, None, 90], height=[80, 80, None, 80])
    _write(out / "rejects" / "normalize" / "00000.parquet",
           {"caption": ["", " "], "stage": ["normalize"] * 2, "reason": ["empty_caption"] * 2, "language": [None] * 2})
    _write(out / "rejects" / "select" / "00000.parquet",
           {"caption": ["plain low 1", "plain low 2", "plain text"], "stage": ["select"] * 3,
            "reason": ["low_similarity", "low_similarity", "text_heavy"], "similarity": [0.1, 0.12, 0.5],
            "textness": [0.1, 0.1, 0.95], "width": [64] * 3, "height": [64] * 3, "language": ["en"] * 3})
    thumb = jpeg_bytes(Image.new("RGB", (40, 30), (200, 40, 40)))
    _write(out / "rejects" / "select" / "00001.parquet",
           {"caption": ["thumb low 1", "no thumb low", "thumb low 2"], "stage": ["select"] * 3,
            "reason": ["low_similarity"] * 3, "similarity": [0.05, 0.08, 0.11], "thumbnail": [thumb, None, thumb],
            "language": ["en", "fr", "en"]})
    (out / "stats.json").write_text(json.dumps({"input_rows": 24, "selection": {"method": "threshold",
                                                                               "threshold": 0.3}}))
    config = ReportConfig(kept_thumbnails=4, borderline_thumbnails=4, rejected_per_reason=3)
    page = read(render_report(str(out), config))

    assert "Counts add up: 16 kept + 8 rejected = 24 input rows." in page
    assert "select / low_similarity" in page and "(select, 5 rows; 3 shown)" in page
    sim, size, text = (_chart(page, t) for t in ("CLIP similarity", "Image size", "Textness"))
    assert (_binned(sim, "kept"), _binned(sim, "rejected")) == (14, 6)
    assert (_binned(size, "kept"), _binned(size, "rejected")) == (14, 3)  # widths from width where no original_width
    assert (_binned(text, "kept"), _binned(text, "rejected")) == (12, 3)  # the third kept file has no textness
    assert "threshold 0.3</text>" in sim
    assert ">13 / 5</text>" in _chart(page, "Languages")  # en: 13 kept, 5 rejected

    assert "4 of 16 kept samples" in page
    assert _captions(page, "kept") == ["kept row 0", "kept row 5", "kept row 10", "kept row 15"]
    assert _captions(page, "borderline") == ["kept row 6", "kept row 12", "kept row 1", "kept row 11"]
    low = page[page.index('data-reason="low_similarity"'):]
    low = low[:low.index("</div></div>") + 12]
    assert re.findall(r'<div class="cap">(.*?)</div>', low) == ["thumb low 1", "thumb low 2", "plain low 1"]
    assert low.count("<img") == 2
