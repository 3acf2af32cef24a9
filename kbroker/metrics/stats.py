"""Plain counters for the broker's metrics, bumped on the event loop and read on it.

Counting is per request, per partition of a request or per batch, never per record: a produce of
1,000 records costs a few dictionary updates. Nothing here takes a lock: every counter is written
and snapshotted on the event loop (the exporter asks the loop for a snapshot), so a scrape never
sees a half-updated value and never blocks the loop for longer than the snapshot takes.

The names are the Prometheus JMX exporter's for Kafka's MBeans (its example Kafka rules:
`kafka.<domain><type=T, name=N, k=v...>` becomes `kafka_<domain>_<t>_<n>` in lower case, `PerSec`
dropped, Count attributes as counters with `_total`, Value attributes as gauges, the MBean's keys
as labels). A `Family` is one metric with its samples, plain data for the exporter.
"""

from __future__ import annotations

import bisect
import contextvars
from collections import Counter
from dataclasses import dataclass, field
from functools import partial

# Request latency buckets, in milliseconds (Kafka's RequestMetrics histograms are in ms).
LATENCY_BUCKETS_MS: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0,
                                         1000.0, 2500.0, 5000.0, 10000.0, 30000.0)

# Seconds the current request spent parked in a purgatory (Kafka's remote time: waiting for
# followers or for fetchable bytes). A context variable, because the request's handler and the
# purgatory wait run in the connection's task while other connections' requests interleave.
remote_time_s: contextvars.ContextVar[float] = contextvars.ContextVar("remote_time_s", default=0.0)

HistogramSample = tuple[list[tuple[float, int]], float]  # cumulative (upper bound, count) pairs and the sum
Sample = tuple[dict[str, str], "float | HistogramSample"]


@dataclass(slots=True)
class Family:
    """One metric: its full Prometheus name (counters without `_total`, which the exposition
    adds), kind ("counter", "gauge" or "histogram"), help line and samples."""

    name: str
    kind: str
    help: str
    samples: list[Sample] = field(default_factory=list)


class Histogram:
    """Counts per bucket (not cumulative: one increment per observation), a sum and a count."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS_MS) + 1)  # the last is +Inf
        self.total = 0.0

    def observe(self, value_ms: float) -> None:
        self.counts[bisect.bisect_left(LATENCY_BUCKETS_MS, value_ms)] += 1
        self.total += value_ms

    def sample(self) -> HistogramSample:
        cumulative, running = [], 0
        for bound, count in zip((*LATENCY_BUCKETS_MS, float("inf")), self.counts, strict=True):
            running += count
            cumulative.append((bound, running))
        return cumulative, self.total


# Kafka's split of a request's time (RequestChannel.updateRequestMetrics): waiting in the request
# queue, in the handler, parked in a purgatory; total is from the request's arrival to its answer.
TIME_METRICS = ("totaltimems", "requestqueuetimems", "localtimems", "remotetimems")


class RequestTimes:
    """One API's four time histograms. The request pipeline appends each request's times as one
    tuple (queue, local, remote, total ms) to `samples`: one C call per request, no bisect;
    `fold()` sorts them into the histograms in C (a Counter over bisect_left) when a snapshot is
    taken or FOLD_AT requests have piled up."""

    __slots__ = ("samples", "_histograms")

    FOLD_AT = 1024  # requests: what `samples` may hold between folds

    def __init__(self) -> None:
        self.samples: list[tuple[float, float, float, float]] = []
        self._histograms = (Histogram(), Histogram(), Histogram(), Histogram())  # queue, local, remote, total

    def observe(self, queue_ms: float, local_ms: float, remote_ms: float, total_ms: float) -> None:
        self.samples.append((queue_ms, local_ms, remote_ms, total_ms))
        if len(self.samples) >= self.FOLD_AT:
            self.fold()

    def fold(self) -> None:
        samples = self.samples
        if not samples:
            return
        bucket = partial(bisect.bisect_left, LATENCY_BUCKETS_MS)
        for values, histogram in zip(zip(*samples, strict=True), self._histograms, strict=True):
            counts = histogram.counts
            for index, count in Counter(map(bucket, values)).items():
                counts[index] += count
            histogram.total += sum(values)
        samples.clear()

    def histograms(self) -> tuple[Histogram, Histogram, Histogram, Histogram]:
        """In TIME_METRICS' order (total, queue, local, remote), with every sample folded in."""
        self.fold()
        queue, local, remote, total = self._histograms
        return total, queue, local, remote


class ApiRequestMetrics:
    """What one request of an API at one version counts into: the version's request count, and
    the API's time histograms and error counts (shared by its versions). The request pipeline
    looks it up once per API and version and keeps it, so a request costs no lookups here."""

    __slots__ = ("requests", "times", "errors")

    def __init__(self, times: RequestTimes, errors: dict[str, int]) -> None:
        self.requests = 0
        self.times = times
        self.errors = errors  # error name -> responses (Produce and Fetch: partitions) with it


