"""Shared fixtures: the loopback web server (see tests/webserver.py)."""
from __future__ import annotations

import os
import sys

import pytest

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
sys.path.insert(0, os.path.dirname(__file__))

from webserver import LoopbackServer, start_default_server  # noqa: E402


@pytest.fixture(scope="session")
def web() -> LoopbackServer:
    """One loopback server with the default routes for the whole session.

    ``web.url(path)`` for a URL, ``web.add(path, body=..., status=..., headers=...)``
    for a new route (use a path unique to your test), ``web.hit_count(path)`` for
    requests seen, ``web.other`` for a second server on another port.
    """
    server = start_default_server()
    yield server
    server.close()
