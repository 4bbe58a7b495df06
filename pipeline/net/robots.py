"""The robots.txt cache: one parsed file per scheme://host:port, fetched by one thread while the
others wait, bounded to the ``capacity`` most recently used origins so a long crawl over millions
of hosts does not grow it without limit (an evicted origin is fetched again when next seen)."""
from __future__ import annotations

import threading
import urllib.robotparser
from collections import OrderedDict
from typing import Callable, Optional

Rules = Optional[urllib.robotparser.RobotFileParser]  # None: allow everything


class RobotsCache:
    """LRU cache of robots.txt rules by origin; ``load(origin)`` fetches a missing one."""

    def __init__(self, capacity: int = 10_000):
        if capacity <= 0:
            raise ValueError("robots cache capacity must be positive")
        self.capacity = capacity
        self._rules: "OrderedDict[str, Rules]" = OrderedDict()
        self._loading: dict[str, list] = {}  # origin -> [lock, waiters]
        self._guard = threading.Lock()

    def __len__(self) -> int:
        return len(self._rules)

    def clear(self):
        with self._guard:
            self._rules.clear()

    def _lookup(self, origin: str):
        if origin in self._rules:
            self._rules.move_to_end(origin)
            return True, self._rules[origin]
        return False, None

    def rules(self, origin: str, load: Callable[[str], Rules]) -> Rules:
        """The rules for ``origin``, loading them once if they are not cached."""
        with self._guard:
            known, rules = self._lookup(origin)
            if known:
                return rules
            entry = self._loading.setdefault(origin, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0]:  # one thread per origin fetches; the others wait for its answer
                with self._guard:
                    known, rules = self._lookup(origin)
                if not known:
                    rules = load(origin)
                    with self._guard:
                        self._rules[origin] = rules
                        self._rules.move_to_end(origin)
                        while len(self._rules) > self.capacity:
                            self._rules.popitem(last=False)
                return rules
        finally:
            with self._guard:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._loading[origin]
