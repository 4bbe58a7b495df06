"""Object-store paths for real: input and output on s3:// at a local S3 server (moto's server mode on
127.0.0.1), through Beam's S3 filesystem; every file of the output contract is there and readable,
and ``clipcurate sql s3://...`` answers."""
from __future__ import annotations

import io
import json
import logging
import tarfile

import pyarrow.parquet as pq
import pytest

pytest.importorskip("moto.server", reason="moto[server] (the test extra) is not installed")
pytest.importorskip("boto3", reason="the aws extra (pip install '.[aws]') is not installed")

from clipcurate.pipeline import files as fs  # noqa: E402
from clipcurate.pipeline.cli import main as cli_main  # noqa: E402
from test_run import MIXED_ARGS, write_mixed_input  # noqa: E402

BUCKET = "clipcurate-test"


@pytest.fixture(scope="module")
def s3():
    """A local S3 server with one bucket; yields the Beam flags that reach it."""
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{server._server.server_address[1]}"
    flags = ["--s3_endpoint_url", url, "--s3_access_key_id", "testing", "--s3_secret_access_key", "testing",
             "--s3_region_name", "us-east-1"]
    boto3.client("s3", endpoint_url=url, aws_access_key_id="testing", aws_secret_access_key="testing",
                 region_name="us-east-1").create_bucket(Bucket=BUCKET)
    fs.configure(flags)
    yield flags
    fs.configure([])
    server.stop()


@pytest.fixture(scope="module")
def s3_run(s3, web, tmp_path_factory):
    rows, local = write_mixed_input(web, tmp_path_factory.mktemp("s3-input"))
    src = f"s3://{BUCKET}/input/pairs.parquet"
    fs.atomic_write(src, open(local, "rb").read())
    out = f"s3://{BUCKET}/out"
    assert cli_main(["run", "--input", src, "--output", out, *MIXED_ARGS, *s3]) == 0
    return rows, out


def test_a_run_reads_and_writes_s3(s3_run):
    rows, out = s3_run
    stats = json.loads(fs.read_bytes(fs.join(out, "stats.json")))
    assert stats["input_rows"] == len(rows) == stats["kept"] + stats["rejected"] and stats["kept"] > 0
    sizes = json.loads(fs.read_bytes(fs.join(out, "shards", "sizes.json")))
    tars = fs.match(fs.join(out, "shards", "*.tar"))
    assert sorted(fs.basename(t) for t in tars) == sorted(sizes) and sum(sizes.values()) == stats["kept"]
    for tar_path in tars:
        with tarfile.open(fileobj=io.BytesIO(fs.read_bytes(tar_path))) as tar:
            names = tar.getnames()
        keys = {n.rsplit(".", 1)[0] for n in names}
        assert len(keys) == sizes[fs.basename(tar_path)]
        assert {n.rsplit(".", 1)[1] for n in names} == {"jpg", "txt", "json"}
        meta = pq.read_table(io.BytesIO(fs.read_bytes(tar_path[:-4] + ".parquet")))
        assert sorted(meta.column("key").to_pylist()) == sorted(keys)
        assert set(meta.column("source_file").to_pylist()) == {f"s3://{BUCKET}/input/pairs.parquet"}
    rejects = fs.match(fs.join(out, "rejects", "*", "*.parquet"))
    assert rejects and all(fs.basename(p) == "00000.parquet" for p in rejects)  # rejects/STAGE/NNNNN.parquet
    assert sum(pq.read_table(io.BytesIO(fs.read_bytes(p))).num_rows for p in rejects) == stats["rejected"]
    assert b"<html" in fs.read_bytes(fs.join(out, "report.html")).lower()
    assert not fs.match(fs.join(out, "_next", "**"))  # published, nothing left half way
    assert not [p for p in fs.match(fs.join(out, "**")) if ".tmp-" in p]


def test_sql_queries_an_s3_output(s3_run, s3, capsys):
    rows, out = s3_run
    capsys.readouterr()
    assert cli_main(["sql", out, "select count(*) as n from pairs", "--format", "json", *s3]) == 0
    kept = json.loads(capsys.readouterr().out)["n"]
    assert cli_main(["sql", out, "select reason, count(*) as n from rejects group by 1 order by 1", "--format", "json",
                     *s3]) == 0
    reasons = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert kept + sum(r["n"] for r in reasons) == len(rows)
    assert {"duplicate_url", "http_error", "not_an_image"} <= {r["reason"] for r in reasons}


def test_a_second_run_on_s3_replaces_the_first(s3_run, s3, web, tmp_path):
    _, out = s3_run
    before = json.loads(fs.read_bytes(fs.join(out, "stats.json")))
    src = f"s3://{BUCKET}/input/pairs.parquet"
    assert cli_main(["run", "--input", src, "--output", out, *MIXED_ARGS, "--samples-per-shard", "100", *s3]) == 0
    sizes = json.loads(fs.read_bytes(fs.join(out, "shards", "sizes.json")))
    assert list(sizes) == ["00000.tar"] and sizes["00000.tar"] == before["kept"]
    assert [fs.basename(p) for p in fs.match(fs.join(out, "shards", "*.tar"))] == ["00000.tar"]


def test_a_metadata_run_writes_its_pairs_files_to_s3(s3_run, s3, tmp_path):
    """--until on an object store: the pairs files are made from pieces spilled to S3 and published;
    no piece is left behind, and the files hold every row the stats count as kept."""
    src = f"s3://{BUCKET}/input/pairs.parquet"
    out = f"s3://{BUCKET}/meta"
    assert cli_main(["run", "--input", src, "--output", out, "--url-col", "URL", "--caption-col", "TEXT",
                     "--until", "prompts", *s3]) == 0
    stats = json.loads(fs.read_bytes(fs.join(out, "stats.json")))
    files = fs.match(fs.join(out, "pairs", "*.parquet"))
    tables = [pq.read_table(io.BytesIO(fs.read_bytes(f))) for f in files]
    keys = [k for t in tables for k in t.column("key").to_pylist()]
    assert files and len(keys) == len(set(keys)) == stats["kept"] > 0
    assert not [f for f in fs.match(fs.join(out, "**")) if "_pieces" in f or "_next" in f]
