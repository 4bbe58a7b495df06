"""Fetch one image URL safely: never raises, thread-safe, one ``Fetcher`` per worker.

The parts live beside this module: ``deadline`` (watchdog), ``guard`` (address checks and the
opener), ``failures`` (reasons and the one definition of transient), ``robots`` (bounded cache),
``slots`` (per-host concurrency), ``urls``; this module owns ``FetchConfig`` and ``Fetcher``.

Why not img2dataset's ``download_image``: it opens URLs with the process-wide
``urllib.request.urlopen``, which follows redirects and environment proxies
without letting us check each hop's address, applies its timeout per socket
operation (a server trickling one byte a second never times out), reads the
whole body with no byte cap, retries every error (404s included) and reports
failures only as strings. So the request goes through an opener built per
``Fetcher`` from our own handlers instead, and img2dataset's ``is_disallowed``
does the X-Robots-Tag check:

- the connection resolves the host itself, refuses it if ANY resolved address
  is private, loopback, link-local, multicast, reserved, unspecified or
  otherwise not global (IPv4-mapped IPv6 unwrapped first), then connects to
  that checked IP, so DNS cannot change its answer in between;
- redirects are followed by hand, one hop at a time, each hop's scheme,
  address, robots.txt and the hop count checked again (a loop ends at once);
- one wall-clock deadline covers the whole fetch (connect, headers, body,
  retries): a watchdog shuts the socket down when it passes, and the body is
  read in chunks against it and the byte cap;
- no proxy handler is installed: environment proxies are ignored.

Transient failures (timeouts, connection errors, 429, 5xx) are retried
``retries`` times within the deadline, waiting ``Retry-After`` (seconds or an
HTTP date) capped by ``max_retry_after``, or a short backoff. At most
``per_host_concurrency`` requests run at once against one host:port.

robots.txt (``respect_robots_txt``) is fetched once per scheme://host:port
through the same guarded path and cached (LRU, ``robots_cache_size`` origins); 401/403 disallow everything, other
4xx allow everything, and a failed fetch (5xx, timeout, connection error)
allows: an unreachable robots.txt is treated as absent. DNS resolution uses
the system resolver and is not bounded by the deadline.
"""
from __future__ import annotations

import http.client
import threading
import urllib.parse
import urllib.request
import urllib.robotparser
from dataclasses import dataclass
from typing import Optional

from clipcurate.pipeline.imports import is_disallowed  # noqa: E402

from clipcurate.filters.base import Drop  # noqa: E402
from clipcurate.pipeline.net.deadline import Deadline, Watchdog  # noqa: E402
from clipcurate.pipeline.net.failures import Fail, classify  # noqa: E402
from clipcurate.pipeline.net.guard import address_is_public, build_opener  # noqa: E402,F401 - re-exported
from clipcurate.pipeline.net.robots import RobotsCache  # noqa: E402
from clipcurate.pipeline.net.slots import HostSlots  # noqa: E402
from clipcurate.pipeline.net.urls import ascii_url, origin, retry_after_seconds  # noqa: E402

OPT_OUT_DIRECTIVES = frozenset({"noai", "noimageai", "noindex", "noimageindex"})
_CHUNK = 64 * 1024
_ROBOTS_MAX_BYTES = 512 * 1024


@dataclass(frozen=True)
class FetchConfig:
    timeout: float = 10.0  # total deadline per fetch (connect + headers + body + retries), seconds
    retries: int = 1  # extra attempts, only for transient errors (timeouts, connection errors, 429, 5xx)
    max_bytes: int = 20_000_000  # byte cap on the response body
    max_redirects: int = 5
    allow_private_network: bool = False
    user_agent: str = "clipcurate/0.1 (+https://github.com/clipcurate/clipcurate; data curation for CLIP training)"
    user_agent_token: str = "clipcurate"
    respect_opt_outs: bool = True  # X-Robots-Tag noai/noimageai/noindex/noimageindex and TDM-Reservation: 1
    respect_robots_txt: bool = False
    per_host_concurrency: int = 4
    max_retry_after: float = 30.0
    robots_cache_size: int = 10_000  # origins whose robots.txt stays cached (least recently used evicted)

    def __post_init__(self):
        if self.timeout <= 0:
            raise ValueError("timeout must be positive")
        if self.retries < 0 or self.max_redirects < 0:
            raise ValueError("retries and max_redirects must be >= 0")
        if self.max_bytes <= 0 or self.per_host_concurrency <= 0:
            raise ValueError("max_bytes and per_host_concurrency must be positive")
        if self.robots_cache_size <= 0:
            raise ValueError("robots_cache_size must be positive")
        if self.max_retry_after < 0:
            raise ValueError("max_retry_after must be >= 0")


