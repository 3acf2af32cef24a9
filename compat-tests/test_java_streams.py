"""Kafka Streams (4.4.0 and 4.0.1) against kbroker: a word count with exactly_once_v2.

The application splits lines into words, re-keys them by word (the `<app>-by-word-repartition`
topic) and counts them in a state store (its `<app>-word-counts-changelog` topic), writing each
new count to the output topic inside Streams' transactions. It runs over a first batch of
input, is stopped, its local state wiped (so the restart restores the store from the
changelog), and restarted with more input. A read_committed consumer of the output then sees,
for every word, the last count equal to its number of occurrences in all the input, and each
word's counts increase one by one: nothing was counted twice or lost.
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Iterator

import pytest
from java_driver import JAVA_CLIENT_VERSIONS, JavaDriver, driver_for

FIRST = ["the quick brown fox", "jumps over the lazy dog", "the dog sleeps"]
SECOND = ["a quick dog", "the end"]


@pytest.fixture(scope="module")
def kbroker(module_broker_factory):
    return module_broker_factory("offsets.topic.num.partitions=3", "transaction.state.log.num.partitions=3")


@pytest.fixture(scope="module", params=JAVA_CLIENT_VERSIONS)
def java(request, kbroker, tmp_path_factory) -> Iterator[JavaDriver]:
    yield from driver_for(request, kbroker.bootstrap, tmp_path_factory)


def send_lines(java: JavaDriver, topic: str, lines: list[str]) -> None:
    java.call("producer", "lines", acks="all")
    for i, line in enumerate(lines):
        # the driver's arguments are space-separated: '-' stands for the space (both split words)
        java.call("send", "lines", topic=topic, key=f"line-{i}", value=line.replace(" ", "-"))
    java.call("close_producer", "lines")


def all_counts(java: JavaDriver, topic: str, expected: Counter) -> dict[str, list[int]]:
    """Every count the output holds per word, in order, read_committed: one record per word
    occurrence is awaited (up to a deadline; the caller asserts what arrived)."""
    name = f"counts-{topic}"
    java.call("consumer", name, **{"isolation.level": "read_committed", "enable.auto.commit": "false"})
    tps = [f"{topic}:{p}" for p in range(2)]
    java.call("assign", name, tps=tps)
    java.call("seek_to_beginning", name, tps=tps)
    records = java.call("poll", name, max=sum(expected.values()), timeout_ms=60000)
    java.call("close_consumer", name)
    counts: dict[str, list[int]] = {}
    for record in sorted(records, key=lambda r: (r["partition"], r["offset"])):
        counts.setdefault(record["key"], []).append(int(record["value"]))
    return counts


def test_word_count_exactly_once_across_a_restart(java, tmp_path):
    suffix = java.version.replace(".", "_")
    app, source, sink = f"wordcount-{suffix}", f"lines-{suffix}", f"counts-{suffix}"
    java.call("create_topic", name=source, partitions=2)
    java.call("create_topic", name=sink, partitions=2)
    state_dir = tmp_path / "state"
    settings = {"app": app, "input": source, "output": sink, "state_dir": state_dir, "guarantee": "exactly_once_v2"}
    send_lines(java, source, FIRST)
    assert java.call("streams_start", "wc", **settings) == "RUNNING"
    first = Counter(word for line in FIRST for word in line.split())
    assert {w: c[-1] for w, c in all_counts(java, sink, first).items()} == dict(first)
    java.call("streams_stop", "wc")
    topics = java.call("list_topics")
    assert f"{app}-word-counts-changelog" in topics
    assert f"{app}-by-word-repartition" in topics

    shutil.rmtree(state_dir)  # the restart restores the store from its changelog
    send_lines(java, source, SECOND)
    assert java.call("streams_start", "wc", **settings) == "RUNNING"
    total = first + Counter(word for line in SECOND for word in line.split())
    counts = all_counts(java, sink, total)
    java.call("streams_stop", "wc")
    # exactly once: each word's counts go up by one per occurrence, none repeated or skipped
    assert all(seen == list(range(1, total[word] + 1)) for word, seen in counts.items()), counts
