"""Fingerprint a run of the mixed-input test table, to check that a refactor leaves outputs byte-identical.

    python tests/snapshot.py OUT_DIR [extra clipcurate run flags...]   (OUT_DIR is emptied first)

The loopback server is bound to fixed ports so that URLs, and therefore keys, are the same in every
run. Prints one ``sha256  path`` line per output file (stats.json timings and the HTML report vary
from run to run by design, so stats.json is printed without its timing and option fields and the
report is left out). Not collected by pytest (the name does not start with ``test_``).
"""
from __future__ import annotations

import hashlib
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import webserver  # noqa: E402

_PORTS = iter([18761, 18762, 18763, 18764])
_bind = webserver.ThreadingHTTPServer.__init__


def _fixed_port(self, address, handler, *args, **kwargs):
    _bind(self, ("127.0.0.1", next(_PORTS)), handler, *args, **kwargs)


webserver.ThreadingHTTPServer.__init__ = _fixed_port


def main(argv: list[str]) -> int:
    from clipcurate.pipeline.cli import main as cli_main
    from test_run import MIXED_ARGS, write_mixed_input
    from webserver import start_default_server

    out = os.path.abspath(argv[0])  # the input path is in the rows (source_file): use the same OUT_DIR each time
    if os.path.exists(out):
        import shutil
        shutil.rmtree(out)
    os.makedirs(out)
    web = start_default_server()
    _, src = write_mixed_input(web, out)
    dest = os.path.join(out, "out")
    code = cli_main(["run", "--input", src, "--output", dest, *MIXED_ARGS, *argv[1:]])
    web.close()
    if code != 0:
        print("run failed", code)
        return code
    for root, dirs, files in sorted(os.walk(dest)):
        dirs.sort()
        if "_work" in root.split(os.sep):
            continue
        for name in sorted(files):
            path = os.path.join(root, name)
            rel = os.path.relpath(path, dest)
            if rel == "report.html":
                continue
            with open(path, "rb") as f:
                data = f.read()
            if rel == "stats.json":
                stats = json.loads(data)
                for key in ("timings", "options", "seconds", "started", "finished", "elapsed_s", "wall_s"):
                    stats.pop(key, None)
                data = json.dumps(stats, sort_keys=True).encode()
            print(hashlib.sha256(data).hexdigest(), rel)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
