#!/usr/bin/env python3
"""The web console's speed with many topics (issue 14: the topic page answers well under 200 ms
with 1,000 topics).

Starts one kbroker with `console.listener` on a temporary data directory (kbroker.testing's
KafkaBroker, stopped by pid at the end), creates --topics topics of one partition each with a few
records in the one the page looks at, then times GET /api/topics (the topic list) and
GET /api/topics/{topic} (the topic page: partitions, offsets, configs), --runs times each after
a warm-up, and prints the medians (and a JSON line). Exit code 1 if a median reaches --limit-ms.

    .venv/bin/python scripts/bench_console.py [--topics 1000] [--runs 15] [--limit-ms 200]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import urllib.request

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from kbroker.testing import KafkaBroker
from kbroker.testing.processes import free_port

CREATE_BATCH = 100  # topics per CreateTopics request


def create_topics(bootstrap: str, count: int) -> list[str]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = [f"bench-console-{i:05d}" for i in range(count)]
    for start in range(0, count, CREATE_BATCH):
        futures = admin.create_topics([NewTopic(name, 1, 1) for name in names[start:start + CREATE_BATCH]])
        for future in futures.values():
            future.result(60)
    return names


def produce_some(bootstrap: str, topic: str, records: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(records):
        producer.produce(topic, key=str(i).encode(), value=b"x" * 100)
    if producer.flush(30) != 0:
        raise SystemExit("bench_console: records not delivered")


def timed_get(url: str) -> tuple[float, object]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as response:
        body = json.loads(response.read())
    return (time.perf_counter() - started) * 1000, body


def median_ms(url: str, runs: int, check: object) -> float:
    timed_get(url)  # warm-up: the console's clients connect and learn the metadata once
    samples = []
    for _ in range(runs):
        elapsed, body = timed_get(url)
        if not check(body):  # type: ignore[operator]
            raise SystemExit(f"bench_console: unexpected answer from {url}")
        samples.append(elapsed)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--topics", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--limit-ms", type=float, default=200.0)
    args = parser.parse_args()
    console_port = free_port()
    with KafkaBroker(settings={"console.listener": f"http://127.0.0.1:{console_port}",
                               "auto.create.topics.enable": "false"}) as broker:
        bootstrap = broker.bootstrap_servers
        started = time.perf_counter()
        names = create_topics(bootstrap, args.topics)
        print(f"created {len(names)} topics in {time.perf_counter() - started:.1f} s", flush=True)
        page_topic = names[len(names) // 2]
        produce_some(bootstrap, page_topic, 100)
        base = f"http://127.0.0.1:{console_port}"
        results = {
            "topics": median_ms(f"{base}/api/topics", args.runs, lambda body: len(body) >= args.topics),
            "topic": median_ms(f"{base}/api/topics/{page_topic}", args.runs,
                               lambda body: body["partitions"][0]["end_offset"] == 100),
        }
    for name, ms in results.items():
        path = "/api/topics" if name == "topics" else "/api/topics/{topic}"
        print(f"GET {path:<22} median {ms:7.1f} ms over {args.runs} runs ({args.topics} topics)")
    print(json.dumps({"scenario": "console", "topics": args.topics, "runs": args.runs,
                      **{f"{name}_median_ms": round(ms, 1) for name, ms in results.items()}}))
    return 0 if all(ms < args.limit_ms for ms in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
