"""The one place img2dataset is imported from, with the one environment setting it needs.

img2dataset imports albumentations, which asks PyPI for a newer version at
import time unless NO_ALBUMENTATIONS_UPDATE is set: it is set here (only when
unset, so a user's value wins) right before the import, and nowhere else.
The import waits for the first call, so metadata-only runs (``--until``) and the other commands
never pay for it. Only the two modules used here are loaded, img2dataset's own files
(``downloader``, ``resizer``), under a private package name and without img2dataset's
``__init__.py``: that one imports its command line (``main``: webdataset, and through it torch),
2.8 s of every download run's start (in every worker process), where the two modules take 0.9 s.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import threading
import types

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no PyPI call from albumentations' import

_PACKAGE = "_clipcurate_img2dataset"
_LOCK = threading.Lock()
_LOADED: dict = {}


def _module(name: str):
    """img2dataset's submodule ``name`` (its relative imports resolve inside the same folder). Many
    download threads ask at once: a module is handed out only once its import has finished."""
    found = _LOADED.get(name)
    if found is not None:
        return found
    with _LOCK:
        if name not in _LOADED:
            if _PACKAGE not in sys.modules:
                spec = importlib.util.find_spec("img2dataset")
                if spec is None or not spec.submodule_search_locations:
                    raise ImportError("img2dataset is not installed")
                package = types.ModuleType(_PACKAGE)
                package.__path__ = list(spec.submodule_search_locations)
                sys.modules[_PACKAGE] = package
            _LOADED[name] = importlib.import_module(f"{_PACKAGE}.{name}")
        return _LOADED[name]


def load_for_download() -> None:
    """Import the two modules (and cv2, albumentations) the download stage uses, ahead of its first
    call (``direct_runner``'s warm-up of worker processes)."""
    _module("downloader")
    _module("resizer")


def is_disallowed(*args, **kwargs):
    """img2dataset.downloader.is_disallowed (X-Robots-Tag opt-outs)."""
    return _module("downloader").is_disallowed(*args, **kwargs)


class _NoSwap:
    """Stands in for img2dataset's SuppressStdoutStderr (see ``Resizer``)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _MadeOncePerThread:
    """Stands in for the ``albumentations`` namespace img2dataset's resizer module calls (``A``).

    The Resizer builds its transforms (``A.LongestMaxSize(...)``, ``A.PadIfNeeded(...)``) anew for
    every image; each construction validates its arguments with pydantic and seeds two random
    generators from ``os.urandom``, ~0.3 ms of Python under the GIL an image, more than encoding the
    result. Here a transform is built once per thread and set of arguments and then reused: the
    transforms the Resizer asks for are deterministic (``p=1.0``), so the pictures are the same byte
    for byte; a transform keeps its last call's parameters on itself, hence one per thread, not one
    shared."""

    def __init__(self, namespace):
        self._namespace = namespace
        self._local = threading.local()

    def __getattr__(self, name: str):
        make = getattr(self._namespace, name)

        def once_per_thread(*args, **kwargs):
            made = getattr(self._local, "made", None)
            if made is None:
                made = self._local.made = {}
            key = (name, repr(args), repr(sorted(kwargs.items())))
            found = made.get(key)
            if found is None:
                found = made[key] = make(*args, **kwargs)
            return found

        return once_per_thread


def Resizer(*args, **kwargs):  # noqa: N802 - stands for the class
    """An img2dataset.resizer.Resizer that can run in many threads at once, without rebuilding its
    transforms for every image (``_MadeOncePerThread``).

    Its ``SuppressStdoutStderr`` points the process's fds 1 and 2 at /dev/null around each call, so
    overlapping calls race (one can restore the other's /dev/null for good) and had to be serialized,
    which made resizing single-threaded. It only hides libjpeg's warnings about damaged files, and
    ``media.images`` hands cv2 nothing but files it checked to be complete (or a BMP it wrote), so the
    swap is replaced by a no-op in this process's copy of the module: resizes run in parallel and our own stderr (progress
    lines) is never swallowed."""
    module = _module("resizer")
    with _LOCK:
        module.SuppressStdoutStderr = _NoSwap
        if not isinstance(module.A, _MadeOncePerThread):
            module.A = _MadeOncePerThread(module.A)
    return module.Resizer(*args, **kwargs)
