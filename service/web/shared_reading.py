"""One reading shared by the requests that ask for the same thing within a
moment of each other: the first one reads, the others wait for it and take
its result. Open staff dashboards refresh their queue every 5 seconds, and
several often fire together (tabs opened at once, a team's screens): six
refreshes within the moment cost one reading, not six fighting for two cores.
Kept per web process, for ``seconds`` only."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import TypeVar

T = TypeVar("T")


class SharedReading:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._guard = threading.Lock()
        self._locks: dict[Hashable, threading.Lock] = {}
        self._kept: dict[Hashable, tuple[float, object]] = {}

    def get(self, key: Hashable, read: Callable[[], T]) -> T:
        """``read()``'s result, or the one a request for ``key`` got less than
        ``seconds`` ago (waiting for a reading already under way)."""
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            started = time.monotonic()
            with self._guard:
                kept = self._kept.get(key)
            if kept is not None and started - kept[0] < self.seconds:
                return kept[1]
            value = read()
            with self._guard:
                # forget what is past its moment (nothing lingers: a search's
                # text is a key, the readings name patients)
                self._kept = {k: v for k, v in self._kept.items()
                              if started - v[0] < self.seconds}
                self._locks = {k: v for k, v in self._locks.items()
                               if k in self._kept or k == key}
                self._kept[key] = (started, value)
            return value
