"""RateLimitedLog: at most one line per source and kind per interval, so that a client sending
malformed frames over and over cannot grow the broker's log without bound (issue 16, bug 6).

The first event of a (source, kind) in an interval is logged; the next ones are counted, and the
count is told with the first line logged once the interval has passed. Sources are client
addresses without their port: every new connection from one host is the same source. Memory is
bounded too: past `max_sources` entries the finished intervals are forgotten with their counts,
and if that is not enough, everything is (a few lines more is better than unbounded memory).

Plain code with an injectable clock; it knows nothing of requests or sockets.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

DEFAULT_INTERVAL_S = 60.0
DEFAULT_MAX_SOURCES = 10_000


def source_of(peer: str) -> str:
    """'10.0.0.5:53122' -> '10.0.0.5' (the port changes with every connection)."""
    host, sep, _port = peer.rpartition(":")
    return host if sep else peer


class RateLimitedLog:
    def __init__(self, logger: logging.Logger, interval_s: float = DEFAULT_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic, max_sources: int = DEFAULT_MAX_SOURCES) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self.clock = clock
        self.max_sources = max_sources
        self._windows: dict[tuple[str, str], list] = {}  # (source, kind) -> [interval start, held back]

    def warning(self, source: str, kind: str, message: str, *args: object, exc_info: bool = False) -> None:
        self.log(logging.WARNING, source, kind, message, *args, exc_info=exc_info)

    def log(self, level: int, source: str, kind: str, message: str, *args: object, exc_info: bool = False) -> None:
        """Log `message % args` unless (source, kind) already had its line in this interval."""
        now = self.clock()
        key = (source, kind)
        window = self._windows.get(key)
        if window is not None and now - window[0] < self.interval_s:
            window[1] += 1
            return
        held_back = window[1] if window is not None else 0
        if window is None and len(self._windows) >= self.max_sources:
            self._forget(now)
        self._windows[key] = [now, 0]
        if held_back:
            message += " (and %d more like it from %s since the last such line)"
            args = (*args, held_back, source)
        self.logger.log(level, message, *args, exc_info=exc_info)

    def _forget(self, now: float) -> None:
        finished = [key for key, (start, _) in self._windows.items() if now - start >= self.interval_s]
        for key in finished:
            del self._windows[key]
        if len(self._windows) >= self.max_sources:
            self._windows.clear()
