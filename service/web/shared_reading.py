"""One reading shared by the requests that ask for the same thing within a
moment of each other: the first one reads, the others wait for it and take
its result (or its error). Open staff dashboards refresh their queue every 5
seconds, and several often fire together (tabs opened at once, a team's
screens): six refreshes within the moment cost one reading, not six fighting
for two cores. Kept per web process, and only until the next request after
the moment (a search's text is a key, and the readings name patients)."""

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
        # key -> (when its reading started, its result, the error it raised)
        self._kept: dict[Hashable, tuple[float, object, BaseException | None]] = {}

    def get(self, key: Hashable, read: Callable[[], T]) -> T:
        """``read()``'s result, or that of a reading for ``key`` that started
        less than ``seconds`` before this call (waiting for it if it is still
        under way)."""
        arrived = time.monotonic()
        with self._guard:
            self._kept = {k: v for k, v in self._kept.items()
                          if arrived - v[0] < self.seconds}
            self._locks = {k: v for k, v in self._locks.items()
                           if k in self._kept or v.locked()}
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            with self._guard:
                kept = self._kept.get(key)
            if kept is None or kept[0] < arrived - self.seconds:
                started, value, error = time.monotonic(), None, None
                try:
                    value = read()
                except Exception as exc:  # noqa: BLE001 - those who waited for it get it too
                    error = exc
                kept = (started, value, error)
                with self._guard:
                    self._kept[key] = kept
        if kept[2] is not None:
            raise kept[2]
        return kept[1]
