"""The output folder: checked writable up front, a previous run's outputs cleared, and OUT/_work kept
only when the new run has the same fingerprint (options that change the result + input files)."""
from __future__ import annotations

import glob
import json
import os
import uuid

from clipcurate.pipeline.cli.errors import UsageError
from clipcurate.pipeline.cli.run.config import options_record


def check_output(out: str) -> None:
    """Create OUT and prove it is writable, before any work."""
    try:
        os.makedirs(os.path.join(out, "shards"), exist_ok=True)
        os.makedirs(os.path.join(out, "rejects"), exist_ok=True)
        probe = os.path.join(out, f".probe-{uuid.uuid4().hex[:8]}")
        with open(probe, "wb") as f:
            f.write(b"ok")
        os.remove(probe)
    except OSError as err:
        raise UsageError(f"output folder {out!r} is not writable: {err.strerror or err}") from None


def clear_previous(out: str) -> None:
    """Remove a previous run's shards and rejects (only files this tool writes)."""
    patterns = ["shards/[0-9][0-9][0-9][0-9][0-9].*", "shards/sizes.json", "shards/*.tmp-*",
                "rejects/*.parquet", "rejects/*.tmp-*", "stats.json", "report.html"]
    for pattern in patterns:
        for path in glob.glob(os.path.join(out, pattern)):
            os.remove(path)


WORK_OPTIONS = "_work/options.json"
# options that change neither what is downloaded nor the result
_NOT_IN_FINGERPRINT = {"runner", "workers", "retry_failed", "extra_args", "beam_args", "threads", "output"}


def fingerprint(args) -> dict:
    """What a resumed run must share with the run it continues: options and input files."""
    opts = {k: v for k, v in options_record(args).items() if k not in _NOT_IN_FINGERPRINT}
    from clipcurate.pipeline.sources.tables import expand_inputs

    patterns = [*args.input, *args.warc, *([args.seeds] if args.seeds else [])]
    files = []
    for path in expand_inputs(patterns, any_extension=True) if patterns else ():
        st = os.stat(path)
        files.append([os.path.abspath(path), st.st_size, int(st.st_mtime)])
    return {"options": opts, "files": files}


def prepare_work(args) -> None:
    """Keep an earlier run's finished work units only if it ran with the same options on the same input."""
    import shutil

    from clipcurate.pipeline.files import atomic_write

    work = os.path.join(args.output, "_work")
    path = os.path.join(args.output, WORK_OPTIONS)
    current = {"fingerprint": fingerprint(args), "args": options_record(args)}
    if os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)
        if saved.get("fingerprint") != current["fingerprint"]:
            shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.join(work, "download"), exist_ok=True)
    atomic_write(path, json.dumps(current, indent=1, default=str).encode())
