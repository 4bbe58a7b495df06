"""One wall-clock deadline per fetch: a watchdog thread shuts the current socket down when it passes,
so a server that trickles bytes cannot hold a worker past ``timeout``."""
from __future__ import annotations

import heapq
import socket
import threading
import time
from typing import Optional


class Watchdog:
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


class Deadline:
    """A wall-clock deadline; the watchdog shuts the current socket down when it passes."""

    def __init__(self, seconds: float, watchdog: Watchdog):
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
