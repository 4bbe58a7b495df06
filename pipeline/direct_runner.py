"""Beam's DirectRunner as ``clipcurate run`` starts it: the same runner, with two fixed costs removed.

1. Beam 2.77's DirectRunner first tries the PrismRunner, which downloads the Prism binary from
   GitHub; offline (or behind a proxy) that fails and the runner falls back to the FnApiRunner,
   ~0.7 s later and after a page of log noise. ``runner_for`` gives a DirectRunner told to skip
   that try (``is_interactive()``: its only effect in 2.77 is to rule Prism out), so a run goes
   straight to the FnApiRunner it would have ended on anyway.
2. With ``--workers N`` the FnApiRunner runs N worker processes and, at the end, closes them one
   after the other. Each then tears down its ~2,700 modules (cv2, albumentations, scipy, pandas,
   Beam), ~0.7 s a process, while the launcher waits. ``exit_fast_when_done`` (called by the first
   clipcurate stage a worker builds) makes such a worker leave with ``os._exit`` once Beam's harness
   has returned and every non-daemon thread has ended: stdio is flushed and the exit status kept,
   only the module teardown is skipped. It acts only in a Beam SDK worker process started by this
   module's runner (``FAST_EXIT_ENV`` in its environment), never on Dataflow, Flink or Spark.
3. The same hook starts a background import of what a later stage will load in its ``setup``
   (``worker_env(warm=...)``: img2dataset's resizer and downloader, cv2, ~0.7 s a process): the
   runner runs one fused stage at a time, so a worker sits idle through the first stages while the
   launcher orchestrates, and the download stage then starts with its modules loaded instead of
   every worker importing them at once on its critical path. The hook also applies the garbage
   collector's thresholds the launcher chose (``GC_ENV``).
"""
from __future__ import annotations

import atexit
import gc
import importlib
import os
import sys
import threading

FAST_EXIT_ENV = "CLIPCURATE_FAST_WORKER_EXIT"
GC_ENV = "CLIPCURATE_GC_THRESHOLDS"  # set by the launcher (cli.run.tune_gc), applied in its workers
WARM_ENV = "CLIPCURATE_WORKER_WARM_UP"  # "module:function,..." a worker calls in a background thread
SDK_WORKER_MAIN = "apache_beam.runners.worker.sdk_worker_main"
_registered = threading.Lock()
_done = []


def is_direct(runner: str | None) -> bool:
    return runner in (None, "DirectRunner", "apache_beam.runners.direct.direct_runner.DirectRunner")


def runner_for(options):
    """A DirectRunner that skips the Prism attempt when ``options`` name the DirectRunner, else None
    (Beam then builds the runner the options name)."""
    from apache_beam.options.pipeline_options import StandardOptions
    from apache_beam.runners.direct.direct_runner import DirectRunner

    if not is_direct(options.view_as(StandardOptions).runner):
        return None
    runner = DirectRunner()
    runner.is_interactive()  # rules out PrismRunner only (direct_runner.py, _PrismRunnerSupportVisitor)
    return runner


class worker_env:
    """Within the block, worker processes the runner starts see FAST_EXIT_ENV and, with ``warm``
    ("module:function" names), WARM_ENV (both restored after)."""

    def __init__(self, warm: tuple = ()):
        self.values = {FAST_EXIT_ENV: "1", WARM_ENV: ",".join(warm) if warm else None}

    def __enter__(self):
        self.before = {name: os.environ.get(name) for name in self.values}
        _put(self.values)

    def __exit__(self, *exc):
        _put(self.before)
        return False


def _put(values: dict) -> None:
    """Set each environment variable of ``values``; a None value removes it."""
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _in_fast_exit_worker() -> bool:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    return os.environ.get(FAST_EXIT_ENV) == "1" and getattr(spec, "name", None) == SDK_WORKER_MAIN


def _exit_now() -> None:
    failed = getattr(sys, "last_value", None) is not None or getattr(sys, "last_exc", None) is not None
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed stream: nothing left to flush
            pass
    os._exit(1 if failed else 0)


def _warm_up(names: str) -> None:
    """Call each "module:function" of ``names``; a failure is left to the stage that needs the module
    (it imports it again in its own setup and fails there, loudly)."""
    for name in filter(None, names.split(",")):
        module, _, function = name.partition(":")
        try:
            getattr(importlib.import_module(module), function)()
        except Exception:  # noqa: BLE001 - only a head start: the stage's own import reports the error
            return


def gc_thresholds(value: str | None) -> tuple | None:
    """The garbage collector's thresholds written as in GC_ENV ("a,b,c"), or None when unset or unreadable."""
    if not value:
        return None
    try:
        return tuple(int(v) for v in value.split(",")[:3])
    except ValueError:
        return None


def _launcher_gc_thresholds() -> None:
    """The garbage collector's thresholds the launcher chose (``cli.run.tune_gc``: GC_ENV), if any."""
    thresholds = gc_thresholds(os.environ.get(GC_ENV))
    if thresholds:
        gc.set_threshold(*thresholds)


def exit_fast_when_done() -> None:
    """In a worker process of ``runner_for``'s runner: exit without module teardown (once registered,
    atexit runs it after the harness returned and threads were joined), and start the warm-up
    imports the launcher asked for (WARM_ENV) in a daemon thread. Elsewhere: nothing."""
    with _registered:
        if _done or not _in_fast_exit_worker():
            return
        _done.append(True)
        atexit.register(_exit_now)  # registered last, so it runs first of the atexit handlers
        _launcher_gc_thresholds()
        if os.environ.get(WARM_ENV):
            threading.Thread(target=_warm_up, args=(os.environ[WARM_ENV],), name="clipcurate-warm-up",
                             daemon=True).start()
