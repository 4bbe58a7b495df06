"""``clipcurate report OUT``: render OUT/report.html again from an output folder."""
from __future__ import annotations

from clipcurate.pipeline import files as fs
from clipcurate.pipeline.cli import UsageError
from clipcurate.pipeline.cli.beamflags import use_beam_flags
from clipcurate.pipeline.inspect.report import ReportConfig, render_report

ACCEPTS_EXTRA_ARGS = True  # Beam's object-store flags (--s3_endpoint_url URL ...) for an s3:// or gs:// output


def add_arguments(parser):
    parser.add_argument("output", help="an output folder written by clipcurate run")
    parser.add_argument("--kept-thumbnails", type=int, default=ReportConfig.kept_thumbnails,
                        help=f"kept samples shown in the grid (default {ReportConfig.kept_thumbnails})")
    parser.add_argument("--rejected-per-reason", type=int, default=ReportConfig.rejected_per_reason,
                        help=f"rejected examples shown per reason (default {ReportConfig.rejected_per_reason})")


def is_output_folder(path: str) -> bool:
    return fs.exists(fs.join(path, "stats.json")) or fs.is_dir(fs.join(path, "shards"))


def main(args) -> int:
    use_beam_flags(args.extra_args, "a clipcurate report option")
    if not is_output_folder(args.output):
        raise UsageError(f"{args.output!r} is not a clipcurate output folder (no stats.json or shards/)")
    if args.kept_thumbnails < 0 or args.rejected_per_reason < 0:
        raise UsageError("--kept-thumbnails and --rejected-per-reason must be 0 or more")
    config = ReportConfig(kept_thumbnails=args.kept_thumbnails, rejected_per_reason=args.rejected_per_reason)
    print(render_report(args.output, config))
    return 0
