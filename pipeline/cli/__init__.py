"""The ``clipcurate`` command line: one sub-command per module, imported lazily.

Each command module exposes ``add_arguments(parser)`` and ``main(args) -> int``.
Only the chosen command's module is imported, so ``clipcurate langid`` starts
without importing Beam or torch.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

COMMANDS = {
    "run": ("clipcurate.pipeline.cli.run", "run the curation pipeline: input pairs -> WebDataset shards"),
    "sql": ("clipcurate.pipeline.cli.sql", "query an output folder with DuckDB (views: pairs, rejects)"),
    "langid": ("clipcurate.pipeline.cli.langid", "identify the language of captions read one per line on stdin"),
    "bootstrap": ("clipcurate.pipeline.cli.bootstrap", "train a small CLIP from a labelled seed set"),
    "eval": ("clipcurate.pipeline.cli.eval", "zero-shot accuracy of a CLIP model on a labelled folder"),
    "crawl": ("clipcurate.pipeline.cli.crawl", "crawl HTML pages from seed URLs into a table of pairs"),
    "textness": ("clipcurate.pipeline.cli.textness", "train a model's textness probe once and save it beside the model"),
    "report": ("clipcurate.pipeline.cli.report", "render OUT/report.html again from an output folder"),
    "demo": ("clipcurate.pipeline.cli.demo", "run the whole product on a generated seed set and web"),
    "distill": ("clipcurate.pipeline.cli.distill", "train a small, fast student scorer to match any CLIP on curated shards"),
}


from clipcurate.pipeline.cli.errors import UsageError  # noqa: E402  (re-exported for command modules)
from clipcurate.pipeline.sources.errors import InputError  # noqa: E402  (a source's unreadable input: one line too)


def _hide_apitools_warning(record: logging.LogRecord) -> bool:
    """Beam's GCP module warns on import that optional Google clients are missing: not our users' concern."""
    return "apitools" not in record.getMessage()


def _top_help() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = ["usage: clipcurate COMMAND [options]", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {desc}" for name, (_, desc) in COMMANDS.items()]
    lines += ["", "clipcurate COMMAND --help shows a command's options."]
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_top_help())
        return 0 if argv else 2
    name = argv[0]
    if name not in COMMANDS:
        print(f"clipcurate: unknown command {name!r}\n\n{_top_help()}", file=sys.stderr)
        return 2
    module_name, desc = COMMANDS[name]
    root = logging.getLogger()
    if _hide_apitools_warning not in root.filters:  # once per process, not once per call
        root.addFilter(_hide_apitools_warning)
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"clipcurate {name}", description=desc)
    module.add_arguments(parser)
    args, extra = parser.parse_known_args(argv[1:])
    if extra and not getattr(module, "ACCEPTS_EXTRA_ARGS", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra_args = extra
    try:
        return int(module.main(args) or 0)
    except (UsageError, InputError) as err:
        print(f"clipcurate {name}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"clipcurate {name}: interrupted", file=sys.stderr)
        return 130


# commands whose process may leave with os._exit once main() returned: all their work is done, files
# closed, worker processes and clusters shut; skipping the teardown of Beam's, Arrow's and cv2's modules
# saves ~0.5 s a run. (Not ``demo``: it may leave a child server to the normal exit.)
FAST_EXIT = ("run",)


def entry() -> None:
    """The ``clipcurate`` script: ``main()``, then exit with its status (fast for FAST_EXIT commands)."""
    rc = main()
    if len(sys.argv) > 1 and sys.argv[1] in FAST_EXIT:
        logging.shutdown()  # what atexit would flush: a log handler the user configured
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(rc)
    sys.exit(rc)
