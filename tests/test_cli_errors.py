"""Bad command lines end with one clear line and exit code 2, never a traceback."""
from __future__ import annotations

import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest


def clipcurate(*args, stdin=None):
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1")
    return subprocess.run([sys.executable, "-m", "clipcurate.pipeline.cli", *args], capture_output=True,
                          text=True, input=stdin, env=env, timeout=120)


def one_line_error(proc, *needles):
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip() and "apitools" not in line]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture()
def table(tmp_path):
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"url": ["http://127.0.0.1:9/a.jpg"], "text": ["a"]}), path)
    return path


def test_missing_input_file(tmp_path):
    one_line_error(clipcurate("run", "--input", str(tmp_path / "nope.parquet"), "--output", str(tmp_path / "o")),
                   "does not exist")


def test_missing_column(table, tmp_path):
    one_line_error(clipcurate("run", "--input", str(table), "--output", str(tmp_path / "o")), "'caption'", "--caption-col")


def test_unwritable_output(table, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    one_line_error(clipcurate("run", "--input", str(table), "--caption-col", "text", "--output", str(blocker / "out")),
                   "not writable")


def test_bad_option_values(table, tmp_path):
    one_line_error(clipcurate("run", "--input", str(table), "--caption-col", "text", "--output", str(tmp_path / "o"),
                              "--samples-per-shard", "0"), "--samples-per-shard")


def test_sql_on_a_folder_that_is_not_an_output(tmp_path):
    one_line_error(clipcurate("sql", str(tmp_path), "select 1"), "not a clipcurate output")


def test_sql_bad_query(tmp_path):
    (tmp_path / "shards").mkdir()
    (tmp_path / "rejects").mkdir()
    one_line_error(clipcurate("sql", str(tmp_path), "select nope from pairs"), "query failed")


def test_unknown_command():
    proc = clipcurate("frobnicate")
    assert proc.returncode == 2 and "unknown command" in proc.stderr


def test_progress_lines_on_stderr(web, tmp_path):
    from webserver import make_jpeg

    urls = [web.add(f"/progress/{i}.jpg", body=make_jpeg(60, 60, seed=700 + i), content_type="image/jpeg", delay=0.1)
            for i in range(12)]
    src = tmp_path / "in.csv"
    src.write_text("url,caption\n" + "".join(f"{u},picture number {i}\n" for i, u in enumerate(urls)))
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", CLIPCURATE_PROGRESS_INTERVAL="0.2")
    proc = subprocess.run([sys.executable, "-m", "clipcurate.pipeline.cli", "run", "--input", str(src), "--output",
                           str(tmp_path / "out"), "--allow-private-network", "--threads", "2",
                           "--per-host-concurrency", "2"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("progress")]
    assert lines and "download 12" in lines[-1] and "/s)" in lines[-1]


def test_progress_stops_when_an_in_process_run_returns(tmp_path, capsys, monkeypatch):
    """A notebook or test session that calls the CLI gets no progress lines after the run is over."""
    import time

    from clipcurate.pipeline.cli import main
    from clipcurate.pipeline.stages.base import PROGRESS

    table = tmp_path / "in.parquet"
    pq.write_table(pa.table({"url": [f"http://example.com/{i}.jpg" for i in range(50)],
                             "caption": [f"a photo number {i}" for i in range(50)]}), table)
    monkeypatch.setattr(PROGRESS, "enabled", True)
    monkeypatch.setattr(PROGRESS, "interval", 0.05)
    for n in range(2):
        assert main(["run", "--input", str(table), "--output", str(tmp_path / f"o{n}"), "--until", "prompts"]) == 0
        captured = capsys.readouterr()
        lines = [line for line in captured.err.splitlines() if line.startswith("progress")]
        assert lines and "normalize 50 " in lines[-1]  # the last counts, whole, when the run ends
        assert "50 input rows" in captured.out
        assert PROGRESS.thread is None
        time.sleep(0.3)
        assert "progress" not in capsys.readouterr().err  # nothing more once the run has returned


def test_a_mistyped_option_is_an_error_but_beam_options_pass(table, tmp_path):
    one_line_error(clipcurate("run", "--input", str(table), "--caption-col", "text", "--output", str(tmp_path / "o"),
                              "--languges", "en"), "--languges")
    from clipcurate.pipeline.cli.run import unknown_beam_args

    assert unknown_beam_args(["--project", "P", "--region", "r", "--temp_location", "gs://b/t",
                              "--setup_file", "./setup.py", "--flink_master", "host:8081"]) == []


def test_cli_calls_do_not_pile_up_root_logger_filters(tmp_path, capsys):
    """A long-lived process (notebook, test session) calling the CLI many times keeps one filter."""
    import logging

    from clipcurate.pipeline.cli import main

    before = len(logging.getLogger().filters)
    for _ in range(3):
        assert main(["report", str(tmp_path / "missing")]) == 2
    assert len(logging.getLogger().filters) - before <= 1
