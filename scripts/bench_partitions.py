#!/usr/bin/env python3
"""scripts/bench's partitions-1k scenario (issue 15): one topic of 1,000 partitions, written by 10
producer processes at once and read back by a group of consumer processes.

Orchestration (`run_partitions`, called by bench.py in the benchmark's process) runs the workers
of this file as separate processes (`bench_partitions.py '<json spec>'`, through bench_client's
main, so security settings and the JSON result line are handled as for every other client):
1. "create": the topic with PARTITIONS partitions, until every one has a leader (untimed);
2. PRODUCERS "produce" processes: each makes its producer and reads the topic's metadata, prints
   "ready", waits for "go" on stdin, then sends its share of the records: record g of the whole
   sequence (0 <= g < count) goes to partition g % PARTITIONS, so every partition gets data
   (count // PARTITIONS or one more records) and the counts per partition are known in advance.
   The produce window runs from "go" to the last producer's end of flush(); the broker's CPU
   seconds over it come from /proc of its pids, as in the other scenarios;
3. "verify": ListOffsets (earliest and latest) of every partition: [0, expected count) each;
4. CONSUMERS "consume" processes in one group (subscribe; classic protocol, librdkafka's
   default assignors): each reports how many records it has read, on stdout, as it goes; the
   consume window runs from "go" until their sum reaches `count`, then "stop". Positions are
   committed when partitions are revoked (a rebalance as the members join), so the next owner
   goes on from there. Each consumer reports the runs of consecutive offsets it read per
   partition; together they must tile [0, expected count) of every partition exactly: every
   record read back once, none twice.

p99 produce latency is librdkafka's own: the statistics' per-broker `rtt` (Produce request round
trips as the client timed them, p99 over each statistics window of STATS_INTERVAL_MS; the worst
window of any producer is reported) and `int_latency` (time a record waited in the client's queue
before it was sent, likewise), never a per-record delivery callback, which would load the client.

partitions-1k-java (scenario client "java") is the same run with the Java client's producer
(compat-tests/java/clients/src/PartitionsProducer.java, kafka-clients from the jars ./scripts/test
resolves, compiled with the Java compat tests' driver): librdkafka sends one partition per Produce
request (its issue #1700), the Java client every ready partition of a broker in one. Its latency
is per record, send() to acknowledgement, timed in the send callback (p99 of each producer; the
worst is reported), and its request latency average is the client's request-latency-avg. Each JVM
warms its send path up first (JAVA_WARMUP_RECORDS to a one-partition topic of its own, before
"ready"), so the timed window measures the client at work, not the JVM compiling it.

Both variants report the Produce requests their producers sent (librdkafka's statistics, the Java
client's request-total of its broker connections) and, from the broker's side, the record batches
the topic's log segments hold after producing (each request carries at most one batch per
partition, so batches / requests is the partitions per request).
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import bench_client
from bench_broker import cpu_seconds_of
from bench_client import (
    ClientStats,
    check,
    connection,
    consumer_config,
    create_topic,
    filler_payload,
    wait_for_leader,
)
from bench_report import median_of
from bench_scenarios import Scenario

PARTITIONS = 1000
PRODUCERS = 10
CONSUMERS = 4
STATS_INTERVAL_MS = 500  # producers' statistics.interval.ms: the windows of the rtt p99
TARGET_VS_PRODUCE_1K = 0.8  # issue 15: partitions-1k >= 0.8x produce-1k MB/s of the same run
READY_TIMEOUT_S = 120.0  # for the workers to start and read the topic's metadata
PROGRESS_EVERY_S = 0.05  # a consumer's count on stdout, at most this often while records flow
CONSUME_BATCH = 10_000
WORKER = Path(__file__).resolve()
COMPAT_TESTS = WORKER.parents[1] / "compat-tests"
JAVA_PRODUCER = "PartitionsProducer"  # its class under compat-tests/java/clients/src
# Each Java producer sends this many records (at most its share) to a topic of its own before it
# is ready: a JVM runs the send path interpreted at first, and its warm-up (class loading, JIT)
# was most of the producers' CPU in the timed window (3.7 CPU-s of 10 JVMs for 30,000 records,
# 5.8-7 for 300,000). librdkafka needs none.
JAVA_WARMUP_RECORDS = 5000
BATCH_HEADER = 12  # a record batch's baseOffset (8 bytes) and batchLength (4): what follows is batchLength bytes

ParseOutput = Callable[[str, str, int], dict]


def expected_counts(count: int, partitions: int) -> list[int]:
    """Records per partition when record g goes to partition g % partitions."""
    return [count // partitions + (p < count % partitions) for p in range(partitions)]


def shares(count: int, producers: int) -> list[tuple[int, int]]:
    """(first record index, how many) for each producer: the sequence cut into near-equal runs."""
    out, first = [], 0
    for i in range(producers):
        n = count // producers + (i < count % producers)
        out.append((first, n))
        first += n
    return out


# ------------------------------------------------------------------------------ workers


def create(spec: dict) -> dict:
    from confluent_kafka import Producer

    create_topic(spec["bootstrap"], spec["topic"], spec.get("replication_factor", 1), spec.get("topic_config"),
                 partitions=spec["partitions"])
    wait_for_leader(Producer(connection(spec["bootstrap"])), spec["topic"], spec["partitions"])
    return {"created": spec["partitions"]}


def await_line(expected: str) -> None:
    """Blocks until the orchestrator writes `expected` on stdin (EOF: it is gone, so stop)."""
    line = sys.stdin.readline().strip()
    check(line == expected, f"expected {expected!r} on stdin, got {line!r}")


def produce(spec: dict) -> dict:
    """Sends records first .. first + n - 1 of the sequence, each to partition g % partitions."""
    from confluent_kafka import Producer

    topic, partitions, first, n = spec["topic"], spec["partitions"], spec["first"], spec["n"]
    errors: list[str] = []
    client_errors: list[str] = []
    stats = ClientStats()
    producer = Producer({
        **connection(spec["bootstrap"]),
        **spec["producer_config"],
        **stats.config(),
        "statistics.interval.ms": STATS_INTERVAL_MS,
        "delivery.report.only.error": True,  # as produce-1k: no Python callback per record
        "queue.buffering.max.messages": max(n, 100_000),
        "queue.buffering.max.kbytes": 2_000_000,
        "error_cb": lambda err: client_errors.append(str(err)),
        "on_delivery": lambda err, _msg: errors.append(f"delivery failed: {err}"),
    })  # fmt: skip
    wait_for_leader(producer, topic, partitions)
    before = stats.next_document(producer)
    payload = filler_payload(spec["size"])
    print("ready", flush=True)
    await_line("go")
    started_ns, cpu0 = time.monotonic_ns(), time.process_time()
    send = producer.produce
    for g in range(first, first + n):
        try:
            send(topic, payload, partition=g % partitions)
        except BufferError:  # local queue full: let librdkafka drain it, then retry once
            producer.poll(0.01)
            send(topic, payload, partition=g % partitions)
    remaining = producer.flush(spec["timeout_s"])
    ended_ns, client_cpu = time.monotonic_ns(), time.process_time() - cpu0
    check(remaining == 0, f"{remaining} records still undelivered after {spec['timeout_s']} s")
    check(not errors, f"{len(errors)} errors, first: {errors[:1]}")
    after = stats.next_document(producer)  # the last window's round trips
    documents = [*stats.documents_since(before), after]
    return {"started_ns": started_ns, "ended_ns": ended_ns, "client_cpu_s": client_cpu,
            **latency_stats([doc for doc in documents if doc is not None]),
            "warnings": [f"client: {e}" for e in client_errors[:3]]}


def latency_stats(documents: list[dict]) -> dict:
    """The worst statistics window's p99 of Produce round trips (per broker connection that sent
    requests) and of the client's queue time, and the mean round trip over all windows, in ms."""
    rtts = [b["rtt"] for doc in documents for b in doc["brokers"].values() if b["rtt"]["cnt"]]
    queued = [b["int_latency"] for doc in documents for b in doc["brokers"].values() if b["int_latency"]["cnt"]]
    calls = sum(rtt["cnt"] for rtt in rtts)
    return {
        "rtt_p99_ms": max((rtt["p99"] for rtt in rtts), default=0) / 1000 if rtts else None,
        "rtt_avg_ms": sum(rtt["avg"] * rtt["cnt"] for rtt in rtts) / calls / 1000 if calls else None,
        "int_latency_p99_ms": max(q["p99"] for q in queued) / 1000 if queued else None,
        "produce_requests": sum(b["req"].get("Produce", 0) for b in documents[-1]["brokers"].values()) if documents else None,
    }


