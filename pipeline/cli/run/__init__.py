"""``clipcurate run``: check every option up front, then run the pipeline, then write stats and report.

The parts: ``options`` (argparse), ``config`` (checks -> stage configs), ``workdir`` (OUT and its
fingerprinted work folder), ``retry`` (--retry-failed); this module orchestrates them."""
from __future__ import annotations

import json
import os
import sys

from clipcurate.pipeline.cli.errors import UsageError
from clipcurate.pipeline.cli.run.config import beam_options, make_config, options_record, unknown_beam_args  # noqa: F401
from clipcurate.pipeline.cli.run.options import add_arguments  # noqa: F401
from clipcurate.pipeline.cli.run.retry import retry_args
from clipcurate.pipeline.cli.run.workdir import check_output, clear_previous, prepare_work

ACCEPTS_EXTRA_ARGS = True  # any other Beam option (--runner DataflowRunner --project ...) is passed through


def summary(stats: dict, out: str) -> str:
    lines = [f"clipcurate run: {stats['input_rows']} input rows -> {stats['kept']} kept, {stats['rejected']} rejected"
             + ("" if stats["accounted_for"] else "  (WARNING: counts do not add up)")]
    for entry in stats["stages"]:
        reasons = ", ".join(f"{r} {n}" for r, n in entry["reasons"].items())
        lines.append(f"  {entry['stage']:<12} -{entry['rejected']:<6} {reasons}")
    lines.append(f"output: {out}   query it: clipcurate sql {out} \"select reason, count(*) from rejects group by 1\"")
    return "\n".join(lines)


def prepare_textness(score) -> None:
    """Load the CLIP model once here, check it works, and put its textness probe where the workers read it."""
    from clipcurate.pipeline.clip.scorer import ClipScorer
    from clipcurate.pipeline.clip.textness import load_or_train

    try:
        scorer = ClipScorer.load(score.scorer)
    except ValueError as err:
        raise UsageError(f"--clip {score.scorer.spec!r}: {err}") from None
    probe = load_or_train(scorer, score.scorer.spec, None)
    probe.save(score.textness_probe)


def main(args) -> int:
    if args.retry_failed:
        args = retry_args(args)
    elif not args.output:
        raise UsageError("--output OUT is required")
    config = make_config(args)
    check_output(args.output)
    prepare_work(args)
    clear_previous(args.output)
    if config.score is not None:
        prepare_textness(config.score)
    from clipcurate.pipeline.flow import run
    from clipcurate.pipeline.inspect.stats import build_stats, write_stats

    info = run(config, beam_options(args))
    selection = None
    sel_path = os.path.join(args.output, "selection.json")
    if os.path.exists(sel_path):
        with open(sel_path) as f:
            selection = json.load(f)
    stats = build_stats(args.output, info, options_record(args), selection)
    write_stats(args.output, stats)
    try:
        from clipcurate.pipeline.inspect.report import render_report
    except ImportError as err:  # the shards and stats are written; only the HTML page is missing
        print(f"clipcurate run: note: report.html not written ({err})", file=sys.stderr)
    else:
        render_report(args.output)
    print(summary(stats, args.output))
    return 0
