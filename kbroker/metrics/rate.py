"""Kafka's sampled Rate (org.apache.kafka.common.metrics.stats.Rate) and the throttle time of a
rate over its quota (QuotaUtils.throttleTime): the client quotas (security/client_quota_manager.py)
and the connection creation rates (network/connection_quotas.py) measure with them.

Plain data, no clock of its own: callers pass the time in milliseconds.
"""

from __future__ import annotations

from collections import deque


class Rate:
    """Kafka's Rate over a SampledStat: the sum of the retained samples per second of the window."""

    __slots__ = ("samples", "window_ms", "num_samples")

    def __init__(self, num_samples: int, window_ms: int) -> None:
        self.samples: deque[list[float]] = deque()  # [start ms, value], oldest first
        self.window_ms = window_ms
        self.num_samples = num_samples

    def record(self, value: float, now_ms: float) -> None:
        samples = self.samples
        if not samples or now_ms - samples[-1][0] >= self.window_ms:
            samples.append([now_ms, 0.0])
            if len(samples) > self.num_samples:
                samples.popleft()
        samples[-1][1] += value

    def _purge(self, now_ms: float) -> None:
        expire_ms = self.num_samples * self.window_ms
        samples = self.samples
        while samples and now_ms - samples[0][0] >= expire_ms:
            samples.popleft()

    def window_size_ms(self, now_ms: float) -> float:
        """Kafka's Rate.windowSize: time since the oldest sample, counted as at least N-1 whole
        windows so that a rate just started is not overestimated."""
        self._purge(now_ms)
        elapsed = now_ms - self.samples[0][0] if self.samples else 0.0
        full = int(elapsed // self.window_ms)
        if full < self.num_samples - 1:
            elapsed += (self.num_samples - 1 - full) * self.window_ms
        return max(elapsed, 1.0)

    def measure(self, now_ms: float) -> float:
        window = self.window_size_ms(now_ms)
        return sum(s[1] for s in self.samples) * 1000.0 / window


def throttle_time_ms(rate: Rate, bound: float, now_ms: float, max_throttle_ms: int | None = None) -> int:
    """0 while the rate is within `bound`; else Kafka's QuotaUtils.throttleTime, how long until the
    rate is back at the bound: `(rate - bound) / bound * window`, at most `max_throttle_ms`
    (QuotaUtils.boundedThrottleTime)."""
    value = rate.measure(now_ms)
    if value <= bound:
        return 0
    if bound <= 0:  # Kafka's division gives infinity, bounded to the maximum (or a window)
        return max_throttle_ms if max_throttle_ms is not None else round(rate.window_size_ms(now_ms))
    throttle = round((value - bound) / bound * rate.window_size_ms(now_ms))
    if max_throttle_ms is not None:
        throttle = min(throttle, max_throttle_ms)
    return max(throttle, 0)
