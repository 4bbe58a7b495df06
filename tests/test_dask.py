"""The cluster path: the whole pipeline on Beam's DaskRunner (mended, pipeline/dask_runner.py) over a
local dask.distributed cluster of two worker processes gives the DirectRunner's output, byte for byte."""
from __future__ import annotations

import glob
import io
import json
import os
import tarfile

import numpy as np
import pyarrow.parquet as pq
import pytest

pytest.importorskip("distributed", reason="the dask extra (pip install '.[dask]') is not installed")

import apache_beam as beam  # noqa: E402
from apache_beam.options.pipeline_options import PipelineOptions  # noqa: E402
from apache_beam.testing.util import assert_that, equal_to  # noqa: E402

from clipcurate.pipeline.cli import main as cli_main  # noqa: E402
from conftest import TINY_EMBED_DIM  # noqa: E402
from test_run import MIXED_ARGS, write_mixed_input  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    import logging

    from distributed import LocalCluster

    c = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
                     silence_logs=logging.WARNING)
    yield c.scheduler_address
    c.close()


@pytest.fixture(scope="module")
def mixed_input(web, tmp_path_factory):
    return write_mixed_input(web, tmp_path_factory.mktemp("dask-input"))


def _files(out, pattern):
    return sorted(os.path.relpath(p, out) for p in glob.glob(os.path.join(out, pattern)))


def _tar_members(path):
    with tarfile.open(path) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]


def _counts(out):
    stats = json.load(open(os.path.join(out, "stats.json")))
    return stats["input_rows"], stats["kept"], stats["rejected"], stats["stages"]


def _run(src, out, *extra):
    return cli_main(["run", "--input", src, "--output", str(out), *MIXED_ARGS, *extra])


def test_dask_runner_output_is_byte_identical_to_the_direct_runner(mixed_input, cluster, tmp_path):
    rows, src = mixed_input
    direct, dask = tmp_path / "direct", tmp_path / "dask"
    assert _run(src, direct) == 0
    assert _run(src, dask, "--runner", "dask", "--dask-address", cluster) == 0
    parquet = _files(direct, "shards/*.parquet") + _files(direct, "rejects/*/*.parquet")
    assert parquet == _files(dask, "shards/*.parquet") + _files(dask, "rejects/*/*.parquet")
    assert any(p.startswith("rejects/") for p in parquet)
    for rel in parquet:
        assert (direct / rel).read_bytes() == (dask / rel).read_bytes(), rel
    tars = _files(direct, "shards/*.tar")
    assert tars and tars == _files(dask, "shards/*.tar")
    for rel in tars:
        assert _tar_members(direct / rel) == _tar_members(dask / rel), rel
    assert (direct / "shards" / "sizes.json").read_bytes() == (dask / "shards" / "sizes.json").read_bytes()
    assert _counts(direct) == _counts(dask)
    assert _counts(dask)[0] == len(rows)
    assert not (dask / "_next").exists()  # published


def test_runner_dask_starts_its_own_cluster_of_workers(mixed_input, tmp_path):
    rows, src = mixed_input
    assert _run(src, tmp_path / "out", "--runner", "dask", "--workers", "2") == 0
    input_rows, kept, rejected, _ = _counts(tmp_path / "out")
    assert input_rows == len(rows) == kept + rejected and kept > 0


def test_clip_scoring_runs_on_dask(mixed_input, cluster, tiny_model, tmp_path):
    _, src = mixed_input
    direct, dask = tmp_path / "direct", tmp_path / "dask"
    assert _run(src, direct, "--clip", tiny_model, "--device", "cpu") == 0
    assert _run(src, dask, "--clip", tiny_model, "--device", "cpu", "--runner", "dask", "--dask-address", cluster) == 0
    assert (dask / "selection.json").exists()
    kept_direct = pq.read_table(sorted(glob.glob(str(direct / "shards" / "*.parquet")))).to_pylist()
    kept_dask = pq.read_table(sorted(glob.glob(str(dask / "shards" / "*.parquet")))).to_pylist()
    assert [r["key"] for r in kept_dask] == [r["key"] for r in kept_direct]
    assert all(r["similarity"] is not None for r in kept_dask)
    assert np.allclose([r["similarity"] for r in kept_dask], [r["similarity"] for r in kept_direct], atol=1e-5)
    emb = sorted(glob.glob(str(dask / "shards" / "*.image_embedding.npy")))
    assert emb and np.load(io.BytesIO(open(emb[0], "rb").read())).shape[1] == TINY_EMBED_DIM


def test_tagged_outputs_side_inputs_and_every_sink_on_the_mended_runner(cluster, tmp_path):
    """What Beam's own DaskRunner gets wrong: each output of a multi-output ParDo reaches only its
    consumers, a side input is whole, and a sink that is not the last transform still runs."""
    class Split(beam.DoFn):
        def process(self, x):
            if x % 3 == 0:
                yield beam.pvalue.TaggedOutput("rejects", -x)
            else:
                yield x

    options = PipelineOptions(["--runner=clipcurate.pipeline.dask_runner.DaskRunner", f"--dask_client_address={cluster}"])
    marker = tmp_path / "side-sink"
    with beam.Pipeline(options=options) as p:
        parts = p | beam.Create(list(range(30))) | beam.Reshuffle() | beam.ParDo(Split()).with_outputs("rejects", main="main")
        total = parts.main | beam.combiners.Count.Globally()
        _ = total | "Sink" >> beam.Map(lambda n: marker.write_text(str(n)))
        assert_that(parts.main | "WithTotal" >> beam.Map(lambda x, n: (x, n), beam.pvalue.AsSingleton(total)),
                    equal_to([(x, 20) for x in range(30) if x % 3]), label="main")
        assert_that(parts.rejects, equal_to([-x for x in range(30) if x % 3 == 0]), label="rejects")
        grouped = parts.main | beam.Map(lambda x: (x % 2, x)) | beam.GroupByKey() | beam.MapTuple(lambda k, v: (k, sorted(v)))
        assert_that(grouped, equal_to([(0, [x for x in range(30) if x % 3 and x % 2 == 0]),
                                       (1, [x for x in range(30) if x % 3 and x % 2 == 1])]), label="groups")
    assert marker.read_text() == "20"


@pytest.mark.parametrize("name", ["dask", "DaskRunner", "apache_beam.runners.dask.dask_runner.DaskRunner"])
def test_every_name_of_the_dask_runner_gets_the_mended_one(name):
    import argparse

    from clipcurate.pipeline.cli.run.config import beam_options

    args = argparse.Namespace(runner=name, dask_address="tcp://127.0.0.1:1", extra_args=["--dask_npartitions", "3"],
                              workers=1)
    from apache_beam.options.pipeline_options import StandardOptions
    from apache_beam.runners.dask.dask_runner import DaskOptions

    options = beam_options(args)
    assert options.view_as(StandardOptions).runner == "clipcurate.pipeline.dask_runner.DaskRunner"
    dask = options.view_as(DaskOptions).get_all_options(drop_default=True, current_only=True)
    assert dask == {"address": "tcp://127.0.0.1:1", "npartitions": 3}


def test_dask_address_needs_the_dask_runner(mixed_input, tmp_path, capsys):
    _, src = mixed_input
    assert _run(src, tmp_path / "out", "--dask-address", "tcp://127.0.0.1:1") == 2
    assert "--dask-address needs --runner dask" in capsys.readouterr().err
