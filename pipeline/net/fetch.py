"""Fetch one image URL safely: never raises, thread-safe, one ``Fetcher`` per worker.

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
through the same guarded path and cached; 401/403 disallow everything, other
4xx allow everything, and a failed fetch (5xx, timeout, connection error)
allows: an unreachable robots.txt is treated as absent. DNS resolution uses
the system resolver and is not bounded by the deadline.
"""
from __future__ import annotations

import email.utils
import functools
import heapq
import http.client
import ipaddress
import os
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import urllib.robotparser
from dataclasses import dataclass
from typing import Optional

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
from img2dataset.downloader import is_disallowed  # noqa: E402

from clipcurate.filters.base import Drop  # noqa: E402

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

    def __post_init__(self):
        if self.timeout <= 0:
            raise ValueError("timeout must be positive")
        if self.retries < 0 or self.max_redirects < 0:
            raise ValueError("retries and max_redirects must be >= 0")
        if self.max_bytes <= 0 or self.per_host_concurrency <= 0:
            raise ValueError("max_bytes and per_host_concurrency must be positive")
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


class _Fail(Exception):
    """One attempt ended without an image; carries the drop and retry hints."""

    def __init__(self, reason: str, message: str, status=None, transient=False, retry_after=None,
                 final_url=None, content_type=None):
        super().__init__(message)
        self.drop = Drop(reason, message)
        self.status = status
        self.transient = transient
        self.retry_after = retry_after
        self.final_url = final_url
        self.content_type = content_type


class _PrivateAddress(OSError):
    pass


def _classify(err: BaseException, deadline: "_Deadline") -> _Fail:
    """Map an exception from the socket/http/urllib layers to a failure."""
    if isinstance(err, urllib.error.URLError) and isinstance(err.reason, BaseException):
        err = err.reason
    if isinstance(err, _PrivateAddress):
        return _Fail("private_address", str(err))
    if deadline.expired() or isinstance(err, (TimeoutError, socket.timeout)):
        return _Fail("timeout", f"no complete answer within the deadline ({type(err).__name__})", transient=True)
    if isinstance(err, socket.gaierror):
        return _Fail("connection_error", f"cannot resolve host: {err}")
    if isinstance(err, ssl.SSLCertVerificationError):
        return _Fail("connection_error", f"TLS certificate: {err.verify_message or err}")
    if isinstance(err, (OSError, http.client.HTTPException, urllib.error.URLError)):
        return _Fail("connection_error", f"{type(err).__name__}: {err}", transient=True)
    if isinstance(err, ValueError):
        return _Fail("malformed_url", str(err))
    raise err  # a bug, not a network failure


# ---------------------------------------------------------------- deadline + address guard


class _Watchdog:
    """One thread per Fetcher that shuts sockets down when their deadline passes."""

    def __init__(self):
        self._cond = threading.Condition()
        self._heap: list = []  # (at, seq, guard)
        self._seq = 0
        self._stopped = False
        self._thread: Optional[threading.Thread] = None

    def watch(self, at: float, guard: "_Guard"):
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="fetch-watchdog", daemon=True)
                self._thread.start()
            self._seq += 1
            heapq.heappush(self._heap, (at, self._seq, guard))
            if self._heap[0][2] is guard:
                self._cond.notify()

    def stop(self):
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def _run(self):
        with self._cond:
            while not self._stopped:
                if not self._heap:
                    self._cond.wait()
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                _, _, guard = heapq.heappop(self._heap)
                guard.fire()


class _Guard:
    """One armed socket: shut down on ``fire`` unless cancelled first."""

    __slots__ = ("sock", "lock", "done", "fired")

    def __init__(self, sock: socket.socket):
        self.sock, self.lock, self.done, self.fired = sock, threading.Lock(), False, False

    def fire(self):
        with self.lock:
            if self.done:
                return
            self.done = self.fired = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed

    def cancel(self):
        with self.lock:
            self.done = True


class _Deadline:
    """A wall-clock deadline; the watchdog shuts the current socket down when it passes."""

    def __init__(self, seconds: float, watchdog: _Watchdog):
        self.at = time.monotonic() + seconds
        self._watchdog = watchdog
        self._guard: Optional[_Guard] = None
        self._fired = False

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def expired(self) -> bool:
        fired = self._fired or (self._guard is not None and self._guard.fired)
        return fired or self.remaining() <= 0

    def arm(self, sock: socket.socket):
        self.disarm()
        self._guard = _Guard(sock)
        self._watchdog.watch(self.at, self._guard)

    def disarm(self):
        if self._guard is not None:
            self._guard.cancel()
            self._fired = self._fired or self._guard.fired
            self._guard = None


