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


def Resizer(*args, **kwargs):  # noqa: N802 - stands for the class
    """An img2dataset.resizer.Resizer."""
    from img2dataset.resizer import Resizer as make

    return make(*args, **kwargs)