def verify(spec: dict) -> dict:
    """Every partition spans exactly [0, expected count): nothing lost, nothing written twice."""
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import AdminClient, OffsetSpec

    admin = AdminClient(connection(spec["bootstrap"]))
    expected = expected_counts(spec["count"], spec["partitions"])
    spans: dict[int, list[int]] = {}
    for which, offset_spec in ((0, OffsetSpec.earliest()), (1, OffsetSpec.latest())):
        asked = {TopicPartition(spec["topic"], p): offset_spec for p in range(spec["partitions"])}
        for tp, future in admin.list_offsets(asked, request_timeout=bench_client.METADATA_TIMEOUT_S).items():
            spans.setdefault(tp.partition, [0, 0])[which] = future.result().offset
    wrong = [(p, spans.get(p), expected[p]) for p in range(spec["partitions"]) if spans.get(p) != [0, expected[p]]]
    check(not wrong, f"{len(wrong)} partitions do not hold [0, expected): (partition, [earliest, latest], expected) {wrong[:3]}")
    return {"partitions_verified": len(spans)}


def consume(spec: dict) -> dict:
    """Subscribes in the group, reads until "stop", reporting its count as it goes; returns the
    runs of consecutive offsets it read, per partition."""
    from confluent_kafka import OFFSET_INVALID, Consumer

    consumer = Consumer(consumer_config(spec["bootstrap"], {
        **spec["consumer_config"],
        "group.id": spec["group"],
        "auto.offset.reset": "earliest",
    }))  # fmt: skip

    def commit_positions(client, partitions) -> None:
        """The next owner starts where this one stopped (no auto-commit: only what was read)."""
        read = [tp for tp in client.position(partitions) if tp.offset != OFFSET_INVALID and tp.offset >= 0]
        if read:
            client.commit(offsets=read, asynchronous=False)

    runs: dict[int, list[list[int]]] = {}  # partition -> [[first, last], ...] in the order read
    filler = filler_payload(spec["size"])
    received, reported, last_report, errors = 0, 0, 0.0, []
    first_ns = last_ns = None
    print("ready", flush=True)
    await_line("go")
    cpu0 = time.process_time()
    consumer.subscribe([spec["topic"]], on_revoke=commit_positions)
    while not stop_requested():
        batch = consumer.consume(CONSUME_BATCH, 0.1)
        for msg in batch:
            if msg.error() is not None:
                errors.append(str(msg.error()))
                continue
            partition, offset = msg.partition(), msg.offset()
            partition_runs = runs.setdefault(partition, [])
            if partition_runs and partition_runs[-1][1] + 1 == offset:
                partition_runs[-1][1] = offset
            else:
                partition_runs.append([offset, offset])
                if offset == 0 and msg.value() != filler:
                    errors.append(f"partition {partition} offset 0 holds a value other than the one produced")
        if batch:
            received += len(batch)
            last_ns = time.monotonic_ns()
            first_ns = first_ns or last_ns
        now = time.monotonic()
        if received != reported and (not batch or now - last_report >= PROGRESS_EVERY_S):
            print(received, flush=True)
            reported, last_report = received, now
    client_cpu = time.process_time() - cpu0
    consumer.close()
    check(not errors, f"{len(errors)} consumer errors, first: {errors[:1]}")
    return {"received": received, "runs": [[p, *run] for p, rs in runs.items() for run in rs],
            "first_ns": first_ns, "last_ns": last_ns, "client_cpu_s": client_cpu}