class RequestMetrics:
    """kafka.network:type=RequestMetrics: requests per API and version, errors per API and error
    code, and the time histograms per API (Fetch also as FetchConsumer or FetchFollower)."""

    def __init__(self) -> None:
        self.apis: dict[tuple[str, int], ApiRequestMetrics] = {}
        self.errors: dict[str, dict[str, int]] = {}
        self.times: dict[str, RequestTimes] = {}

    def api(self, request: str, version: int) -> ApiRequestMetrics:
        """The counters of `request` at `version`, made on first use."""
        api = self.apis.get((request, version))
        if api is None:
            api = self.apis[(request, version)] = ApiRequestMetrics(self.times_of(request),
                                                                    self.errors.setdefault(request, {}))
        return api

    def times_of(self, request: str) -> RequestTimes:
        """The time histograms of `request` (or of FetchConsumer/FetchFollower), made on first use."""
        times = self.times.get(request)
        if times is None:
            times = self.times[request] = RequestTimes()
        return times

    def record(self, request: str, version: int, queue_ms: float, local_ms: float, remote_ms: float,
               total_ms: float) -> None:
        """One request, looked up by name (the pipeline keeps `api(...)` instead)."""
        api = self.api(request, version)
        api.requests += 1
        api.times.observe(queue_ms, local_ms, remote_ms, total_ms)

    def families(self) -> list[Family]:
        requests = Family("kafka_network_requestmetrics_requests", "counter",
                          "Requests received, per API and version (RequestsPerSec)",
                          [({"request": r, "version": str(v)}, api.requests) for (r, v), api in self.apis.items()
                           if api.requests])
        errors = Family("kafka_network_requestmetrics_errors", "counter",
                        "Error codes in responses, per API and error, NONE included (ErrorsPerSec)",
                        [({"request": r, "error": e}, n) for r, counts in self.errors.items() for e, n in counts.items()])
        times = [Family(f"kafka_network_requestmetrics_{name}", "histogram",
                        f"Request {name[:-6]} time in milliseconds, per API ({name})", [])
                 for name in TIME_METRICS]
        for request, request_times in self.times.items():
            for family, histogram in zip(times, request_times.histograms(), strict=True):
                family.samples.append(({"request": request}, histogram.sample()))
        return [requests, errors, *times]


class TopicStats:
    """kafka.server:type=BrokerTopicMetrics for one topic."""

    __slots__ = ("messages_in", "bytes_in", "bytes_out", "replication_bytes_out", "bytes_rejected",
                 "total_produce_requests", "total_fetch_requests", "failed_produce_requests", "failed_fetch_requests")

    def __init__(self) -> None:
        self.messages_in = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.replication_bytes_out = 0
        self.bytes_rejected = 0
        self.total_produce_requests = 0
        self.total_fetch_requests = 0
        self.failed_produce_requests = 0
        self.failed_fetch_requests = 0


# (attribute of TopicStats, the MBean name without PerSec, lower case; help)
_TOPIC_METRICS = (
    ("messages_in", "messagesin", "Records appended by this broker as leader"),
    ("bytes_in", "bytesin", "Bytes of record batches appended by this broker as leader"),
    ("bytes_out", "bytesout", "Bytes of records sent to consumers (not followers)"),
    ("replication_bytes_out", "replicationbytesout", "Bytes of records sent to followers"),
    ("bytes_rejected", "bytesrejected", "Bytes of produced batches the log refused"),
    ("total_produce_requests", "totalproducerequests", "Partition appends asked of this broker"),
    ("total_fetch_requests", "totalfetchrequests", "Partition reads asked of this broker"),
    ("failed_produce_requests", "failedproducerequests", "Partition appends that failed"),
    ("failed_fetch_requests", "failedfetchrequests", "Partition reads that failed"),
)


class BrokerTopicStats:
    """Kafka's BrokerTopicStats: per-topic counters; the all-topics MBean (no topic label) is
    their sum, made when a scrape asks, so the hot path updates one object, not two."""

    def __init__(self) -> None:
        self.topics: dict[str, TopicStats] = {}

    def topic(self, name: str) -> TopicStats:
        stats = self.topics.get(name)
        if stats is None:
            stats = self.topics[name] = TopicStats()
        return stats

    def remove_topic(self, name: str) -> None:
        self.topics.pop(name, None)

    def families(self) -> list[Family]:
        families = []
        for attribute, name, help_text in _TOPIC_METRICS:
            per_topic = [({"topic": topic}, getattr(stats, attribute)) for topic, stats in self.topics.items()]
            total = sum(value for _, value in per_topic)
            families.append(Family(f"kafka_server_brokertopicmetrics_{name}", "counter", help_text,
                                   [({}, total), *per_topic]))
        return families
