"""``clipcurate run``: check every option up front, then run the pipeline, then write stats and report.

The parts: ``options`` (argparse), ``config`` (checks -> stage configs), ``workdir`` (OUT, its
fingerprinted work folder, the OUT/_next staging and its publication), ``retry`` (--retry-failed),
``cluster`` (a local dask cluster for --runner dask); this module orchestrates them. A run that fails
leaves OUT's previous outputs as they were and exits 1 with one line saying why."""
from __future__ import annotations

import json
import os
import sys

from clipcurate.pipeline import files as fs
from clipcurate.pipeline.direct_runner import GC_ENV, gc_thresholds
from clipcurate.pipeline.cli.errors import UsageError
from clipcurate.pipeline.cli.run.cluster import dask_cluster
from clipcurate.pipeline.cli.run.config import beam_options, make_config, options_record
from clipcurate.pipeline.cli.beamflags import unknown_beam_args  # noqa: F401 - re-exported
from clipcurate.pipeline.cli.run.options import add_arguments  # noqa: F401
from clipcurate.pipeline.cli.run.retry import retry_args
from clipcurate.pipeline.cli.run.workdir import check_output, prepare_work, publish, start_staging

ACCEPTS_EXTRA_ARGS = True  # any other Beam option (--runner DataflowRunner --project ...) is passed through
SYSTEMIC_SHARE = 0.5  # a stage whose internal_error rejects are more than this share of its rows fails the run


def use_system_allocator() -> None:
    """Arrow's buffers from the C allocator that Python's objects use too (unless the user chose a pool
    with ARROW_DEFAULT_MEMORY_POOL), in this process and in the worker processes it starts: with
    Arrow's own pool, memory freed by one side cannot serve the other, and a 1 M-row metadata run
    peaked ~100 MiB higher (765 vs 665 MiB; 455 vs 385 MiB at 100 k)."""
    if "ARROW_DEFAULT_MEMORY_POOL" in os.environ:
        return
    import pyarrow as pa

    os.environ["ARROW_DEFAULT_MEMORY_POOL"] = "system"
    pa.set_memory_pool(pa.system_memory_pool())
    tune_malloc()


MALLOC = {"MALLOC_MMAP_THRESHOLD_": (-3, 4 << 20), "MALLOC_ARENA_MAX": (-8, 2)}  # glibc's mallopt parameters


def tune_malloc() -> None:
    """glibc: blocks of 4 MiB and more mapped on their own (returned to the system when freed; by
    default the threshold grows after such frees, up to 32 MiB, and large Arrow and packed buffers
    then come from the heap, which fragments and stays at its highest) and 2 arenas (not 8 a core),
    in this process and, through the environment, in the worker processes it starts; a setting the
    user gave is kept. A 1 M-row metadata run peaked ~60 MiB lower (a 64 KiB threshold: ~10 MiB
    less again, at ~10% more time). Does nothing where the C library has no ``mallopt``."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    for name, (param, value) in MALLOC.items():
        if name not in os.environ:
            os.environ[name] = str(value)
            mallopt(param, value)


GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    """Python's cyclic garbage collector on the thresholds of a process that holds millions of objects:
    a young collection every 50,000 allocations instead of 700, older ones less often. With the
    defaults, collections walk ever larger heaps as a run grows, a cost that grows faster than the
    rows: near dedup's decisions at 1 M fingerprints took 260.7 s, 247.4 s with these (100 k: 21.3 and
    21.5 s). Applies to this process and, through GC_ENV, to DirectRunner worker processes; a value
    the user put in GC_ENV ("a,b,c") is kept."""
    import gc

    thresholds = gc_thresholds(os.environ.get(GC_ENV)) or GC_THRESHOLDS
    os.environ[GC_ENV] = ",".join(str(v) for v in thresholds)
    gc.set_threshold(*thresholds)


class RunFailed(Exception):
    """The run cannot produce a trustworthy output; the message is one line."""


def summary(stats: dict, out: str) -> str:
    lines = [f"clipcurate run: {stats['input_rows']} input rows -> {stats['kept']} kept, {stats['rejected']} rejected"
             + {True: "", False: "  (WARNING: counts do not add up)",
                None: "  (input count unknown)"}[stats["accounted_for"]]]
    for entry in stats["stages"]:
        reasons = ", ".join(f"{r} {n}" for r, n in entry["reasons"].items())
        lines.append(f"  {entry['stage']:<12} -{entry['rejected']:<6} {reasons}")
    lines.append(f"output: {out}   query it: clipcurate sql {out} \"select reason, count(*) from rejects group by 1\"")
    return "\n".join(lines)


def one_line(err: BaseException) -> str:
    """The first line of an error's message, with its type (Beam wraps a worker's error in its own text)."""
    text = next((line.strip() for line in str(err).splitlines() if line.strip()), "")
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def systemic_failure(stats: dict) -> str | None:
    """A stage that failed on most of its rows with internal errors (a model that cannot run, a full disk)."""
    rows_in = {f["stage"]: f["rows_in"] for f in stats.get("funnel", [])}
    for entry in stats["stages"]:
        errors = entry["reasons"].get("internal_error", 0)
        entering = rows_in.get(entry["stage"]) or 0
        if errors and entering and errors > SYSTEMIC_SHARE * entering:
            return (f"stage {entry['stage']!r} failed on {errors} of its {entering} rows with internal errors "
                    f"(see rejects.error_message); the previous output is left as it was")
    return None


def main(args) -> int:
    if args.retry_failed:
        args = retry_args(args)
    elif not args.output:
        raise UsageError("--output OUT is required")
    config = make_config(args)
    use_system_allocator()
    tune_gc()
    check_output(args.output)
    prepare_work(args)
    staging = start_staging(args.output)
    from clipcurate.pipeline.flow import run
    from clipcurate.pipeline.inspect.stats import build_stats, write_stats

    try:
        with dask_cluster(args) as address:
            info = run(config, beam_options(args, address))
        selection_path = fs.join(staging, "selection.json")
        selection = json.loads(fs.read_bytes(selection_path)) if fs.exists(selection_path) else None
        stats = build_stats(staging, info, options_record(args), selection)
        failure = systemic_failure(stats)
        if failure:
            raise RunFailed(failure)
    except UsageError:
        raise
    except Exception as err:  # noqa: BLE001 - any failure of the run: one line, exit 1, OUT kept
        message = str(err) if isinstance(err, RunFailed) else one_line(err)
        print(f"clipcurate run: failed: {message}", file=sys.stderr)
        return 1
    write_stats(staging, stats)
    try:
        from clipcurate.pipeline.inspect.report import render_report
    except ImportError as err:  # the shards and stats are written; only the HTML page is missing
        print(f"clipcurate run: note: report.html not written ({err})", file=sys.stderr)
    else:
        render_report(staging, shown_as=args.output)
    publish(args.output)
    print(summary(stats, args.output))
    return 0
