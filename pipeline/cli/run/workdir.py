"""The output folder: checked writable up front; the new run built in OUT/_next and published over
the old outputs only once complete; OUT/_work kept only while the options that change a download are
the same (``DOWNLOAD_OPTIONS``). Local paths and object stores alike (``files``)."""
from __future__ import annotations

import json
import uuid

from clipcurate.pipeline import files as fs
from clipcurate.pipeline.cli.errors import UsageError
from clipcurate.pipeline.cli.run.config import options_record, staging_dir

PUBLISHED = ("shards", "pairs", "rejects", "selection.json", "stats.json", "report.html")  # what publish() swaps in


def check_output(out: str) -> None:
    """Create OUT and prove it is writable, before any work."""
    try:
        fs.makedirs(out)
        probe = fs.join(out, f".probe-{uuid.uuid4().hex[:8]}")
        fs.atomic_write(probe, b"ok")
        fs.delete([probe])
    except OSError as err:
        raise UsageError(f"output folder {out!r} is not writable: {getattr(err, 'strerror', None) or err}") from None
    except Exception as err:  # noqa: BLE001 - an object store's client raises its own errors
        raise UsageError(f"output folder {out!r} is not writable: {type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''}") from None


def start_staging(out: str) -> str:
    """An empty OUT/_next (whatever a killed run left there is removed); returns its path."""
    staging = staging_dir(out)
    fs.delete_tree(staging)
    fs.makedirs(fs.join(staging, "shards"))
    fs.makedirs(fs.join(staging, "rejects"))
    return staging


def _files_under(folder: str) -> list[str]:
    return fs.match(fs.join(folder, "**"))


def publish(out: str) -> None:
    """Replace OUT's published outputs by the complete ones in OUT/_next.

    Local: each entry is renamed aside, the new one renamed in, the old one removed (a rename per
    entry). Object store: the old objects are deleted and each new object renamed into place (a
    copy and a delete each); an interrupted publish is finished by the next run's outputs.
    """
    staging = staging_dir(out)
    if not fs.is_remote(out):
        old = fs.join(out, "_old")
        fs.delete_tree(old)
        for name in PUBLISHED:
            src, dst = fs.join(staging, name), fs.join(out, name)
            if fs.exists(dst):
                fs.rename(dst, fs.join(old, name))
            if fs.exists(src):
                fs.rename(src, dst)
        fs.delete_tree(old)
        fs.delete_tree(staging)
        return
    for name in PUBLISHED:
        dst = fs.join(out, name)
        fs.delete(_files_under(dst) if name in ("shards", "pairs", "rejects") else [dst])
    pieces = fs.join(staging, "_pieces", "")  # the writers' temporary pieces (orphans of retried bundles)
    staged = _files_under(staging)
    fs.delete([f for f in staged if f.startswith(pieces)])
    moves = [(src, fs.join(out, src[len(fs.join(staging, "")):])) for src in staged if not src.startswith(pieces)]
    for src, dst in moves:
        fs.rename(src, dst)


WORK_OPTIONS = "_work/options.json"
# the options that change what a download gives (or how rows are cut into work units); any other
# option (selection, dedup, filters, languages, the runner) reruns from the saved downloads
DOWNLOAD_OPTIONS = ("image_size", "resize_mode", "encode_format", "min_image_size", "max_image_pixels", "timeout", "retries",
                    "max_bytes", "allow_private_network", "user_agent", "respect_robots_txt", "work_unit_rows",
                    "labelled")


def fingerprint(args) -> dict:
    """What saved downloads depend on: the download options. Which rows were fetched is kept per row
    in the unit files (by URL), so another input or other filters refetch only the rows not saved."""
    record = options_record(args)
    return {"options": {k: record.get(k) for k in DOWNLOAD_OPTIONS}}


def prepare_work(args) -> None:
    """Keep an earlier run's finished work units only if its download options were the same."""
    work = fs.join(args.output, "_work")
    path = fs.join(args.output, WORK_OPTIONS)
    current = {"fingerprint": fingerprint(args), "args": options_record(args)}
    if fs.exists(path):
        saved = json.loads(fs.read_bytes(path))
        if saved.get("fingerprint") != current["fingerprint"]:
            fs.delete_tree(work)
    fs.makedirs(fs.join(work, "download"))
    fs.atomic_write(path, json.dumps(current, indent=1, default=str).encode())
