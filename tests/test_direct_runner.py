"""The DirectRunner as clipcurate starts it: no Prism try, and worker processes that exit fast but
keep their exit status and their last output."""
from __future__ import annotations

import logging
import subprocess
import sys

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to

from clipcurate.pipeline import direct_runner


def test_a_direct_run_goes_straight_to_the_fn_api_runner(caplog):
    options = PipelineOptions(["--runner=DirectRunner"])
    runner = direct_runner.runner_for(options)
    assert runner is not None
    with caplog.at_level(logging.INFO):
        with beam.Pipeline(runner=runner, options=options) as p:
            assert_that(p | beam.Create([1, 2, 3]) | beam.Map(lambda x: x * 2), equal_to([2, 4, 6]))
    assert not [r for r in caplog.records if "Prism" in r.getMessage()]


def test_other_runners_are_left_to_beam():
    assert direct_runner.runner_for(PipelineOptions(["--runner=DataflowRunner"])) is None
    assert direct_runner.runner_for(PipelineOptions(["--runner=FlinkRunner"])) is None


def _exit_with(body: str) -> subprocess.CompletedProcess:
    code = ("import atexit\nfrom clipcurate.pipeline.direct_runner import _exit_now\n"
            "atexit.register(_exit_now)\n" + body)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_a_fast_exit_keeps_a_failure_and_the_buffered_output():
    ok = _exit_with("print('all done', end='')\n")
    assert ok.returncode == 0 and ok.stdout == "all done"
    failed = _exit_with("print('half', end='')\nraise RuntimeError('the harness failed')\n")
    assert failed.returncode == 1
    assert failed.stdout == "half" and "the harness failed" in failed.stderr


def test_only_a_worker_started_by_clipcurate_exits_fast(monkeypatch):
    monkeypatch.setenv(direct_runner.FAST_EXIT_ENV, "1")
    assert not direct_runner._in_fast_exit_worker()  # this process's __main__ is pytest, not Beam's harness
    with direct_runner.worker_env():
        assert direct_runner.FAST_EXIT_ENV in __import__("os").environ
    monkeypatch.delenv(direct_runner.FAST_EXIT_ENV)
    with direct_runner.worker_env():
        pass
    assert direct_runner.FAST_EXIT_ENV not in __import__("os").environ


def test_the_warm_up_imports_what_the_launcher_names_and_never_raises(monkeypatch):
    import os
    import types

    calls = []
    module = types.ModuleType("clipcurate_warm_probe")
    module.load = lambda: calls.append("load")
    module.broken = lambda: 1 / 0
    monkeypatch.setitem(__import__("sys").modules, "clipcurate_warm_probe", module)
    direct_runner._warm_up("clipcurate_warm_probe:load,clipcurate_warm_probe:broken")
    direct_runner._warm_up("no_such_module_here:load")
    assert calls == ["load"]
    with direct_runner.worker_env(("clipcurate.pipeline.imports:load_for_download",)):
        assert os.environ[direct_runner.WARM_ENV] == "clipcurate.pipeline.imports:load_for_download"
    assert direct_runner.WARM_ENV not in os.environ



def test_the_launcher_s_garbage_collector_thresholds_reach_its_workers(monkeypatch):
    import gc

    from clipcurate.pipeline.cli.run import GC_ENV, GC_THRESHOLDS, tune_gc

    before = gc.get_threshold()
    monkeypatch.delenv(GC_ENV, raising=False)
    try:
        tune_gc()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert __import__("os").environ[GC_ENV] == ",".join(map(str, GC_THRESHOLDS))
        gc.set_threshold(700, 10, 10)
        direct_runner._launcher_gc_thresholds()  # what a worker does with the launcher's environment
        assert gc.get_threshold() == GC_THRESHOLDS
        monkeypatch.setenv(GC_ENV, "1000,5,5")  # the user's own choice wins
        tune_gc()
        assert gc.get_threshold() == (1000, 5, 5)
    finally:
        gc.set_threshold(*before)