def stop_requested() -> bool:
    ready, _, _ = select.select([sys.stdin], [], [], 0)
    return bool(ready)


WORKER_MODES: dict[str, Callable[[dict], dict]] = {"create": create, "produce": produce, "verify": verify,
                                                  "consume": consume}


# ------------------------------------------------------------------------------ orchestration


class Worker:
    """One worker process: JSON spec in argv, control lines on stdin, output lines read as they come."""

    def __init__(self, spec: dict, argv: list[str] | None = None) -> None:
        self.stderr = tempfile.TemporaryFile("w+")
        self.process = subprocess.Popen(argv or [sys.executable, str(WORKER), json.dumps(spec)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=self.stderr)
        self.lines: list[str] = []
        self.partial = b""

    def fileno(self) -> int:
        return self.process.stdout.fileno()

    def read_available(self) -> bool:
        """Takes what stdout holds now into `lines`; False at EOF."""
        chunk = os.read(self.fileno(), 65536)
        self.partial += chunk
        *complete, self.partial = self.partial.split(b"\n")
        self.lines += [line.decode() for line in complete]
        return bool(chunk)

    def send(self, line: str) -> None:
        try:
            self.process.stdin.write(line.encode() + b"\n")
            self.process.stdin.flush()
        except BrokenPipeError:  # it exited already; its result says why
            pass

    def result(self, parse_output: ParseOutput, timeout_s: float) -> dict:
        """Its last output line as the result, once it exits (killed after `timeout_s`)."""
        deadline = time.monotonic() + timeout_s
        while (remaining := deadline - time.monotonic()) > 0 and select.select([self], [], [], remaining)[0]:
            if not self.read_available():
                break
        self.stop()
        self.stderr.seek(0)
        return parse_output("\n".join(self.lines + [self.partial.decode()]), self.stderr.read(), self.process.returncode)

    def stop(self) -> None:
        """Killed if still running (by its pid), and waited for."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def close(self) -> None:
        self.stop()
        for stream in (self.process.stdin, self.process.stdout, self.stderr):
            if stream is not None and not stream.closed:
                stream.close()


@contextmanager
def running(specs: list[dict], command: Callable[[dict], list[str]] | None = None) -> Iterator[list[Worker]]:
    """Worker processes for `specs` (this file's workers, or `command(spec)`), every one stopped on
    the way out, whatever happened."""
    workers: list[Worker] = []
    try:
        for spec in specs:
            workers.append(Worker(spec, command(spec) if command else None))
        yield workers
    finally:
        for worker in workers:
            worker.close()


def results_of(workers: list[Worker], parse_output: ParseOutput, timeout_s: float) -> list[dict]:
    """Each worker's result, all within one deadline (a stuck broker does not cost it per worker)."""
    deadline = time.monotonic() + timeout_s
    return [worker.result(parse_output, max(0.0, deadline - time.monotonic())) for worker in workers]


def not_ready(workers: list[Worker], timeout_s: float) -> str | None:
    """None once each worker printed "ready", or the reason some did not."""
    deadline = time.monotonic() + timeout_s
    waiting = list(workers)
    while waiting:
        ready, _, _ = select.select(waiting, [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            return f"{len(waiting)} of {len(workers)} workers not ready within {timeout_s:.0f} s"
        for worker in ready:
            if not worker.read_available() or worker.lines not in ([], ["ready"]):
                return "a worker exited or failed before it was ready"
            if worker.lines:
                waiting.remove(worker)
    return None


def run_worker(spec: dict, parse_output: ParseOutput) -> dict:
    with running([spec]) as [worker]:
        return worker.result(parse_output, spec["timeout_s"])


def failed(workers: list[Worker], parse_output: ParseOutput, why: str) -> dict:
    """The first worker error (killing the rest), or `why`."""
    results = [worker.result(parse_output, 0) for worker in workers]
    errors = [result["error"] for result in results if "error" in result]
    return {"error": f"{why}: {errors[0]}" if errors else why}


def workers_failed(results: list[dict], workers: str) -> dict | None:
    """How many of the `workers` (producers, consumers) failed and the first one's error, or None."""
    errors = [result["error"] for result in results if "error" in result]
    if not errors:
        return None
    return {"error": f"{len(errors)} of {len(results)} {workers} failed, first: {errors[0]}"}


def run_partitions(spec: dict, parse_output: ParseOutput) -> dict:
    """One sample of partitions-1k: create, produce (timed), verify, consume (timed), check."""
    spec = {**spec, "partitions": PARTITIONS}
    created = run_worker({**spec, "mode": "create"}, parse_output)
    if "error" in created:
        return {"error": f"creating {spec['topic']} with {PARTITIONS} partitions failed: {created['error']}"}
    produced = run_producers(spec, parse_output)
    if "error" in produced:
        return produced
    produced["log_batches"] = log_batches(spec.get("data_dir"), spec["topic"], PARTITIONS)
    verified = run_worker({**spec, "mode": "verify"}, parse_output)
    if "error" in verified:
        return {"error": f"after producing: {verified['error']}"}
    consumed = run_consumers(spec, parse_output)
    if "error" in consumed:
        return consumed
    return {**produced, **consumed, "partitions": PARTITIONS, "producers": PRODUCERS, "consumers": CONSUMERS}


def run_producers(spec: dict, parse_output: ParseOutput) -> dict:
    specs = [{**spec, "mode": "produce", "first": first, "n": n} for first, n in shares(spec["count"], PRODUCERS)]
    java = spec.get("client") == "java"
    if java and spec.get("client_config"):
        return {"error": "the Java producers connect over PLAINTEXT only"}
    if java:
        warmup = {**spec, "mode": "create", "topic": warmup_topic(spec["topic"]), "partitions": 1}
        if "error" in (created := run_worker(warmup, parse_output)):
            return {"error": f"creating the Java producers' warm-up topic failed: {created['error']}"}
    with running(specs, java_command if java else None) as workers:
        if why := not_ready(workers, READY_TIMEOUT_S):
            return failed(workers, parse_output, f"producers: {why}")
        cpu0 = cpu_seconds_of(spec["broker_pids"])
        for worker in workers:
            worker.send("go")
        results = results_of(workers, parse_output, spec["timeout_s"])
        cpu1 = cpu_seconds_of(spec["broker_pids"])
    if failure := workers_failed(results, "producers"):
        return failure
    seconds = (max(r["ended_ns"] for r in results) - min(r["started_ns"] for r in results)) / 1e9
    return {
        "seconds": seconds,
        "client_cpu_s": sum(r["client_cpu_s"] for r in results),
        "broker_cpu_s": None if cpu0 is None or cpu1 is None else cpu1 - cpu0,
        "produce_rtt_p99_ms": worst(results, "rtt_p99_ms"),
        "produce_rtt_avg_ms": mean(results, "rtt_avg_ms"),
        "produce_queue_p99_ms": worst(results, "int_latency_p99_ms"),
        "produce_record_p99_ms": worst(results, "record_p99_ms"),
        "produce_requests": sum(r["produce_requests"] or 0 for r in results),
        "warnings": sorted({w for r in results for w in r["warnings"]}),
    }


def worst(results: list[dict], key: str) -> float | None:
    return max((r[key] for r in results if r.get(key) is not None), default=None)


def mean(results: list[dict], key: str) -> float | None:
    values = [r[key] for r in results if r.get(key) is not None]
    return sum(values) / len(values) if values else None


def java_driver() -> ModuleType:
    """compat-tests/java_driver.py: where ./scripts/test put the jars, and javac of the sources."""
    if str(COMPAT_TESTS) not in sys.path:
        sys.path.append(str(COMPAT_TESTS))
    import java_driver

    return java_driver


def java_unavailable_reason() -> str | None:
    driver = java_driver()
    return driver.jars_missing_reason(driver.JAVA_CLIENT_VERSIONS[0])


def skip_reason(scenario: Scenario) -> str | None:
    """Why a scenario of this file cannot run here (the Java variant without Java or its jars)."""
    return java_unavailable_reason() if scenario.kind == "partitions" and scenario.client == "java" else None


def java_command(spec: dict) -> list[str]:
    """One Java producer of the newest kafka-clients the compat tests resolve, with the JVM
    settings of their driver; the producer settings go as setting=value arguments."""
    driver = java_driver()
    driver.compile_driver()
    version = driver.JAVA_CLIENT_VERSIONS[0]
    classpath = os.pathsep.join([str(driver.CLASSES), str(driver.TARGET / f"lib-{version}" / "*")])
    settings = [f"{key}={value}" for key, value in spec["producer_config"].items()]
    warmup = [f"-Dwarmup.topic={warmup_topic(spec['topic'])}", f"-Dwarmup.records={min(JAVA_WARMUP_RECORDS, spec['n'])}"]
    return ["java", *driver.JVM_ARGS, *warmup, "-cp", classpath, JAVA_PRODUCER, spec["bootstrap"], spec["topic"],
            str(spec["partitions"]), str(spec["first"]), str(spec["n"]), str(spec["size"]), *settings]


def warmup_topic(topic: str) -> str:
    """Where the Java producers warm up (one partition; not a partition of `topic`'s name)."""
    return f"{topic}-warmup"


def log_batches(data_dir: str | None, topic: str, partitions: int) -> int | None:
    """The record batches the topic's partition directories hold under the broker's data dir
    (kbroker's log.dirs, or Kafka's below it), counted from the batch headers of the .log
    segments; None without a data dir (--bootstrap) or when not every partition is found."""
    if not data_dir:
        return None
    dirs = [d for d in Path(data_dir).rglob(f"{topic}-*") if d.is_dir() and d.name.rpartition("-")[0] == topic]
    if len(dirs) != partitions:
        return None
    return sum(batches_in(segment) for d in dirs for segment in d.glob("*.log"))


def batches_in(segment: Path) -> int:
    """Batches of one segment: header to header, up to the end of what was written."""
    count, position = 0, 0
    with segment.open("rb") as f:
        while len(header := f.read(BATCH_HEADER)) == BATCH_HEADER:
            length = int.from_bytes(header[8:], "big")
            if length <= 0:
                break  # zeroes past the end of the last batch: nothing more was written
            count += 1
            position += BATCH_HEADER + length
            f.seek(position)
    return count


def run_consumers(spec: dict, parse_output: ParseOutput) -> dict:
    group = f"{spec['topic']}-group"
    with running([{**spec, "mode": "consume", "group": group}] * CONSUMERS) as workers:
        if why := not_ready(workers, READY_TIMEOUT_S):
            return failed(workers, parse_output, f"consumers: {why}")
        cpu0 = cpu_seconds_of(spec["broker_pids"])
        started = time.perf_counter()
        for worker in workers:
            worker.send("go")
        read_all = wait_for_counts(workers, spec["count"], spec["timeout_s"])
        seconds = time.perf_counter() - started
        cpu1 = cpu_seconds_of(spec["broker_pids"])
        for worker in workers:
            worker.send("stop")
        results = results_of(workers, parse_output, READY_TIMEOUT_S)
    if failure := workers_failed(results, "consumers"):
        return failure
    received = sum(r["received"] for r in results)
    if not read_all:
        return {"error": f"verification failed: the group read {received} records of {spec['count']} "
                         f"within {spec['timeout_s']:.0f} s"}
    problems = tiling_problems([run for r in results for run in r["runs"]], expected_counts(spec["count"], PARTITIONS))
    if problems:
        return {"error": f"verification failed: {problems}"}
    return {
        "consume_seconds": seconds,
        "consume_mb_per_s": spec["count"] * spec["size"] / seconds / 1e6,
        "consume_broker_cpu_s": None if cpu0 is None or cpu1 is None else cpu1 - cpu0,
        "consume_client_cpu_s": sum(r["client_cpu_s"] for r in results),
        "consumer_records": [r["received"] for r in results],
    }


def wait_for_counts(workers: list[Worker], count: int, timeout_s: float) -> bool:
    """Until the consumers' latest counts add up to `count` (True), or the deadline (False)."""
    deadline = time.monotonic() + timeout_s
    latest = dict.fromkeys(workers, 0)
    while sum(latest.values()) < count:
        ready, _, _ = select.select(list(workers), [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            return False
        for worker in ready:
            if not worker.read_available():
                return False  # a consumer exited: its result says why
            counts = [line for line in worker.lines if line.isdigit()]
            latest[worker] = int(counts[-1]) if counts else 0
    return True


def tiling_problems(runs: list[list[int]], expected: list[int]) -> str | None:
    """None when the runs [partition, first, last] cover each partition's [0, expected) exactly
    once; otherwise the first few partitions where they do not (a gap, an overlap, an excess)."""
    by_partition: dict[int, list[tuple[int, int]]] = {}
    for partition, first, last in runs:
        by_partition.setdefault(partition, []).append((first, last))
    wrong = []
    for partition, count in enumerate(expected):
        next_offset, read = 0, sorted(by_partition.pop(partition, []))
        for first, last in read:
            if first != next_offset:
                break
            next_offset = last + 1
        else:
            if next_offset == count:
                continue
        wrong.append(f"partition {partition}: read offsets {read[:4]}{'...' if len(read) > 4 else ''}, expected {count} from offset 0")
    wrong += [f"records from partition {p}, which does not exist" for p in by_partition]
    return "; ".join(wrong[:3]) + (f" (and {len(wrong) - 3} more)" if len(wrong) > 3 else "") if wrong else None


# ------------------------------------------------------------------------------ reporting


def partitions_fields(scenario, good: list[dict]) -> dict:
    """The summary's partitions-1k figures: medians over the samples, and CPU per MB."""
    megabytes = scenario.value_bytes / 1e6
    fields: dict = {key: median_of(good, key) for key in (
        "consume_seconds", "consume_mb_per_s", "consume_broker_cpu_s", "consume_client_cpu_s", "produce_rtt_p99_ms",
        "produce_rtt_avg_ms", "produce_queue_p99_ms", "produce_record_p99_ms", "produce_requests", "log_batches")}  # fmt: skip
    produce_cpu, consume_cpu = median_of(good, "broker_cpu_s"), fields["consume_broker_cpu_s"]
    requests, batches = fields["produce_requests"], fields["log_batches"]
    fields.update(
        partitions=PARTITIONS, producers=PRODUCERS, consumers=CONSUMERS, client=scenario.client,
        records_per_request=scenario.count / requests if requests else None,
        partitions_per_request=batches / requests if batches is not None and requests else None,
        broker_cpu_s_per_mb=produce_cpu / megabytes if produce_cpu is not None else None,
        consume_broker_cpu_s_per_mb=consume_cpu / megabytes if consume_cpu is not None else None,
    )  # fmt: skip
    return fields


def partitions_line(summary: dict, fmt: Callable[..., str]) -> str:
    vs = summary.get("vs_produce_1k")
    versus = (f"; {fmt(vs, '.2f')}x produce-1k's {fmt(summary['produce_1k_mb_per_s'])} MB/s "
              f"(target >= {TARGET_VS_PRODUCE_1K}: {'met' if vs >= TARGET_VS_PRODUCE_1K else 'MISSED'})" if vs else "")
    if summary.get("produce_record_p99_ms") is not None:  # the Java producers: per record, send to acknowledgement
        latency = (f"send-to-ack p99 {fmt(summary['produce_record_p99_ms'], ',.1f')} ms (worst producer), "
                   f"request latency avg {fmt(summary.get('produce_rtt_avg_ms'), ',.2f')} ms")
    else:
        latency = (f"Produce rtt p99 {fmt(summary.get('produce_rtt_p99_ms'), ',.2f')} ms (worst window), "
                   f"avg {fmt(summary.get('produce_rtt_avg_ms'), ',.2f')} ms, client queue p99 {fmt(summary.get('produce_queue_p99_ms'), ',.1f')} ms")
    return (
        f"{'':14}{summary['partitions']:,} partitions, {summary['producers']} {summary.get('client')} producers, "
        f"{summary['consumers']} consumers: "
        f"produce {fmt(summary.get('mb_per_s'))} MB/s, consume {fmt(summary.get('consume_mb_per_s'))} MB/s; {latency}; "
        f"{fmt(summary.get('produce_requests'), ',.0f')} Produce requests, {fmt(summary.get('records_per_request'), ',.1f')} records "
        f"and {fmt(summary.get('partitions_per_request'), ',.1f')} partitions (log batches) per request; "
        f"broker CPU s per MB: produce {fmt(summary.get('broker_cpu_s_per_mb'), '.4f')}, "
        f"consume {fmt(summary.get('consume_broker_cpu_s_per_mb'), '.4f')}{versus}"
    )


def compare_with_produce_1k(results: list[dict]) -> None:
    """Adds to each partitions-1k result (either client) its MB/s over produce-1k's of the same target and run."""
    produce_1k = {r["target"]: r.get("mb_per_s") for r in results if r.get("scenario") == "produce-1k"}
    for result in results:
        if result.get("type") == "partitions" and produce_1k.get(result["target"]) and result.get("mb_per_s"):
            result["produce_1k_mb_per_s"] = produce_1k[result["target"]]
            result["vs_produce_1k"] = result["mb_per_s"] / produce_1k[result["target"]]
            result["within_target"] = result["vs_produce_1k"] >= TARGET_VS_PRODUCE_1K


if __name__ == "__main__":
    sys.exit(bench_client.main(WORKER_MODES))
