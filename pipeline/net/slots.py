"""Per-host concurrency: at most N requests in flight against one scheme://host:port."""
from __future__ import annotations

import threading


class HostSlots:
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
