"""Ingest: every table format reads into the same pairs; unparseable lines become malformed_row rejects."""
from __future__ import annotations

import gzip
import json

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from clipcurate.pipeline.sources.tables import FileReader, IngestConfig, InputError, check_input, expand_inputs
from clipcurate.pipeline.stages.normalize import Normalize
from clipcurate.filters.normalize import NormalizeConfig

ROWS = [("http://a.example/1.jpg", "one", "x"), ("http://a.example/2.jpg", "two, with comma", "y")]


def _write(tmp_path, fmt):
    if fmt == "parquet":
        path = tmp_path / "in.parquet"
        pq.write_table(pa.table({"u": [r[0] for r in ROWS], "t": [r[1] for r in ROWS], "extra": [r[2] for r in ROWS]}), path)
    elif fmt in ("csv", "csv.gz"):
        text = "u,t,extra\n" + "".join(f'{u},"{t}",{e}\n' for u, t, e in ROWS)
        path = tmp_path / f"in.{fmt}"
        path.write_bytes(gzip.compress(text.encode()) if fmt.endswith(".gz") else text.encode())
    elif fmt == "tsv":
        path = tmp_path / "in.tsv"
        path.write_text("u\tt\textra\n" + "".join(f"{u}\t{t}\t{e}\n" for u, t, e in ROWS))
    else:
        text = "".join(json.dumps({"u": u, "t": t, "extra": e}) + "\n" for u, t, e in ROWS)
        path = tmp_path / f"in.{fmt}"
        path.write_bytes(gzip.compress(text.encode()) if fmt.endswith(".gz") else text.encode())
    return path


def _read(config, schema, path):
    reader = FileReader(config, schema)
    batches = [b for kind, b in reader.read(str(path)) if kind == "batch"]
    bad = [b for kind, b in reader.read(str(path)) if kind == "malformed"]
    rows = [r for b in batches for r in b.to_pylist()]
    return rows, bad


@pytest.mark.parametrize("fmt", ["parquet", "csv", "csv.gz", "tsv", "jsonl", "jsonl.gz"])
def test_every_format_reads_the_same_pairs(tmp_path, fmt):
    path = _write(tmp_path, fmt)
    config = IngestConfig(files=expand_inputs([str(path)]), url_col="u", caption_col="t")
    rows, bad = _read(config, check_input(config), path)
    assert bad == []
    assert [(r["url"], r["caption"], r["extra"]) for r in rows] == ROWS
    assert [r["source_row"] for r in rows] == [0, 1]


def test_bad_lines_become_malformed_rows(tmp_path):
    csv_path = tmp_path / "bad.csv"
    csv_path.write_text("url,caption\nhttp://a/1.jpg,one\nhttp://a/2.jpg,two,three\nhttp://a/3.jpg,three\n")
    config = IngestConfig(files=(str(csv_path),))
    rows, bad = _read(config, check_input(config), csv_path)
    assert [(r["url"], r["source_row"]) for r in rows] == [("http://a/1.jpg", 0), ("http://a/3.jpg", 2)]
    assert [(b["reason"], b["source_row"]) for b in bad] == [("malformed_row", 1)]

    jsonl = tmp_path / "bad.jsonl"
    jsonl.write_text('{"url": "http://a/1.jpg", "caption": "one"}\n{not json\n[1, 2]\n{"url": "http://a/4.jpg", "caption": "four"}\n')
    config = IngestConfig(files=(str(jsonl),))
    rows, bad = _read(config, check_input(config), jsonl)
    assert [(r["url"], r["source_row"]) for r in rows] == [("http://a/1.jpg", 0), ("http://a/4.jpg", 3)]
    assert sorted(b["source_row"] for b in bad) == [1, 2]


def test_columns_checked_up_front(tmp_path):
    path = _write(tmp_path, "parquet")
    with pytest.raises(InputError, match="'caption'.*--caption-col"):
        check_input(IngestConfig(files=(str(path),), url_col="u"))
    with pytest.raises(InputError, match="does not exist"):
        expand_inputs([str(tmp_path / "missing.csv")])
    with pytest.raises(InputError, match="no input file matches"):
        expand_inputs([str(tmp_path / "*.nothing")])


def test_types_that_disagree_across_files_become_text(tmp_path):
    pq.write_table(pa.table({"url": ["http://a/1.jpg"], "caption": ["a"], "n": [1]}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"url": ["http://a/2.jpg"], "caption": ["b"], "n": ["two"]}), tmp_path / "b.parquet")
    config = IngestConfig(files=expand_inputs([str(tmp_path / "*.parquet")]))
    schema = check_input(config)
    assert schema.field("n").type == pa.string()


def test_normalize_stage_routes_rejects():
    rows = [{"url": "HTTP://Example.COM/a.jpg#frag", "caption": " a &amp; b ", "source_file": "f", "source_row": 0},
            {"url": "javascript:alert(1)", "caption": "x", "source_file": "f", "source_row": 1}]
    with TestPipeline(runner="DirectRunner") as p:
        kept, rejects = p | beam.Create(rows) | Normalize(NormalizeConfig())
        assert_that(kept | "rows" >> beam.FlatMap(lambda batch: batch) | "k" >> beam.Map(lambda r: (r["url"], r["caption"], len(r["key"]))),
                    equal_to([("http://example.com/a.jpg", "a & b", 24)]), label="kept")
        assert_that(rejects | "r" >> beam.Map(lambda r: (r["stage"], r["reason"], r["source_row"])),
                    equal_to([("normalize", "unsupported_scheme", 1)]), label="rejects")