@dataclass(frozen=True)
class FetchResult:
    url: str
    final_url: Optional[str]
    status: Optional[int]
    content_type: Optional[str]
    body: Optional[bytes]
    drop: Optional[Drop]  # None on success
    attempts: int

    @property
    def ok(self) -> bool:
        return self.drop is None


# ---------------------------------------------------------------- failures


class Fetcher:
    """Fetches URLs with the guards in the module docstring; share one per worker across threads."""

    def __init__(self, config: FetchConfig = FetchConfig()):
        self.config = config
        self._opener = build_opener(config.allow_private_network)
        self._slots = HostSlots(config.per_host_concurrency)
        self._robots = RobotsCache(config.robots_cache_size)
        self._closed = threading.Event()
        self._watchdog = Watchdog()

    def close(self):
        """Stop waiting between retries and the watchdog thread; cached robots.txt files are dropped."""
        self._closed.set()
        self._watchdog.stop()
        self._robots.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- public
    def fetch(self, url: str) -> FetchResult:
        """Download ``url``; failures come back as ``FetchResult.drop``, never as exceptions."""
        cfg = self.config
        deadline = Deadline(cfg.timeout, self._watchdog)
        attempts = 0
        while True:
            attempts += 1
            try:
                final_url, status, ctype, body = self._attempt(url, deadline)
                return FetchResult(url, final_url, status, ctype, body, None, attempts)
            except Fail as fail:
                wait = self._retry_wait(fail, attempts, deadline)
                if wait is None:
                    return FetchResult(url, fail.final_url, fail.status, fail.content_type, None, fail.drop, attempts)
            except Exception as err:  # noqa: BLE001 - the contract is "never raises": a bug becomes a reject row
                drop = Drop("internal_error", f"fetch {type(err).__name__}: {err}")
                return FetchResult(url, None, None, None, None, drop, attempts)
            if self._closed.wait(wait):
                return FetchResult(url, None, None, None, None, Drop("connection_error", "fetcher closed"), attempts)

    # -- retries
    def _retry_wait(self, fail: Fail, attempts: int, deadline: Deadline) -> Optional[float]:
        """Seconds to wait before the next attempt, or None to give up."""
        if not fail.transient or attempts > self.config.retries:
            return None
        wait = fail.retry_after if fail.retry_after is not None else 0.2 * 2 ** (attempts - 1)
        wait = min(wait, self.config.max_retry_after)
        if deadline.remaining() - wait < 0.05:
            return None
        return wait

    # -- one attempt, following redirects
    def _attempt(self, url: str, deadline: Deadline):
        cfg = self.config
        current = ascii_url(url)
        seen = {current}
        for hop in range(cfg.max_redirects + 1):
            parts = self._check_url(current, first=hop == 0)
            if cfg.respect_robots_txt and not self._robots_allow(parts, current, deadline):
                raise Fail("robots_disallowed", f"robots.txt disallows {current}", final_url=current)
            location = self._exchange(current, parts, deadline, lambda resp: self._finish(current, resp, deadline))
            if isinstance(location, tuple):
                return location
            nxt = ascii_url(urllib.parse.urljoin(current, location))
            if nxt in seen:
                raise Fail("too_many_redirects", f"redirect loop at {nxt}", final_url=current)
            seen.add(nxt)
            current = nxt
        raise Fail("too_many_redirects", f"more than {cfg.max_redirects} redirects", final_url=current)

    def _check_url(self, url: str, first: bool) -> urllib.parse.SplitResult:
        try:
            parts = urllib.parse.urlsplit(url)
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError as err:
            raise Fail("malformed_url" if first else "bad_redirect", f"bad URL {url!r}: {err}") from None
        if parts.scheme not in ("http", "https"):
            reason = "unsupported_scheme" if first else "bad_redirect"
            raise Fail(reason, f"scheme {parts.scheme!r} not allowed: {url[:200]}")
        if not parts.hostname:
            raise Fail("malformed_url" if first else "bad_redirect", f"no host in {url[:200]!r}")
        return parts

    def _exchange(self, url, parts, deadline, on_response):
        """Open ``url`` holding a per-host slot; returns ``on_response(resp)`` or a redirect Location."""
        key = origin(parts)
        if not self._slots.acquire(key, deadline.remaining()):
            raise Fail("timeout", f"no free connection slot for {key} before the deadline")
        try:
            req = urllib.request.Request(url, headers={"User-Agent": self.config.user_agent,
                                                       "Accept": "image/*,*/*;q=0.8"})
            req.deadline = deadline
            try:
                resp = self._opener.open(req, timeout=max(0.001, deadline.remaining()))
            except Fail:
                raise
            except (OSError, http.client.HTTPException, ValueError) as err:
                raise classify(err, deadline) from None
            try:
                status = resp.status
                if 300 <= status < 400 and status != 304:
                    location = resp.headers.get("Location")
                    if not location:
                        raise Fail("http_error", f"HTTP {status} without Location", status=status, final_url=url)
                    return location
                return on_response(resp)
            finally:
                resp.close()
        finally:
            deadline.disarm()
            self._slots.release(key)

    def _finish(self, url: str, resp, deadline: Deadline):
        """Check status and opt-outs, then read the body; returns (final_url, status, content_type, body)."""
        cfg = self.config
        status = resp.status
        ctype = resp.headers.get("Content-Type")
        if status >= 400 or status < 200:
            raise Fail("http_error", f"HTTP {status}", status=status,
                        retry_after=retry_after_seconds(resp.headers.get("Retry-After")),
                        final_url=url, content_type=ctype)
        if cfg.respect_opt_outs:
            if is_disallowed(resp.headers, cfg.user_agent_token, OPT_OUT_DIRECTIVES):
                tags = ", ".join(resp.headers.get_all("X-Robots-Tag", []))
                raise Fail("opted_out", f"X-Robots-Tag: {tags}", status=status, final_url=url, content_type=ctype)
            if (resp.headers.get("TDM-Reservation") or "").strip() == "1":
                raise Fail("tdm_reserved", "TDM-Reservation: 1", status=status, final_url=url, content_type=ctype)
        body = self._read_body(resp, deadline, cfg.max_bytes, url)
        if not body:
            raise Fail("empty_body", "the response body is empty", status=status, final_url=url, content_type=ctype)
        return url, status, ctype, body

    @staticmethod
    def _read_body(resp, deadline: Deadline, max_bytes: int, url: str) -> bytes:
        declared = resp.headers.get("Content-Length")
        if declared and declared.strip().isdigit() and int(declared) > max_bytes:
            raise Fail("too_large", f"Content-Length {int(declared)} > cap {max_bytes}", status=resp.status,
                        final_url=url)
        chunks, total = [], 0
        try:
            while True:
                if deadline.expired():
                    raise TimeoutError("deadline passed while reading the body")
                chunk = resp.read1(_CHUNK)
                if not chunk:
                    break
                total += len(chunk)
                if total > max_bytes:
                    raise Fail("too_large", f"body over the cap of {max_bytes} bytes", status=resp.status,
                                final_url=url)
                chunks.append(chunk)
        except (OSError, http.client.HTTPException) as err:
            fail = classify(err, deadline)
            fail.status, fail.final_url = resp.status, url
            raise fail from None
        if deadline.expired():  # the watchdog's shutdown looks like an early end of body
            raise Fail("timeout", "no complete answer within the deadline", status=resp.status, final_url=url)
        return b"".join(chunks)

    # -- robots.txt
    def robots_allowed(self, url: str) -> bool:
        """Whether robots.txt lets us fetch ``url`` (always True unless ``respect_robots_txt``).

        Uses the per-site cache, so pages, redirect hops and images of a site share one robots.txt request.
        """
        if not self.config.respect_robots_txt:
            return True
        try:
            parts = urllib.parse.urlsplit(ascii_url(url))
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            return True  # not a fetchable URL: fetching it gives its own reason
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return True
        deadline = Deadline(self.config.timeout, self._watchdog)
        try:
            return self._robots_allow(parts, ascii_url(url), deadline)
        finally:
            deadline.disarm()

    def _robots_allow(self, parts: urllib.parse.SplitResult, url: str, deadline: Deadline) -> bool:
        rules = self._robots.rules(origin(parts), lambda key: self._load_robots(key, deadline))
        return rules is None or rules.can_fetch(self.config.user_agent_token, url)

    def _load_robots(self, origin: str, deadline: Deadline) -> Optional[urllib.robotparser.RobotFileParser]:
        """Parsed robots.txt for ``origin``; None means allow everything."""
        url = origin + "/robots.txt"
        rules = urllib.robotparser.RobotFileParser(url)
        current = url
        try:
            for _ in range(self.config.max_redirects + 1):
                parts = self._check_url(current, first=True)
                got = self._exchange(current, parts, deadline, lambda resp: (
                    resp.status, self._read_body(resp, deadline, _ROBOTS_MAX_BYTES, current)
                    if 200 <= resp.status < 300 else b""))
                if isinstance(got, str):
                    current = urllib.parse.urljoin(current, got)
                    continue
                status, body = got
                if status in (401, 403):
                    rules.disallow_all = True
                    return rules
                if 200 <= status < 300:
                    rules.parse(body.decode("utf-8", errors="replace").splitlines())
                    return rules
                return None  # 404 and other answers without a file: allow all
        except Fail:
            return None  # unreachable robots.txt is treated as absent
        return None
