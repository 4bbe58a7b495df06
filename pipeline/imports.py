"""The one place img2dataset is imported from, with the one environment setting it needs.

img2dataset imports albumentations, which asks PyPI for a newer version at
import time unless NO_ALBUMENTATIONS_UPDATE is set: it is set here (only when
unset, so a user's value wins) right before the import, and nowhere else.
"""
from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no PyPI call from albumentations' import

from img2dataset.downloader import is_disallowed  # noqa: E402,F401
from img2dataset.resizer import Resizer  # noqa: E402,F401
