"""``clipcurate run --retry-failed OUT``: the options of OUT's run, read back from its work folder."""
from __future__ import annotations

import json
import os

from clipcurate.pipeline.cli.errors import UsageError
from clipcurate.pipeline.cli.run.workdir import WORK_OPTIONS


def retry_args(args):
    """The saved options of OUT's run, for --retry-failed."""
    out = args.retry_failed
    path = os.path.join(out, WORK_OPTIONS)
    if not os.path.exists(path):
        raise UsageError(f"{out!r} holds no finished run to retry (no {WORK_OPTIONS})")
    with open(path) as f:
        saved = json.load(f)["args"]
    beam_args = saved.pop("beam_args", [])
    for key, value in saved.items():
        setattr(args, key, value)
    args.extra_args = beam_args
    args.retry_failed = out
    args.output = out
    return args
