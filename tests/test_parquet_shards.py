"""--output-format parquet|both: Parquet shards that hold the images, read back by Hugging Face datasets
(offline) as PIL images, by DuckDB, and by the report; the tar shards of `both` agree with them."""
from __future__ import annotations

import glob
import io
import json
import os
import tarfile

import duckdb
import pyarrow.parquet as pq
import pytest
from PIL import Image

from clipcurate.pipeline.cli import main as cli_main
from test_run import MIXED_ARGS, write_mixed_input


@pytest.fixture(scope="module")
def runs(web, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("parquet-shards")
    _, src = write_mixed_input(web, tmp)
    outs = {}
    for fmt in ("parquet", "both"):
        outs[fmt] = tmp / fmt
        assert cli_main(["run", "--input", src, "--output", str(outs[fmt]), *MIXED_ARGS, "--output-format", fmt]) == 0
    return outs


def _tar_samples(out) -> dict:
    found = {}
    for path in sorted(glob.glob(str(out / "shards" / "*.tar"))):
        with tarfile.open(path) as tar:
            for m in tar.getmembers():
                key, ext = m.name.rsplit(".", 1)
                found.setdefault(key, {})[ext] = tar.extractfile(m).read()
    return found


def test_hugging_face_datasets_reads_images_and_captions(runs, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import datasets

    files = sorted(glob.glob(str(runs["both"] / "shards" / "*.parquet")))
    ds = datasets.load_dataset("parquet", data_files=files, split="train", cache_dir=str(tmp_path / "hf"))
    assert isinstance(ds.features["image"], datasets.Image)
    tars = _tar_samples(runs["both"])
    assert len(ds) == len(tars) >= 4
    for sample in ds:
        assert isinstance(sample["image"], Image.Image) and sample["image"].size == (64, 64)
        assert sample["caption"] == tars[sample["key"]]["txt"].decode()
    raw = ds.cast_column("image", datasets.Image(decode=False))
    assert all(s["image"]["bytes"] == tars[s["key"]]["jpg"] and s["image"]["path"] == f"{s['key']}.jpg"
               for s in raw)


def test_parquet_only_writes_no_tar_and_duckdb_and_report_read_it(runs):
    out = runs["parquet"]
    assert not glob.glob(str(out / "shards" / "*.tar"))
    files = sorted(glob.glob(str(out / "shards" / "*.parquet")))
    sizes = json.load(open(out / "shards" / "sizes.json"))
    assert sorted(sizes) == [os.path.basename(f) for f in files]
    count, decodable = duckdb.connect().execute(
        f"select count(*), count(image.bytes) from read_parquet({[str(f) for f in files]})").fetchone()
    assert count == decodable == sum(sizes.values()) == json.load(open(out / "stats.json"))["kept"]
    first = pq.read_table(files[0]).to_pylist()[0]
    Image.open(io.BytesIO(first["image"]["bytes"])).verify()
    assert pq.ParquetFile(files[0]).metadata.row_group(0).num_rows <= 1000  # small row groups: random access
    # same rows and bytes as the `both` run's Parquet
    both = pq.read_table(sorted(glob.glob(str(runs["both"] / "shards" / "*.parquet"))))
    assert pq.read_table(files).equals(both)
    report = (out / "report.html").read_text()
    assert report.count("data:image/jpeg;base64,") >= 4  # kept thumbnails come from the image column
