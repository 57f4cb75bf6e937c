"""Reporting of the worker's own errors: an ``error`` event each time, a log line at most once per
kind per interval.
"""

from __future__ import annotations

import logging
import threading
import time

from ._events import LocalEvents

logger = logging.getLogger("pyqueue.worker")


class LogThrottle:
    """At most one log line per ``key`` per ``interval`` seconds (no error floods);
    usable from any thread."""

    def __init__(self, interval: float = 5.0) -> None:
        self.interval = interval
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def ok(self, key: str) -> bool:
        """Whether a line about ``key`` may be logged now."""
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(key, -1e9) >= self.interval:
                self._last[key] = now
                return True
        return False


class Reporter:
    """Reports an error of one worker: the ``error`` event, and a throttled warning."""

    def __init__(self, name: str, events: LocalEvents, throttle: LogThrottle) -> None:
        self.name = name
        self.events = events
        self.throttle = throttle

    def report(self, key: str, exc: BaseException) -> None:
        """On the loop: emit ``error`` and log ``key: exc`` (throttled)."""
        self.events.emit("error", exc)
        self.warn(key, exc)

    def report_threadsafe(self, key: str, exc: BaseException) -> None:
        """From another thread: emit ``error`` on the loop and log (throttled)."""
        self.events.emit_threadsafe("error", exc)
        self.warn(key, exc)

    def warn(self, key: str, exc: BaseException | str) -> None:
        """Log ``key: exc`` at WARNING, at most once per interval per ``key``."""
        if self.throttle.ok(key):
            logger.warning("worker %s: %s: %s", self.name, key, exc)
