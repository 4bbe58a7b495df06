"""A loopback HTTP server for tests, benchmarks and the demo.

``start_server(routes)`` serves a dict ``path -> Route`` on 127.0.0.1 at a
random port from daemon threads; ``start_default_server()`` adds the standard
"bad kinds" (errors, opt-outs, redirects, hangs, trickles, resets, bombs) and
a second server on another port. Every request is recorded in ``server.hits``.
Slow routes wait on an event that ``close()`` sets, so shutdown never hangs.

    server = start_default_server()
    url = server.url("/good.jpg")
    server.add("/mine.png", body=make_png(64, 64), content_type="image/png")
    server.close()
"""
from __future__ import annotations

import io
import socket
import struct
import threading
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Optional
from urllib.parse import urlsplit

import numpy as np
from PIL import Image

# ---------------------------------------------------------------- image bytes


def _pattern_image(w: int, h: int, seed: int) -> Image.Image:
    """A deterministic RGB image whose content depends on ``seed`` (gradients + checker blocks)."""
    y, x = np.mgrid[0:h, 0:w]
    block = ((x * 8 // max(w, 1)) + (y * 8 // max(h, 1)) + seed) % 2
    r = ((seed * 73) % 256 + x * 255 // max(w, 1)) % 256
    g = ((seed * 151) % 256 + y * 255 // max(h, 1)) % 256
    b = ((seed * 29) % 256 + 120 * block) % 256
    pixels = np.stack([r, g, b], axis=-1).astype(np.uint8)
    rng = np.random.default_rng(seed)  # seed-dependent shapes: different seeds are different pictures
    for _ in range(6):
        x0, y0 = int(rng.integers(0, max(1, w - 1))), int(rng.integers(0, max(1, h - 1)))
        x1, y1 = x0 + int(rng.integers(1, max(2, w // 2))), y0 + int(rng.integers(1, max(2, h // 2)))
        pixels[y0:y1, x0:x1] = rng.integers(0, 256, 3, dtype=np.uint8)
    return Image.fromarray(pixels, "RGB")


def _solid_or_pattern(w, h, color, seed):
    if color is not None:
        return Image.new("RGB", (w, h), color)
    return _pattern_image(w, h, seed)


def make_jpeg(w: int, h: int, color: Optional[tuple] = None, seed: int = 0, quality: int = 90, **save) -> bytes:
    """JPEG bytes of a ``w`` x ``h`` image: a solid ``color`` or a pattern from ``seed``."""
    buf = io.BytesIO()
    _solid_or_pattern(w, h, color, seed).save(buf, "JPEG", quality=quality, **save)
    return buf.getvalue()


def make_png(w: int, h: int, color: Optional[tuple] = None, seed: int = 0, mode: str = "RGB") -> bytes:
    """PNG bytes of a ``w`` x ``h`` image in ``mode`` (RGB, RGBA, L, P, ...)."""
    buf = io.BytesIO()
    _solid_or_pattern(w, h, color, seed).convert(mode).save(buf, "PNG")
    return buf.getvalue()


def make_image(w: int, h: int, fmt: str = "WEBP", color: Optional[tuple] = None, seed: int = 0, **save) -> bytes:
    """Bytes of an image in any format Pillow can write (WEBP, GIF, BMP, TIFF, ...)."""
    buf = io.BytesIO()
    _solid_or_pattern(w, h, color, seed).save(buf, fmt, **save)
    return buf.getvalue()


def truncate(data: bytes, keep: float = 0.5) -> bytes:
    """The first ``keep`` fraction of ``data`` (a truncated file)."""
    return data[: max(1, int(len(data) * keep))]


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def make_bomb_png(w: int = 30000, h: int = 30000) -> bytes:
    """A tiny PNG whose header declares ``w`` x ``h`` 8-bit grey pixels.

    Only the first rows are present (the IDAT stream stops early), so the file
    is a few hundred bytes; anything that decodes it before checking the
    declared size would allocate ``w * h`` bytes.
    """
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    rows = zlib.compressobj()
    idat = rows.compress(b"\0" * (4 * (w + 1))) + rows.flush(zlib.Z_SYNC_FLUSH)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


# ---------------------------------------------------------------- routes

Handler = Callable[["_RequestHandler", "LoopbackServer", int], None]


@dataclass
class Route:
    """What one path answers.

    ``kind``: "static" (status, headers, body), "trickle" (a byte every
    ``interval`` seconds until close), "endless" (body chunks forever, no
    Content-Length), "reset" (close the socket with an RST before answering).
    ``delay`` seconds pass before anything is sent. ``fail_first`` requests get
    ``fail_status`` with ``fail_headers`` before the route answers normally.
    ``handler(request, server, n)`` replaces all of it (``n`` counts requests).
    """

    status: int = 200
    body: bytes = b""
    headers: list = field(default_factory=list)  # (name, value) pairs; names may repeat
    content_type: Optional[str] = None
    delay: float = 0.0
    kind: str = "static"
    interval: float = 0.5
    fail_first: int = 0
    fail_status: int = 429
    fail_headers: list = field(default_factory=list)
    handler: Optional[Handler] = None


class _RequestHandler(BaseHTTPRequestHandler):
    server: "LoopbackServer"
    protocol_version = "HTTP/1.0"

    def log_message(self, format, *args):  # noqa: A002 - silence the default stderr log
        pass

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        srv = self.server
        path = urlsplit(self.path).path
        n = srv._record(self.path, path)
        try:
            route = srv.routes.get(path)
            if route is None:
                self._send(404, b"not found", [("Content-Type", "text/plain")])
            elif route.handler is not None:
                route.handler(self, srv, n)
            else:
                self._serve(route, n)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            pass
        finally:
            srv._leave(path)

    def _send(self, status, body, headers, content_length=True):
        self.send_response(status)
        names = {k.lower() for k, _ in headers}
        for k, v in headers:
            self.send_header(k, v)
        if content_length and "content-length" not in names:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _serve(self, route: Route, n: int):
        srv = self.server
        if route.delay and srv.stopping.wait(route.delay):
            return
        if n <= route.fail_first:
            self._send(route.fail_status, b"try later", list(route.fail_headers) + [("Content-Type", "text/plain")])
            return
        headers = list(route.headers)
        if route.content_type:
            headers.append(("Content-Type", route.content_type))
        if route.kind == "static":
            self._send(route.status, route.body, headers)
        elif route.kind == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        elif route.kind == "trickle":
            self._send(route.status, b"", headers + [("Content-Length", str(10**9))])
            while not srv.stopping.wait(route.interval):
                self.wfile.write(b"\0")
                self.wfile.flush()
        elif route.kind == "endless":
            self._send(route.status, b"", headers, content_length=False)
            chunk = route.body or b"\0" * 65536
            while not srv.stopping.is_set():
                self.wfile.write(chunk)
        else:
            raise ValueError(f"unknown route kind {route.kind!r}")


class LoopbackServer(ThreadingHTTPServer):
    """The test server; use ``start_server`` to make one."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, routes: dict):
        super().__init__(("127.0.0.1", 0), _RequestHandler)
        self.routes: dict[str, Route] = dict(routes)
        self.stopping = threading.Event()
        self.hits: list[str] = []  # raw request paths, in arrival order
        self._lock = threading.Lock()
        self._counts: Counter = Counter()
        self._in_flight: Counter = Counter()
        self._peak: Counter = Counter()
        self._thread: Optional[threading.Thread] = None
        self.companions: list["LoopbackServer"] = []

    # -- addresses
    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    # -- routes
    def add(self, path: str, body: bytes = b"", status: int = 200, headers=(), content_type: Optional[str] = None,
            delay: float = 0.0, **kw) -> str:
        """Add (or replace) a route; returns its URL. ``kw`` are other ``Route`` fields."""
        self.routes[path] = Route(status=status, body=body, headers=list(headers), content_type=content_type,
                                  delay=delay, **kw)
        return self.url(path)

    def add_route(self, path: str, route: Route) -> str:
        self.routes[path] = route
        return self.url(path)

    # -- bookkeeping
    def _record(self, raw_path: str, path: str) -> int:
        with self._lock:
            self.hits.append(raw_path)
            self._counts[path] += 1
            self._in_flight[path] += 1
            self._peak[path] = max(self._peak[path], self._in_flight[path])
            return self._counts[path]

    def _leave(self, path: str):
        with self._lock:
            self._in_flight[path] -= 1

    def hit_count(self, path: str) -> int:
        """Requests seen for ``path`` (query strings ignored)."""
        with self._lock:
            return self._counts[path]

    def peak_concurrency(self, path: str) -> int:
        """The most requests for ``path`` that were in flight at once."""
        with self._lock:
            return self._peak[path]

    # -- lifecycle
    def start(self) -> "LoopbackServer":
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def close(self):
        """Stop serving, release slow routes, and close companions."""
        self.stopping.set()
        self.shutdown()
        self.server_close()
        for other in self.companions:
            other.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def start_server(routes: Optional[dict] = None) -> LoopbackServer:
    """Serve ``routes`` (path -> Route) on 127.0.0.1 at a random port."""
    return LoopbackServer(routes or {}).start()


# ---------------------------------------------------------------- defaults

GOOD_IMAGES = {
    # path -> (format, width, height, seed)
    "/good.jpg": ("jpeg", 640, 480, 1),
    "/good_small.jpg": ("jpeg", 64, 48, 2),
    "/good_tall.jpg": ("jpeg", 300, 900, 3),
    "/good_wide.jpg": ("jpeg", 1200, 400, 4),
    "/good.png": ("png", 320, 320, 5),
    "/good_large.png": ("png", 1024, 768, 6),
}


def _slow_handler(seconds: float) -> Handler:
    def handle(req: _RequestHandler, srv: LoopbackServer, n: int):
        if srv.stopping.wait(seconds):
            return
        req._send(200, make_jpeg(16, 16, (0, 0, 0)), [("Content-Type", "image/jpeg")])

    return handle


def default_routes(other_base_url: str) -> dict:
    """The standard routes: good images and every bad kind the download path must survive."""
    jpg = [("Content-Type", "image/jpeg")]
    routes: dict[str, Route] = {}
    for path, (fmt, w, h, seed) in GOOD_IMAGES.items():
        body = make_jpeg(w, h, seed=seed) if fmt == "jpeg" else make_png(w, h, seed=seed)
        routes[path] = Route(body=body, content_type=f"image/{fmt}")
    good = routes["/good.jpg"].body
    routes.update({
        "/404": Route(status=404, body=b"gone", content_type="text/plain"),
        "/html.jpg": Route(body=b"<!doctype html><html><body>Not here</body></html>", content_type="image/jpeg"),
        "/truncated.jpg": Route(body=truncate(good), content_type="image/jpeg"),
        "/empty.jpg": Route(body=b"", content_type="image/jpeg"),
        "/bomb.png": Route(body=make_bomb_png(), content_type="image/png"),
        "/tiny.jpg": Route(body=make_jpeg(8, 8, seed=9), content_type="image/jpeg"),
        "/noai.jpg": Route(body=good, headers=jpg + [("X-Robots-Tag", "noai")]),
        "/noimageai.jpg": Route(body=good, headers=jpg + [("X-Robots-Tag", "noimageai")]),
        "/noindex.jpg": Route(body=good, headers=jpg + [("X-Robots-Tag", "noindex")]),
        "/noimageindex.jpg": Route(body=good, headers=jpg + [("X-Robots-Tag", "noimageindex")]),
        "/noai-ours.jpg": Route(body=good, headers=jpg + [("X-Robots-Tag", "clipcurate: noai, nofollow")]),
        "/noai-other-bot.jpg": Route(body=good, headers=jpg + [("X-Robots-Tag", "otherbot: noai")]),
        "/robots-multi.jpg": Route(body=good, headers=jpg + [("X-Robots-Tag", "nofollow"),
                                                             ("X-Robots-Tag", "noimageai")]),
        "/tdm.jpg": Route(body=good, headers=jpg + [("TDM-Reservation", "1")]),
        "/tdm0.jpg": Route(body=good, headers=jpg + [("TDM-Reservation", "0")]),
        "/hang.jpg": Route(handler=_slow_handler(25.0)),
        "/redirect": Route(status=302, headers=[("Location", "/good.jpg")]),
        "/redirect-abs": Route(status=301, headers=[("Location", "http://127.0.0.1:{port}/good.png")]),
        "/redirect-html": Route(status=302, headers=[("Location", "/page.html")]),
        "/page.html": Route(body=b"<html><body><img src='/good.jpg'></body></html>", content_type="text/html"),
        "/loop-a": Route(status=302, headers=[("Location", "/loop-b")]),
        "/loop-b": Route(status=302, headers=[("Location", "/loop-a")]),
        "/redirect-file": Route(status=302, headers=[("Location", "file:///etc/passwd")]),
        "/redirect-ftp": Route(status=302, headers=[("Location", "ftp://127.0.0.1/x.jpg")]),
        "/redirect-other-port": Route(status=302, headers=[("Location", other_base_url + "/other.jpg")]),
        "/trickle.jpg": Route(kind="trickle", content_type="image/jpeg"),
        "/endless.jpg": Route(kind="endless", content_type="image/jpeg"),
        "/reset.jpg": Route(kind="reset"),
        "/retry-after.jpg": Route(body=good, content_type="image/jpeg", fail_first=1, fail_status=429,
                                  fail_headers=[("Retry-After", "1")]),
        "/503.jpg": Route(status=503, body=b"busy", content_type="text/plain"),
        "/robots.txt": Route(body=b"User-agent: *\nDisallow: /private/\n", content_type="text/plain"),
        "/private/secret.jpg": Route(body=good, content_type="image/jpeg"),
        "/slow.jpg": Route(body=make_jpeg(16, 16, seed=7), content_type="image/jpeg", delay=0.3),
    })
    return routes


def start_default_server() -> LoopbackServer:
    """The main server with ``default_routes``; ``server.other`` serves ``/other.jpg`` on another port."""
    other = start_server({"/other.jpg": Route(body=make_jpeg(200, 150, seed=11), content_type="image/jpeg")})
    server = start_server(default_routes(other.base_url))
    loc = server.routes["/redirect-abs"].headers
    server.routes["/redirect-abs"].headers = [(k, v.format(port=server.port)) for k, v in loc]
    server.other = other
    server.companions.append(other)
    return server


if __name__ == "__main__":  # manual poking: python tests/webserver.py
    with start_default_server() as s:
        print("serving", s.base_url, "routes:", ", ".join(sorted(s.routes)))
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
