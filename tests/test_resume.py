"""A run killed with SIGKILL and run again equals an uninterrupted run; --retry-failed merges transient failures."""
from __future__ import annotations

import filecmp
import glob
import json
import os
import signal
import subprocess
import sys
import tarfile
import time

import pyarrow as pa
import pyarrow.parquet as pq

from clipcurate.pipeline.cli import main as cli_main
from webserver import make_jpeg

N = 40


def _input(web, tmp_path):
    urls = []
    for i in range(N):
        urls.append(web.add(f"/resume/{i}.jpg", body=make_jpeg(80 + i, 60, seed=500 + i), content_type="image/jpeg",
                            delay=0.15))
    urls.append(web.url("/404"))
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"url": urls, "caption": [f"picture {i}" for i in range(len(urls))]}), src)
    return src


def _args(src, out):
    return ["run", "--input", str(src), "--output", str(out), "--allow-private-network", "--threads", "2",
            "--per-host-concurrency", "2", "--work-unit-rows", "4", "--samples-per-shard", "7", "--image-size", "48",
            "--retries", "0"]


def _tar_contents(path):
    with tarfile.open(path) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]


def _same_output(a, b):
    names = sorted(os.path.relpath(p, a) for p in glob.glob(os.path.join(a, "shards", "*")) + glob.glob(os.path.join(a, "rejects", "*", "*")))
    assert names == sorted(os.path.relpath(p, b) for p in glob.glob(os.path.join(b, "shards", "*")) + glob.glob(os.path.join(b, "rejects", "*", "*")))
    for name in names:
        pa_, pb = os.path.join(a, name), os.path.join(b, name)
        if name.endswith(".tar"):
            assert _tar_contents(pa_) == _tar_contents(pb), name
        else:
            assert filecmp.cmp(pa_, pb, shallow=False), f"{name} differs"
    return names


def test_killed_run_resumes_to_the_same_result(web, tmp_path):
    src = _input(web, tmp_path)
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert cli_main(_args(src, straight)) == 0

    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1")
    proc = subprocess.Popen([sys.executable, "-m", "clipcurate.pipeline.cli", *_args(src, killed)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    units = os.path.join(killed, "_work", "download")
    deadline = time.time() + 120
    while time.time() < deadline and len(glob.glob(os.path.join(units, "*.parquet"))) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(glob.glob(os.path.join(units, "*.parquet")))
    assert 3 <= done_before < 11, done_before  # killed half way: some units finished, not all
    assert not os.path.exists(killed / "stats.json")

    hits_before = sum(web.hit_count(f"/resume/{i}.jpg") for i in range(N))
    assert cli_main(_args(src, killed)) == 0
    refetched = sum(web.hit_count(f"/resume/{i}.jpg") for i in range(N)) - hits_before
    assert refetched <= N - 4 * (done_before - 1)  # finished units were not downloaded again

    names = _same_output(straight, killed)
    assert any(n.endswith(".tar") for n in names)
    stats = json.load(open(killed / "stats.json"))
    assert stats["kept"] == N and stats["accounted_for"]
    assert not glob.glob(os.path.join(killed, "shards", "*.tmp-*"))


def test_same_input_same_bytes(web, tmp_path):
    src = _input(web, tmp_path)
    a, b = tmp_path / "a", tmp_path / "b"
    assert cli_main(_args(src, a) + ["--work-unit-rows", "50"]) == 0
    assert cli_main(_args(src, b) + ["--work-unit-rows", "50"]) == 0
    _same_output(a, b)


def test_retry_failed_merges_transient_failures(web, tmp_path):
    flaky = web.add("/resume/flaky.jpg", body=make_jpeg(90, 90, seed=777), content_type="image/jpeg",
                    fail_first=1, fail_status=503)
    steady = web.add("/resume/steady.jpg", body=make_jpeg(90, 91, seed=778), content_type="image/jpeg")
    src = tmp_path / "in.csv"
    src.write_text(f"url,caption\n{flaky},flaky picture\n{steady},steady picture\n{web.url('/404')},gone\n")
    out = tmp_path / "out"
    assert cli_main(["run", "--input", str(src), "--output", str(out), "--allow-private-network", "--retries", "0"]) == 0
    stats = json.load(open(out / "stats.json"))
    assert stats["kept"] == 1 and stats["rejected"] == 2
    steady_hits = web.hit_count("/resume/steady.jpg")
    gone_hits = web.hit_count("/404")

    assert cli_main(["run", "--retry-failed", str(out)]) == 0
    stats = json.load(open(out / "stats.json"))
    assert stats["kept"] == 2 and stats["rejected"] == 1 and stats["accounted_for"]
    assert web.hit_count("/resume/steady.jpg") == steady_hits  # only the transient failure was fetched again
    assert gone_hits >= 1 and web.hit_count("/404") == gone_hits  # a 404 is permanent: not fetched again
    rejects = pq.read_table(out / "rejects" / "download" / "00000.parquet").to_pylist()
    assert [r["reason"] for r in rejects] == ["http_error"] and "404" in rejects[0]["error_message"]


def test_other_filters_rerun_from_the_saved_downloads(web, tmp_path):
    """Options that act after the download, or that drop rows before it, fetch nothing already saved;
    a download option (the image size) starts the downloads over. The saved units are Parquet, not pickle."""
    src = _input(web, tmp_path)
    out = tmp_path / "out"
    assert cli_main(_args(src, out)) == 0
    units = glob.glob(os.path.join(out, "_work", "download", "*"))
    assert units and all(u.endswith(".parquet") for u in units)
    assert sum(pq.read_table(u).num_rows for u in units) == N + 1  # every row's result, the 404 too

    def hits():
        return sum(web.hit_count(f"/resume/{i}.jpg") for i in range(N)) + web.hit_count("/404")

    before = hits()
    assert cli_main(_args(src, out) + ["--max-aspect-ratio", "1.5", "--no-near-dedup"]) == 0
    assert hits() == before
    stats = json.load(open(out / "stats.json"))
    assert stats["kept"] == sum((80 + i) / 60 <= 1.5 for i in range(N)) < N  # the new filter did act
    assert cli_main(_args(src, out) + ["--min-words", "2", "--max-words", "2"]) == 0  # same rows, other filter
    assert hits() == before
    assert cli_main(_args(src, out) + ["--image-size", "40"]) == 0
    assert hits() == before + N + 1
