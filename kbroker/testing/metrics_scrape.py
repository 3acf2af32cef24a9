"""The broker's Prometheus endpoint (metrics.listener) read back by tests: samples keyed by name
and labels, and the requests one API received per version (Kafka's RequestsPerSec), which tells
a test which version a real client chose."""

from __future__ import annotations

import urllib.request

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
REQUESTS_TOTAL = "kafka_network_requestmetrics_requests_total"


def scrape(port: int, timeout: float = 10.0) -> Samples:
    from prometheus_client.parser import text_string_to_metric_families  # the tests' extra, not the broker's

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as answer:
        assert answer.status == 200
        text = answer.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def requests_by_version(port: int, request: str) -> dict[int, int]:
    """version -> requests received of the API named as Kafka's metrics name it ("TxnOffsetCommit")."""
    counts: dict[int, int] = {}
    for (name, labels), value in scrape(port).items():
        found = dict(labels)
        if name == REQUESTS_TOTAL and found.get("request") == request:
            counts[int(found["version"])] = counts.get(int(found["version"]), 0) + int(value)
    return counts
