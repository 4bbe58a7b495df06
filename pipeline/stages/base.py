"""What every Beam stage shares: the rejects tag, safe per-record calls, metrics.

Filters and transforms return a reason instead of raising; this module turns
their answers into tagged outputs and counters once, so no stage repeats the
bookkeeping. An unexpected exception in one record becomes an
``internal_error`` reject: it never kills the run.
"""
from __future__ import annotations

import math
import os
import sys
import threading
import time
import traceback
from typing import Callable, Optional

import apache_beam as beam
from apache_beam.metrics import Metrics

from clipcurate.filters.base import Drop, reject_row
from clipcurate.pipeline.direct_runner import exit_fast_when_done

REJECTS = "rejects"
NAMESPACE = "clipcurate"


def error_message(err: BaseException) -> str:
    """An unexpected error in one line: its type, its text and the file:line it was raised at."""
    where = traceback.extract_tb(err.__traceback__)[-1] if err.__traceback__ else None
    at = f" at {where.filename.rsplit('/', 1)[-1]}:{where.lineno}" if where else ""
    return f"{type(err).__name__}: {err}{at}"


def internal_error(row: dict, err: BaseException) -> dict:
    return reject_row(row, "internal_error", error_message(err))


class _Progress:
    """Per-stage row counts and rates of this worker process, printed on stderr.

    A live line on a terminal, a plain line every ``interval`` seconds in a log.
    The same counts go to Beam metrics (``rows_<stage>``), which runners such as
    Dataflow show while the job runs. Off with CLIPCURATE_PROGRESS=0.
    """

    def __init__(self, interval: float = 10.0):
        self.interval = interval
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()
        self.thread = None
        self.stopped = threading.Event()
        self.start = time.time()
        self.enabled = os.environ.get("CLIPCURATE_PROGRESS", "1") != "0"

    def add(self, stage: str, n: int) -> None:
        with self.lock:
            self.counts[stage] = self.counts.get(stage, 0) + n
            if self.thread is None and self.enabled:
                self.start = time.time()
                self.stopped = threading.Event()
                self.thread = threading.Thread(target=self._loop, args=(self.stopped,), name="clipcurate-progress",
                                               daemon=True)
                self.thread.start()

    def stop(self) -> None:
        """The run is over (in this process): no more lines; the next run counts from zero."""
        with self.lock:
            thread, stopped, self.thread = self.thread, self.stopped, None
        if thread is not None:
            stopped.set()
            thread.join(timeout=5)
        with self.lock:
            self.counts = {}

    def line(self) -> str:
        with self.lock:
            counts = dict(self.counts)
        elapsed = max(time.time() - self.start, 1e-6)
        parts = [f"{stage} {n} ({n / elapsed:.0f}/s)" for stage, n in counts.items()]
        return f"progress {elapsed:5.0f}s: " + ", ".join(parts)

    def _loop(self, stopped: threading.Event):
        tty = sys.stderr.isatty()
        while not stopped.wait(1.0 if tty else self.interval):
            if tty:
                sys.stderr.write("\r" + self.line()[:200] + "\x1b[K")
            else:
                sys.stderr.write(self.line() + "\n")
            sys.stderr.flush()
        sys.stderr.write(("\r" + self.line()[:200] + "\x1b[K" if tty else self.line()) + "\n")  # the last counts
        sys.stderr.flush()


PROGRESS = _Progress(float(os.environ.get("CLIPCURATE_PROGRESS_INTERVAL", "10")))


class Timer:
    """Adds the wall time of a block to a per-stage distribution (milliseconds); counts rows."""

    def __init__(self, stage: str):
        exit_fast_when_done()  # built in a DoFn's setup: in a DirectRunner worker, exit without teardown
        self.stage = stage
        self.dist = Metrics.distribution(NAMESPACE, f"ms_{stage}")
        self.rows = Metrics.counter(NAMESPACE, f"rows_{stage}")

    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.dist.update(int((time.perf_counter() - self.start) * 1000))
        return False

    def count(self, n: int = 1) -> None:
        self.rows.inc(n)
        PROGRESS.add(self.stage, n)


class RowCheckDoFn(beam.DoFn):
    """Applies ``make()``'s per-row function: ``fn(row) -> (row, Drop | None)``.

    ``make`` is called once per worker in ``setup`` (heavy state loads there).
    """

    def __init__(self, stage: str, make: Callable[[], Callable[[dict], tuple[dict, Optional[Drop]]]]):
        self.stage = stage
        self.make = make

    def setup(self):
        self.fn = self.make()
        self.timer = Timer(self.stage)

    def process(self, row):
        self.timer.count()
        with self.timer:
            try:
                out, drop = self.fn(row)
            except Exception as err:  # noqa: BLE001 - a bad record is data, not a crash
                yield beam.pvalue.TaggedOutput(REJECTS, internal_error(row, err))
                return
        if drop is None:
            yield out
        else:
            yield beam.pvalue.TaggedOutput(REJECTS, reject_row(out, drop.reason, drop.message))


class BatchCheckDoFn(beam.DoFn):
    """Like RowCheckDoFn for a batch: ``fn(rows) -> list[(row, Drop | None)]``, then per-row outputs."""

    def __init__(self, stage: str, make):
        self.stage = stage
        self.make = make

    def setup(self):
        self.fn = self.make()
        self.timer = Timer(self.stage)

    def process(self, rows):
        self.timer.count(len(rows))
        with self.timer:
            try:
                results = self.fn(rows)
            except Exception:  # noqa: BLE001 - retry one by one so only the bad record fails
                results = []
                for row in rows:
                    try:
                        results.extend(self.fn([row]))
                    except Exception as err:  # noqa: BLE001
                        results.append((row, err))
        for out, drop in results:
            if drop is None:
                yield out
            elif isinstance(drop, BaseException):
                yield beam.pvalue.TaggedOutput(REJECTS, internal_error(out, drop))
            else:
                yield beam.pvalue.TaggedOutput(REJECTS, reject_row(out, drop.reason, drop.message))


def split(pcoll, label: str, dofn: beam.DoFn):
    """Apply a DoFn with a rejects output; returns (main, rejects)."""
    result = pcoll | label >> beam.ParDo(dofn).with_outputs(REJECTS, main="main")
    return result.main, result[REJECTS]


def key_range(key: str, parts: int) -> int:
    """Range partition on a hex key's first 32 bits: part order is key order."""
    return (int(key[:8], 16) * parts) >> 32


class RangeParts(beam.PTransform):
    """rows -> (part, row), about ``rows_per_part`` rows a part, parts in key order.

    The number of parts follows from the number of rows (a global count, read
    as a side input), so the same input always makes the same parts.
    """

    def __init__(self, rows_per_part: int):
        super().__init__()
        self.rows_per_part = rows_per_part

    def expand(self, rows):
        n = self.rows_per_part
        total = rows | "Count" >> beam.combiners.Count.Globally()
        return rows | "Part" >> beam.Map(lambda r, t: (key_range(r["key"], max(1, math.ceil(t / n))), r),
                                         beam.pvalue.AsSingleton(total))
