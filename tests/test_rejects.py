"""The rejects sink: per stage, key-range shards of bounded size, the same files for the same input."""
from __future__ import annotations

import glob
import os

import apache_beam as beam
import pyarrow.parquet as pq
from apache_beam.testing.test_pipeline import TestPipeline

from clipcurate.pipeline.sinks.rejects import WriteRejects
from clipcurate.pipeline.sinks.shards import WriteConfig


def _rejects():
    rows = [{"url": f"http://x/{i}", "caption": f"c{i}", "source_file": "in.parquet", "source_row": i,
             "key": f"{i:024x}", "stage": "download", "reason": "http_error", "error_message": "HTTP 404"}
            for i in range(200)]
    rows += [{"url": None, "caption": None, "source_file": "in.parquet", "source_row": 1000 + i,
              "stage": "normalize", "reason": "missing_url", "error_message": ""} for i in range(3)]
    return rows


def _write(out, rows_per_file):
    with TestPipeline(options=beam.options.pipeline_options.PipelineOptions(["--runner=DirectRunner"])) as p:
        _ = p | beam.Create(_rejects()) | WriteRejects(WriteConfig(output_dir=str(out),
                                                                   reject_rows_per_file=rows_per_file))
    return {os.path.relpath(f, out): open(f, "rb").read() for f in sorted(glob.glob(str(out / "rejects" / "*" / "*")))}


def test_a_big_stage_is_cut_into_bounded_files_and_nothing_is_lost(tmp_path):
    files = _write(tmp_path / "a", rows_per_file=40)
    download = [f for f in files if f.startswith("rejects/download/")]
    assert [f for f in files if f.startswith("rejects/normalize/")] == ["rejects/normalize/00000.parquet"]
    assert 3 <= len(download) <= 5  # 200 rows / 40 a file -> 5 key ranges (an empty range writes no file)
    tables = [pq.read_table(tmp_path / "a" / f) for f in download]
    assert max(t.num_rows for t in tables) <= 80  # bounded: a hash range, not one group of all
    rows = [r for t in tables for r in t.to_pylist()]
    assert sorted(r["source_row"] for r in rows) == list(range(200))
    for t in tables:  # input order inside each file
        assert t.column("source_row").to_pylist() == sorted(t.column("source_row").to_pylist())


def test_the_same_rejects_give_the_same_files(tmp_path):
    assert _write(tmp_path / "a", rows_per_file=40) == _write(tmp_path / "b", rows_per_file=40)