def address_is_public(ip: str) -> bool:
    """True when ``ip`` is a global unicast address (IPv4-mapped IPv6 unwrapped)."""
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return not (addr.is_private or addr.is_loopback or addr.is_link_local or addr.is_multicast
                or addr.is_reserved or addr.is_unspecified or not addr.is_global)


def _connect_checked(host: str, port: int, allow_private: bool, deadline: _Deadline) -> socket.socket:
    """Resolve ``host``, check every address, connect to a checked one, arm the deadline."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    if not allow_private:
        for *_, sockaddr in infos:
            if not address_is_public(sockaddr[0]):
                raise _PrivateAddress(f"{host} resolves to non-public address {sockaddr[0]}")
    last: Optional[OSError] = None
    for family, kind, proto, _, sockaddr in infos:
        if deadline.remaining() <= 0:
            raise TimeoutError("deadline passed while connecting")
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(deadline.remaining())
            sock.connect(sockaddr)
        except OSError as err:
            sock.close()
            last = err
            continue
        deadline.arm(sock)
        return sock
    raise last or OSError(f"no address for {host}")


class _GuardedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args, allow_private: bool, deadline: _Deadline, **kw):
        super().__init__(*args, **kw)
        self._create_connection = lambda address, timeout=None, source=None: _connect_checked(
            address[0], address[1], allow_private, deadline)


class _GuardedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, *args, allow_private: bool, deadline: _Deadline, **kw):
        super().__init__(*args, **kw)
        self._create_connection = lambda address, timeout=None, source=None: _connect_checked(
            address[0], address[1], allow_private, deadline)


class _GuardedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, allow_private: bool):
        super().__init__()
        self._allow_private = allow_private

    def http_open(self, req):
        return self.do_open(functools.partial(_GuardedHTTPConnection, allow_private=self._allow_private,
                                              deadline=req.deadline), req)


class _GuardedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, allow_private: bool):
        super().__init__(context=ssl.create_default_context())
        self._allow_private = allow_private

    def https_open(self, req):
        return self.do_open(functools.partial(_GuardedHTTPSConnection, allow_private=self._allow_private,
                                              deadline=req.deadline), req, context=self._context)


def _build_opener(allow_private: bool) -> urllib.request.OpenerDirector:
    """An opener with only our guarded handlers: no proxies, no automatic redirects, no error raising."""
    opener = urllib.request.OpenerDirector()
    for handler in (_GuardedHTTPHandler(allow_private), _GuardedHTTPSHandler(allow_private)):
        opener.add_handler(handler)
    return opener


# ---------------------------------------------------------------- per-host slots + robots cache


class _HostSlots:
    """At most ``limit`` requests in flight per host key; entries vanish when unused."""

    def __init__(self, limit: int):
        self._limit = limit
        self._lock = threading.Lock()
        self._slots: dict[str, list] = {}  # key -> [semaphore, users]

    def acquire(self, key: str, timeout: float) -> bool:
        with self._lock:
            entry = self._slots.setdefault(key, [threading.BoundedSemaphore(self._limit), 0])
            entry[1] += 1
        if entry[0].acquire(timeout=max(0.0, timeout)):
            return True
        self._forget(key)
        return False

    def release(self, key: str):
        self._slots[key][0].release()
        self._forget(key)

    def _forget(self, key: str):
        with self._lock:
            entry = self._slots[key]
            entry[1] -= 1
            if entry[1] == 0:
                del self._slots[key]


def _origin(parts: urllib.parse.SplitResult) -> str:
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{parts.hostname}:{port}"


def _ascii_url(url: str) -> str:
    """``url`` with an IDNA host and percent-encoded non-ASCII path/query (HTTP needs ASCII)."""
    if url.isascii():
        return url
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname.encode("idna").decode("ascii") if parts.hostname else ""
    except (ValueError, UnicodeError):
        return url  # left as is: the request fails as malformed_url
    netloc = host if ":" not in host else f"[{host}]"
    if parts.port:
        netloc += f":{parts.port}"
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    safe = "/?&=+%:@!$'()*,;~[]"
    return urllib.parse.urlunsplit((parts.scheme, netloc, urllib.parse.quote(parts.path, safe=safe),
                                    urllib.parse.quote(parts.query, safe=safe),
                                    urllib.parse.quote(parts.fragment, safe=safe)))


def _retry_after_seconds(value: Optional[str]) -> Optional[float]:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


# ---------------------------------------------------------------- the fetcher


class Fetcher:
    """Fetches URLs with the guards in the module docstring; share one per worker across threads."""

    def __init__(self, config: FetchConfig = FetchConfig()):
        self.config = config
        self._opener = _build_opener(config.allow_private_network)
        self._slots = _HostSlots(config.per_host_concurrency)
        self._robots: dict[str, Optional[urllib.robotparser.RobotFileParser]] = {}
        self._robots_locks: dict[str, threading.Lock] = {}
        self._robots_guard = threading.Lock()
        self._closed = threading.Event()
        self._watchdog = _Watchdog()

    def close(self):
        """Stop waiting between retries and the watchdog thread; cached robots.txt files are dropped."""
        self._closed.set()
        self._watchdog.stop()
        with self._robots_guard:
            self._robots.clear()
            self._robots_locks.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- public
    def fetch(self, url: str) -> FetchResult:
        """Download ``url``; failures come back as ``FetchResult.drop``, never as exceptions."""
        cfg = self.config
        deadline = _Deadline(cfg.timeout, self._watchdog)
        attempts = 0
        while True:
            attempts += 1
            try:
                final_url, status, ctype, body = self._attempt(url, deadline)
                return FetchResult(url, final_url, status, ctype, body, None, attempts)
            except _Fail as fail:
                wait = self._retry_wait(fail, attempts, deadline)
                if wait is None:
                    return FetchResult(url, fail.final_url, fail.status, fail.content_type, None, fail.drop, attempts)
            except Exception as err:  # noqa: BLE001 - the contract is "never raises": a bug becomes a reject row
                drop = Drop("internal_error", f"fetch {type(err).__name__}: {err}")
                return FetchResult(url, None, None, None, None, drop, attempts)
            if self._closed.wait(wait):
                return FetchResult(url, None, None, None, None, Drop("connection_error", "fetcher closed"), attempts)

    # -- retries
    def _retry_wait(self, fail: _Fail, attempts: int, deadline: _Deadline) -> Optional[float]:
        """Seconds to wait before the next attempt, or None to give up."""
        if not fail.transient or attempts > self.config.retries:
            return None
        wait = fail.retry_after if fail.retry_after is not None else 0.2 * 2 ** (attempts - 1)
        wait = min(wait, self.config.max_retry_after)
        if deadline.remaining() - wait < 0.05:
            return None
        return wait

    # -- one attempt, following redirects
    def _attempt(self, url: str, deadline: _Deadline):
        cfg = self.config
        current = _ascii_url(url)
        seen = {current}
        for hop in range(cfg.max_redirects + 1):
            parts = self._check_url(current, first=hop == 0)
            if cfg.respect_robots_txt and not self._robots_allow(parts, current, deadline):
                raise _Fail("robots_disallowed", f"robots.txt disallows {current}", final_url=current)
            location = self._exchange(current, parts, deadline, lambda resp: self._finish(current, resp, deadline))
            if isinstance(location, tuple):
                return location
            nxt = _ascii_url(urllib.parse.urljoin(current, location))
            if nxt in seen:
                raise _Fail("too_many_redirects", f"redirect loop at {nxt}", final_url=current)
            seen.add(nxt)
            current = nxt
        raise _Fail("too_many_redirects", f"more than {cfg.max_redirects} redirects", final_url=current)

    def _check_url(self, url: str, first: bool) -> urllib.parse.SplitResult:
        try:
            parts = urllib.parse.urlsplit(url)
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError as err:
            raise _Fail("malformed_url" if first else "bad_redirect", f"bad URL {url!r}: {err}") from None
        if parts.scheme not in ("http", "https"):
            reason = "unsupported_scheme" if first else "bad_redirect"
            raise _Fail(reason, f"scheme {parts.scheme!r} not allowed: {url[:200]}")
        if not parts.hostname:
            raise _Fail("malformed_url" if first else "bad_redirect", f"no host in {url[:200]!r}")
        return parts

    def _exchange(self, url, parts, deadline, on_response):
        """Open ``url`` holding a per-host slot; returns ``on_response(resp)`` or a redirect Location."""
        key = _origin(parts)
        if not self._slots.acquire(key, deadline.remaining()):
            raise _Fail("timeout", f"no free connection slot for {key} before the deadline", transient=True)
        try:
            req = urllib.request.Request(url, headers={"User-Agent": self.config.user_agent,
                                                       "Accept": "image/*,*/*;q=0.8"})
            req.deadline = deadline
            try:
                resp = self._opener.open(req, timeout=max(0.001, deadline.remaining()))
            except _Fail:
                raise
            except (OSError, http.client.HTTPException, ValueError) as err:
                raise _classify(err, deadline) from None
            try:
                status = resp.status
                if 300 <= status < 400 and status != 304:
                    location = resp.headers.get("Location")
                    if not location:
                        raise _Fail("http_error", f"HTTP {status} without Location", status=status, final_url=url)
                    return location
                return on_response(resp)
            finally:
                resp.close()
        finally:
            deadline.disarm()
            self._slots.release(key)

    def _finish(self, url: str, resp, deadline: _Deadline):
        """Check status and opt-outs, then read the body; returns (final_url, status, content_type, body)."""
        cfg = self.config
        status = resp.status
        ctype = resp.headers.get("Content-Type")
        if status >= 400 or status < 200:
            transient = status == 429 or status >= 500
            raise _Fail("http_error", f"HTTP {status}", status=status, transient=transient,
                        retry_after=_retry_after_seconds(resp.headers.get("Retry-After")),
                        final_url=url, content_type=ctype)
        if cfg.respect_opt_outs:
            if is_disallowed(resp.headers, cfg.user_agent_token, OPT_OUT_DIRECTIVES):
                tags = ", ".join(resp.headers.get_all("X-Robots-Tag", []))
                raise _Fail("opted_out", f"X-Robots-Tag: {tags}", status=status, final_url=url, content_type=ctype)
            if (resp.headers.get("TDM-Reservation") or "").strip() == "1":
                raise _Fail("tdm_reserved", "TDM-Reservation: 1", status=status, final_url=url, content_type=ctype)
        body = self._read_body(resp, deadline, cfg.max_bytes, url)
        if not body:
            raise _Fail("empty_body", "the response body is empty", status=status, final_url=url, content_type=ctype)
        return url, status, ctype, body

    @staticmethod
    def _read_body(resp, deadline: _Deadline, max_bytes: int, url: str) -> bytes:
        declared = resp.headers.get("Content-Length")
        if declared and declared.strip().isdigit() and int(declared) > max_bytes:
            raise _Fail("too_large", f"Content-Length {int(declared)} > cap {max_bytes}", status=resp.status,
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
                    raise _Fail("too_large", f"body over the cap of {max_bytes} bytes", status=resp.status,
                                final_url=url)
                chunks.append(chunk)
        except (OSError, http.client.HTTPException) as err:
            fail = _classify(err, deadline)
            fail.status, fail.final_url = resp.status, url
            raise fail from None
        if deadline.expired():  # the watchdog's shutdown looks like an early end of body
            raise _Fail("timeout", "no complete answer within the deadline", status=resp.status, final_url=url,
                        transient=True)
        return b"".join(chunks)

    # -- robots.txt
    def robots_allowed(self, url: str) -> bool:
        """Whether robots.txt lets us fetch ``url`` (always True unless ``respect_robots_txt``).

        Uses the per-site cache, so pages, redirect hops and images of a site share one robots.txt request.
        """
        if not self.config.respect_robots_txt:
            return True
        try:
            parts = urllib.parse.urlsplit(_ascii_url(url))
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            return True  # not a fetchable URL: fetching it gives its own reason
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return True
        deadline = _Deadline(self.config.timeout, self._watchdog)
        try:
            return self._robots_allow(parts, _ascii_url(url), deadline)
        finally:
            deadline.disarm()

    def _robots_allow(self, parts: urllib.parse.SplitResult, url: str, deadline: _Deadline) -> bool:
        origin = _origin(parts)
        with self._robots_guard:
            if origin in self._robots:
                rules = self._robots[origin]
                return rules is None or rules.can_fetch(self.config.user_agent_token, url)
            lock = self._robots_locks.setdefault(origin, threading.Lock())
        with lock:  # one thread per origin fetches; the others wait for its answer
            with self._robots_guard:
                known = origin in self._robots
                rules = self._robots.get(origin)
            if not known:
                rules = self._load_robots(origin, deadline)
                with self._robots_guard:
                    self._robots[origin] = rules
        return rules is None or rules.can_fetch(self.config.user_agent_token, url)

    def _load_robots(self, origin: str, deadline: _Deadline) -> Optional[urllib.robotparser.RobotFileParser]:
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
        except _Fail:
            return None  # unreachable robots.txt is treated as absent
        return None
