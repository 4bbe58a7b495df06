"""The one place img2dataset is imported from, with the one environment setting it needs.

img2dataset imports albumentations, which asks PyPI for a newer version at
import time unless NO_ALBUMENTATIONS_UPDATE is set: it is set here (only when
unset, so a user's value wins) right before the import, and nowhere else.
The import itself waits for the first call (it pulls torch, albumentations and
wandb: about 3 s), so metadata-only runs (``--until``) and the other commands
never pay for it.
"""
from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no PyPI call from albumentations' import


def is_disallowed(*args, **kwargs):
    """img2dataset.downloader.is_disallowed (X-Robots-Tag opt-outs)."""
    from img2dataset.downloader import is_disallowed as check

    return check(*args, **kwargs)


class _NoSwap:
    """Stands in for img2dataset's SuppressStdoutStderr (see ``Resizer``)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def Resizer(*args, **kwargs):  # noqa: N802 - stands for the class
    """An img2dataset.resizer.Resizer that can run in many threads at once.

    Its ``SuppressStdoutStderr`` points the process's fds 1 and 2 at /dev/null around each call, so
    overlapping calls race (one can restore the other's /dev/null for good) and had to be serialized,
    which made resizing single-threaded. It only hides libjpeg's warnings about damaged files, and
    ``media.images`` hands cv2 nothing but files it checked to be complete (or a BMP it wrote), so the
    swap is replaced by a no-op in this process: resizes run in parallel and our own stderr (progress
    lines) is never swallowed."""
    import img2dataset.resizer as module

    module.SuppressStdoutStderr = _NoSwap
    return module.Resizer(*args, **kwargs)
