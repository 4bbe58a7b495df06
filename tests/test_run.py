"""End to end: a table mixing good images with every bad kind becomes shards + rejects, every row accounted for."""
from __future__ import annotations

import glob
import json
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clipcurate.pipeline.cli import main as cli_main
from webserver import make_jpeg

LONG_CAPTION = ("a very long caption \x07\x1b " * 1200)[:30000]


def _rows(web):
    u = web.url
    rows = [
        # (url, caption, expected reason or None for kept)
        (u("/good.jpg"), "a red and blue pattern", None),
        (u("/good_tall.jpg"), "a tall picture of stripes", None),
        (u("/good_wide.jpg"), "a wide banner &amp; logo", None),
        (u("/good.png"), "a square png", None),
        (u("/good_large.png"), "a large png image", None),
        (u("/run/a.jpg"), "first distinct photo", None),
        (u("/run/b.jpg"), "second distinct photo", None),
        (u("/run/a.jpg"), "first distinct photo", "duplicate_pair"),
        (u("/run/b.jpg"), "another caption for b", "duplicate_url"),
        (u("/run/a-copy.jpg"), "the same bytes as a", "duplicate_image"),
        (u("/run/a-small.jpg"), "a smaller copy", "near_duplicate_image"),
        (u("/404"), "missing image", "http_error"),
        (u("/html.jpg"), "html served as jpeg", "not_an_image"),
        (u("/truncated.jpg"), "truncated jpeg", "decode_error"),
        (u("/empty.jpg"), "empty body", "empty_body"),
        (u("/bomb.png"), "decompression bomb", "decompression_bomb"),
        (u("/noai.jpg"), "opted out", "opted_out"),
        (u("/noimageindex.jpg"), "opted out too", "opted_out"),
        (u("/tiny.jpg"), "eight by eight", "image_too_small"),
        (u("/hang.jpg"), "server never answers", "timeout"),
        (u("/redirect-html"), "redirect to a page", "not_an_image"),
        ("file:///etc/passwd", "local file", "unsupported_scheme"),
        ("ftp://example.com/a.jpg", "ftp", "unsupported_scheme"),
        ("javascript:alert(1)", "script", "unsupported_scheme"),
        ("http://[::1", "broken", "malformed_url"),
        ("not a url at all", "no scheme", "malformed_url"),
        (None, "no url", "missing_url"),
        (u("/run/c.jpg"), "", "empty_caption"),
        (u("/run/d.jpg"), "   \x00\x01  ", "empty_caption"),
        (u("/run/e.jpg"), LONG_CAPTION, "caption_too_long"),
    ]
    return rows


MIXED_ARGS = ["--url-col", "URL", "--caption-col", "TEXT", "--allow-private-network", "--timeout", "2",
              "--retries", "0", "--samples-per-shard", "3", "--image-size", "64"]


def write_mixed_input(web, folder) -> tuple[list, str]:
    """The mixed-input table (every bad kind of row, and duplicates) at FOLDER/pairs.parquet; (rows, path)."""
    a = make_jpeg(400, 300, seed=101)
    web.add("/run/a.jpg", body=a, content_type="image/jpeg")
    web.add("/run/a-copy.jpg", body=a, content_type="image/jpeg")
    web.add("/run/a-small.jpg", body=make_jpeg(200, 150, seed=101, quality=60), content_type="image/jpeg")
    web.add("/run/b.jpg", body=make_jpeg(300, 400, seed=102), content_type="image/jpeg")
    for name in ("c", "d", "e"):
        web.add(f"/run/{name}.jpg", body=make_jpeg(100, 100, seed=110), content_type="image/jpeg")
    rows = _rows(web)
    table = pa.table({
        "URL": [r[0] for r in rows],
        "TEXT": [r[1] for r in rows],
        "expect": [r[2] or "kept" for r in rows],
        "similarity": [0.5] * len(rows),  # a user column with a reserved name
    })
    src = os.path.join(str(folder), "pairs.parquet")
    pq.write_table(table, src)
    return rows, src


@pytest.fixture(scope="module")
def mixed_run(web, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mixed")
    rows, src = write_mixed_input(web, tmp)
    out = tmp / "out"
    code = cli_main(["run", "--input", src, "--output", str(out), *MIXED_ARGS])
    assert code == 0
    return rows, out


def _pairs(out):
    return pq.read_table(sorted(glob.glob(os.path.join(out, "shards", "*.parquet")))).to_pylist() \
        if glob.glob(os.path.join(out, "shards", "*.parquet")) else []


def _rejects(out):
    files = sorted(glob.glob(os.path.join(out, "rejects", "*", "*.parquet")))
    return [r for f in files for r in pq.read_table(f).to_pylist()]


def test_every_row_ends_in_exactly_one_place(mixed_run):
    rows, out = mixed_run
    pairs, rejects = _pairs(out), _rejects(out)
    stats = json.load(open(os.path.join(out, "stats.json")))
    assert stats["input_rows"] == len(rows)
    assert stats["kept"] == len(pairs) and stats["rejected"] == len(rejects)
    assert len(pairs) + len(rejects) == len(rows)
    assert stats["accounted_for"] is True
    seen = sorted([p["source_row"] for p in pairs] + [r["source_row"] for r in rejects])
    assert seen == list(range(len(rows)))


def test_each_bad_kind_has_its_reason(mixed_run):
    rows, out = mixed_run
    got = {r["source_row"]: r["reason"] for r in _rejects(out)}
    kept = {p["source_row"] for p in _pairs(out)}
    for i, (_, _, expect) in enumerate(rows):
        if expect is None:
            assert i in kept, f"row {i} ({rows[i][0]}) should be kept, got {got.get(i)}"
        else:
            assert got.get(i) == expect, f"row {i} ({rows[i][0]}): expected {expect}, got {got.get(i)}"
    for r in _rejects(out):
        assert r["stage"] and r["reason"]
        assert r["expect"] == r["reason"]  # user columns carried into rejects


def test_samples_are_unique_and_carry_user_columns(mixed_run):
    _, out = mixed_run
    pairs = _pairs(out)
    assert len({p["url"] for p in pairs}) == len(pairs)
    assert len({p["sha256"] for p in pairs}) == len(pairs)
    assert all(p["expect"] == "kept" for p in pairs)
    assert all(p["src_similarity"] == 0.5 for p in pairs)  # clashing column carried under src_
    assert all(p["similarity"] is None for p in pairs)     # not scored: no --clip
    assert "a wide banner & logo" in {p["caption"] for p in pairs}  # entities decoded


def test_shards_open_with_webdataset_and_match_parquet(mixed_run):
    import webdataset as wds

    _, out = mixed_run
    sizes = json.load(open(os.path.join(out, "shards", "sizes.json")))
    tars = sorted(glob.glob(os.path.join(out, "shards", "*.tar")))
    assert [os.path.basename(t) for t in tars] == sorted(sizes)
    assert all(n == 3 for n in list(sizes.values())[:-1])  # every shard but the last is full
    samples = list(wds.WebDataset(tars, shardshuffle=False).decode("pil"))
    assert len(samples) == sum(sizes.values())
    by_key = {p["key"]: p for p in _pairs(out)}
    for s in samples:
        meta = s["json"]
        assert s["__key__"] == meta["key"] and s["txt"] == by_key[meta["key"]]["caption"]
        assert s["jpg"].size == (64, 64)  # border resize to --image-size


def test_sql_counts_match_tars(mixed_run):
    _, out = mixed_run
    sizes = json.load(open(os.path.join(out, "shards", "sizes.json")))
    proc = subprocess.run([sys.executable, "-m", "clipcurate.pipeline.cli", "sql", str(out),
                           "select count(*) as n from pairs", "--format", "csv"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[1] == str(sum(sizes.values()))
    proc = subprocess.run([sys.executable, "-m", "clipcurate.pipeline.cli", "sql", str(out),
                           "select reason, count(*) n from rejects group by 1 order by 1", "--format", "json"],
                          capture_output=True, text=True)
    reasons = {json.loads(line)["reason"]: json.loads(line)["n"] for line in proc.stdout.splitlines()}
    assert reasons["duplicate_pair"] == 1 and reasons["unsupported_scheme"] == 3


def test_private_network_refused_without_flag(web, tmp_path):
    web.add("/private-check.jpg", body=make_jpeg(100, 100, seed=5), content_type="image/jpeg")
    src = tmp_path / "in.csv"
    src.write_text(f"url,caption\n{web.url('/private-check.jpg')},a picture\n")
    out = tmp_path / "out"
    assert cli_main(["run", "--input", str(src), "--output", str(out)]) == 0
    rejects = _rejects(out)
    assert [r["reason"] for r in rejects] == ["private_address"]
    assert web.hit_count("/private-check.jpg") == 0


def test_report_of_the_run_shows_the_counts_of_stats_json_in_chromium(mixed_run, tmp_path):
    """The page a user opens after a real run, rendered by a real browser: its cards and its reasons
    table say what stats.json says."""
    import re
    import shutil
    import subprocess

    _, out = mixed_run
    binary = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
    if binary is None:
        pytest.skip("no chromium binary on PATH (Debian: apt-get install -y chromium)")
    dom = subprocess.run([binary, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'p'}",
                          "--dump-dom", "file://" + os.path.abspath(out / "report.html")],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    stats = json.load(open(out / "stats.json"))
    cards = dict((label, int(num.replace(",", ""))) for num, label in re.findall(
        r'<div class="num">([\d,]+)</div><div class="muted">([a-z ]+)</div>', dom.stdout))
    assert cards == {"input rows": stats["input_rows"], "kept": stats["kept"], "rejected": stats["rejected"]}
    assert f"Counts add up: {stats['kept']:,} kept + {stats['rejected']:,} rejected" in dom.stdout
    table = {(s, r): int(n.replace(",", "")) for s, r, n in re.findall(
        r"<tr><td>([^<]+)</td><td>([^<]+)</td><td class=\"n\">([\d,]+)</td></tr>", dom.stdout)}
    assert table == {(entry["stage"], reason): n for entry in stats["stages"] for reason, n in entry["reasons"].items()}
    assert len(table) >= 5
