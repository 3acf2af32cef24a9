#!/usr/bin/env python3
"""The load client of scripts/bench: one measurement per process, run apart from the broker.

`bench_client.py '<json spec>'` does what spec["mode"] names and prints one JSON line with the
result on stdout (or {"error": ...} and exit code 1):
- "produce": create the topic (`replication_factor` and `topic_config` when given), then time
  producing `count` records of `size` bytes from the first produce() to the end of flush()
  (with `transaction_records`, as a transactional producer committing every that many records:
  each commit adds a marker, so record i sits at offset i + i // transaction_records);
  afterwards check the high watermark and the first and last payloads read back, and for a
  replicated topic that every replica is in the ISR (with HW = min LEO over the ISR, the
  followers then hold all `count` records too); librdkafka's statistics give the shape of the
  Produce requests it sent (how many, records and bytes per batch, round trips);
- "produce-loop": time only the produce() calls with no broker reachable (the client alone);
- "consume": time reading `count` records from offset 0 of an existing topic (assign, no group
  join), checking offsets, count and first/last payloads;
- "e2e-consume" / "e2e-produce": the two halves of the end-to-end latency scenario, in two
  processes; the producer stamps CLOCK_MONOTONIC (system-wide on Linux) into each record and
  the consumer reports latency percentiles;
- "loopback-send": stream `bytes` bytes to 127.0.0.1:`port` with large writes;
- "idle-connections": open `count` connections, one ApiVersions answered on each, read the
  broker's RSS before and after (from /proc/<pid>/status of `broker_pids`), then check that
  every connection still answers. Raises its own open-file limit as far as the hard limit allows.
Each timed window also records this process's CPU seconds (all librdkafka threads included)
and the broker's, from /proc/<pid>/stat of `broker_pids`. Touches no broker files: it speaks
only the Kafka protocol through confluent-kafka.
"""

from __future__ import annotations

import json
import math
import os
import resource
import socket
import struct
import sys
import time
from collections.abc import Callable

from bench_broker import cpu_seconds_of, rss_mib_of  # scripts/ is sys.path[0] when run as a script

from kbroker.testing import wire
from kbroker.testing.waiting import eventually

# Records of the produce scenarios: a marker at both ends, a constant payload in between, so the
# loop does no per-record work beyond produce() and the ends can still be checked.
FIRST_MARK = b"kbroker-bench first "
LAST_MARK = b"kbroker-bench last "
E2E_HEADER = struct.Struct(">qq")  # sequence number, send time in CLOCK_MONOTONIC ns
LOOPBACK_CHUNK = 4 * 1024 * 1024
METADATA_TIMEOUT_S = 30.0
ISR_PATIENCE_S = 5.0
THROUGHPUT_READ = {"max.partition.fetch.bytes": 16_777_216}  # for reading a log back to verify it
IDLE_SETTLE_S = 1.0  # after the last connection, before reading the broker's RSS
IDLE_API_VERSIONS = 3  # what today's clients send first
SPARE_FILES = 64  # open files besides the connections


def edge_payload(mark: bytes, size: int) -> bytes:
    """The first or last record's value: the mark padded (or cut) to `size` bytes."""
    return (mark + b"." * size)[:size]


def filler_payload(size: int) -> bytes:
    return b"x" * size


class Window:
    """Wall time, own CPU (also per thread name: the Python loop apart from librdkafka's threads),
    own minor page faults and broker CPU between start() and stop(); with several brokers (a cluster:
    `broker_pid_groups`, one pid list per broker) also each broker's CPU."""

    def __init__(self, broker_pids: list[int], broker_pid_groups: list[list[int]] | None = None) -> None:
        self.broker_pids = broker_pids
        self.groups = broker_pid_groups if broker_pid_groups and len(broker_pid_groups) > 1 else []

    @classmethod
    def for_spec(cls, spec: dict) -> Window:
        return cls(spec["broker_pids"], spec.get("broker_pid_groups"))

    def start(self) -> None:
        self.broker_cpu0 = cpu_seconds_of(self.broker_pids)
        self.group_cpu0 = [cpu_seconds_of(group) for group in self.groups]
        self.threads0 = own_thread_cpu()
        self.faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        self.cpu0 = time.process_time()
        self.t0 = time.perf_counter()

    def stop(self) -> dict:
        seconds = time.perf_counter() - self.t0
        client_cpu = time.process_time() - self.cpu0
        result = {"seconds": seconds, "client_cpu_s": client_cpu, "broker_cpu_s": cpu_since(self.broker_cpu0, self.broker_pids),
                  "client_thread_cpu_s": thread_cpu_since(self.threads0),
                  # Minor page faults: memory the client mapped afresh (librdkafka's buffers of large
                  # fetch responses and deep queues come from mmap): part of its CPU per MB.
                  "client_minor_faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - self.faults0}
        if self.groups:
            result["broker_cpu_s_each"] = [cpu_since(cpu0, group) for cpu0, group in zip(self.group_cpu0, self.groups, strict=True)]
        return result


def own_thread_cpu() -> dict[int, tuple[str, float]]:
    """This process's threads now: thread id -> (name, CPU seconds), from /proc/self/task (the
    scheduler's nanoseconds: a short sample's threads run for less than stat's 10 ms ticks)."""
    threads = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as comm, open(f"/proc/self/task/{tid}/schedstat") as schedstat:
                threads[int(tid)] = (comm.read().strip(), int(schedstat.read().split()[0]) / 1e9)
        except OSError:  # ended meanwhile (or no schedstat in this kernel: then no split)
            continue
    return threads


def thread_cpu_since(before: dict[int, tuple[str, float]]) -> dict[str, float]:
    """CPU seconds per thread name (librdkafka names its threads rdk:main, rdk:broker<id>...;
    the Python thread is the process's name) since `before`; threads started since count from 0."""
    spent: dict[str, float] = {}
    for tid, (name, seconds) in own_thread_cpu().items():
        spent[name] = spent.get(name, 0.0) + seconds - before.get(tid, (name, 0.0))[1]
    return {name: seconds for name, seconds in sorted(spent.items()) if seconds > 0}


def cpu_since(cpu0: float | None, pids: list[int]) -> float | None:
    cpu1 = cpu_seconds_of(pids)
    return None if cpu0 is None or cpu1 is None else cpu1 - cpu0


class CheckFailed(Exception):
    """What the benchmark measured was not what happened (lost, extra or wrong records)."""


# The target's security settings (librdkafka's names: security.protocol, ssl.*, sasl.*), from
# the spec's client_config; one process measures one target, so main() sets them once.
SECURITY: dict[str, str] = {}


def connection(bootstrap: str) -> dict:
    """librdkafka's settings to reach the target: its bootstrap servers and security."""
    return {"bootstrap.servers": bootstrap, **SECURITY}


def check(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


# ------------------------------------------------------------------------------ topics


def create_topic(
    bootstrap: str, topic: str, replication_factor: int = 1, config: dict | None = None, partitions: int = 1
) -> None:
    """`partitions` partitions (one by default). An unreplicated topic falls back on auto-creation if CreateTopics fails;
    a replicated one cannot (auto-creation would not replicate it), so that failure is raised."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(connection(bootstrap))
    new_topic = NewTopic(topic, partitions, replication_factor, config=config or {})
    future = admin.create_topics([new_topic], request_timeout=METADATA_TIMEOUT_S)[topic]
    try:
        future.result()
    except KafkaException as exc:
        if exc.args[0].name() == "TOPIC_ALREADY_EXISTS":
            return
        if replication_factor > 1:
            raise
        print(f"bench_client: CreateTopics failed ({exc}); relying on auto-creation", file=sys.stderr)


def wait_for_leader(client, topic: str, partitions: int = 1) -> None:
    """Until Metadata shows partitions 0 to `partitions` - 1 of `topic` each with a leader (asking
    also auto-creates it)."""
    last = ["no answer"]

    def has_leader() -> bool:
        meta = client.list_topics(topic, timeout=METADATA_TIMEOUT_S).topics.get(topic)
        if meta is not None and meta.error is None:
            led = [p for p in range(partitions) if p in meta.partitions and meta.partitions[p].error is None
                   and meta.partitions[p].leader >= 0]
            if len(led) == partitions:
                return True
            last[0] = f"{len(led)} of {partitions} partitions have a leader"
            return False
        last[0] = str(meta.error if meta is not None else "topic missing")
        return False

    try:
        eventually(has_leader, what=f"a leader of {topic}", timeout=METADATA_TIMEOUT_S)
    except AssertionError:
        raise CheckFailed(
            f"topic {topic} has no leader for every partition after {METADATA_TIMEOUT_S:.0f} s: {last[0]}"
        ) from None


# ------------------------------------------------------------------------------ produce


def produce(spec: dict) -> dict:
    from confluent_kafka import Producer

    bootstrap, topic, count, size = spec["bootstrap"], spec["topic"], spec["count"], spec["size"]
    replication_factor = spec.get("replication_factor", 1)
    check(count >= 2, "a produce run needs at least 2 records")
    create_topic(bootstrap, topic, replication_factor, spec.get("topic_config"))
    errors: list[str] = []
    client_errors: list[str] = []  # transient (a reconnect): reported, not a failure
    per_txn = spec.get("transaction_records", 0)
    stats = ClientStats()
    producer = Producer(
        {
            **connection(bootstrap),
            **spec["producer_config"],
            **stats.config(),
            **({"transactional.id": f"bench-{topic}"} if per_txn else {}),
            # Only failures call back into Python, so the loop measures the broker, not callbacks;
            # success is checked afterwards through the high watermark.
            "delivery.report.only.error": True,
            "queue.buffering.max.messages": max(count, 100_000),
            "queue.buffering.max.kbytes": 2_000_000,
            "error_cb": lambda err: client_errors.append(str(err)),
            # confluent-kafka calls on_delivery(err, msg) and error_cb(err) with fixed arguments.
            "on_delivery": lambda err, _msg: errors.append(f"delivery failed: {err}"),
        }
    )
    wait_for_leader(producer, topic)
    first, last, filler = edge_payload(FIRST_MARK, size), edge_payload(LAST_MARK, size), filler_payload(size)
    if per_txn:
        producer.init_transactions(spec["timeout_s"])  # set-up, not timed: as the idempotent producer's id
    before = stats.next_document(producer)  # Metadata (and InitProducerId) only: nothing produced yet
    window = Window.for_spec(spec)
    window.start()
    if per_txn:
        produce_transactions(producer, topic, count, per_txn, (first, filler, last), spec["timeout_s"])
    else:
        send = producer.produce
        send(topic, first, partition=0)
        for _ in range(count - 2):
            try:
                send(topic, filler, partition=0)
            except BufferError:  # local queue full: let librdkafka drain it, then retry once
                producer.poll(0.01)
                send(topic, filler, partition=0)
        send(topic, last, partition=0)
    # The produce() loop's share of the window (the rest is flush()); transactions flush as they commit.
    enqueued_s = None if per_txn else time.perf_counter() - window.t0
    remaining = producer.flush(spec["timeout_s"])
    result = window.stop()
    result["enqueue_s"] = enqueued_s
    check(remaining == 0, f"{remaining} records still undelivered after {spec['timeout_s']} s")
    stats.next_document(producer)  # counts every Produce request of the window
    result.update(produce_stats(before, stats.documents_since(before), topic))
    check(not errors, f"{len(errors)} errors, first: {errors[:1]}")
    try:
        warnings = verify_log(bootstrap, topic, count, size, per_txn)
        if replication_factor > 1:
            result["leader"], result["replicas"], result["isr"] = verify_replicated(producer, topic, replication_factor)
    except CheckFailed as exc:
        raise CheckFailed(f"{exc} (unverified timing: {count / result['seconds']:,.0f} records/s)") from None
    result["warnings"] = warnings + [f"client: {e}" for e in client_errors[:3]]
    return result


def produce_transactions(producer, topic: str, count: int, per_txn: int, payloads: tuple[bytes, bytes, bytes],
                         timeout_s: float) -> None:
    """`count` records in transactions of `per_txn`, each committed (commit_transaction flushes)."""
    first, filler, last = payloads
    send = producer.produce
    producer.begin_transaction()
    for i in range(count):
        payload = first if i == 0 else last if i == count - 1 else filler
        try:
            send(topic, payload, partition=0)
        except BufferError:
            producer.poll(0.01)
            send(topic, payload, partition=0)
        if (i + 1) % per_txn == 0 or i == count - 1:
            producer.commit_transaction(timeout_s)
            if i < count - 1:
                producer.begin_transaction()


def record_offset(index: int, per_txn: int) -> int:
    """The offset of the index-th record: each committed transaction before it left a marker."""
    return index + index // per_txn if per_txn else index


def log_end(count: int, per_txn: int) -> int:
    return count + (math.ceil(count / per_txn) if per_txn else 0)


def produce_loop(spec: dict) -> dict:
    """Times only the produce() calls, with no broker to deliver to (bootstrap 127.0.0.1:1)."""
    from confluent_kafka import Producer

    topic, count, size = spec["topic"], spec["count"], spec["size"]
    producer = Producer(
        {
            "bootstrap.servers": "127.0.0.1:1",
            **spec["producer_config"],
            "queue.buffering.max.messages": max(count, 100_000),
            "queue.buffering.max.kbytes": 2_000_000,
            "error_cb": lambda _err: None,  # connection refused, as intended
            "log_level": 0,
        }
    )
    payload = filler_payload(size)
    window = Window([])
    window.start()
    send = producer.produce
    for _ in range(count):
        send(topic, payload, partition=0)
    result = window.stop()
    # len() also counts the client's own pending events (a refused connection), hence >=.
    check(len(producer) >= count, f"{len(producer)} records queued, expected {count}")
    producer.purge()
    producer.flush(0)
    return result


def verify_log(bootstrap: str, topic: str, count: int, size: int, per_txn: int = 0) -> list[str]:
    """The partition holds exactly `count` records from offset 0, with the expected ends (and,
    with `per_txn`, the commit markers between the transactions).

    The high watermark (ListOffsets) and the two end records settle it cheaply. If the
    watermark disagrees, the whole partition is read back before judging: some brokers report
    a wrong watermark yet hold every record; that is returned as a warning, not a failure.
    """
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(consumer_config(bootstrap, THROUGHPUT_READ))
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=METADATA_TIMEOUT_S)
        last_offset = record_offset(count - 1, per_txn)
        if (low, high) == (0, log_end(count, per_txn)):
            check_edge(read_one(consumer, topic, 0), 0, FIRST_MARK, size)
            check_edge(read_one(consumer, topic, last_offset), last_offset, LAST_MARK, size)
            return []
        received, first, last = read_from_start(consumer, topic, count, time.monotonic() + METADATA_TIMEOUT_S)
        check_read(received, first, last, count, size, per_txn)
        extra = consumer.poll(1.0)
        check(extra is None, f"a record beyond the {count} produced, at offset {extra and extra.offset()}")
    finally:
        consumer.close()
    return [f"ListOffsets reports offsets [{low}, {high}) for {topic}, but all {count} records were read back"]


def verify_replicated(client, topic: str, replication_factor: int) -> tuple[int, list[int], list[int]]:
    """Partition 0 has `replication_factor` replicas, all in the ISR: (leader, replicas, ISR).

    Asked after verify_log found the leader's high watermark at `count`: the HW is the lowest
    log end offset in the ISR, so a full ISR means every follower's log holds every record.
    The Metadata answer comes from a broker's cache, which the controller updates shortly after
    an ISR change, hence a few seconds of patience before judging.
    """
    seen: dict = {}

    def fully_replicated() -> bool:
        partition = client.list_topics(topic, timeout=METADATA_TIMEOUT_S).topics[topic].partitions[0]
        seen.update(leader=partition.leader, replicas=sorted(partition.replicas), isr=sorted(partition.isrs))
        return len(seen["replicas"]) == replication_factor and seen["isr"] == seen["replicas"]

    try:
        eventually(fully_replicated, what=f"a full ISR of {topic}", timeout=ISR_PATIENCE_S, interval=0.1)
        return seen["leader"], seen["replicas"], seen["isr"]
    except AssertionError:
        replicas, isr = seen["replicas"], seen["isr"]
    check(len(replicas) == replication_factor, f"{topic} has replicas {replicas}, expected {replication_factor}")
    raise CheckFailed(f"ISR {isr} of {topic} lacks replicas of {replicas} {ISR_PATIENCE_S:.0f} s after the run")


def read_one(consumer, topic: str, offset: int):
    from confluent_kafka import TopicPartition

    consumer.assign([TopicPartition(topic, 0, offset)])
    deadline = time.monotonic() + METADATA_TIMEOUT_S
    client_error = None
    while time.monotonic() < deadline:
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        if msg.error() is not None and msg.topic() is None:  # the client's own trouble, not the record
            client_error = msg.error()
            continue
        return msg
    raise CheckFailed(
        f"offset {offset} of {topic} not fetched within {METADATA_TIMEOUT_S:.0f} s"
        + (f" (last client error: {client_error})" if client_error else "")
    )


# ------------------------------------------------------------------------------ consume


def consumer_config(bootstrap: str, extra: dict) -> dict:
    return {
        **connection(bootstrap),
        "group.id": "kbroker-bench",  # required by the client; assign() never joins the group
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": False,
        **extra,
    }


def read_from_start(consumer, topic: str, count: int, deadline: float) -> tuple[int, object, object]:
    """Reads up to `count` records from offset 0: (how many, the first, the last).

    No per-record work: the count and the last record's offset together prove the records came
    contiguously from 0 (an error event or a gap would break one or the other).
    """
    from confluent_kafka import TopicPartition

    consumer.assign([TopicPartition(topic, 0, 0)])
    first, last, received = None, None, 0
    while received < count and time.monotonic() < deadline:
        # Never ask for more than is left: consume() waits out its timeout for a short batch.
        batch = consumer.consume(min(10_000, count - received), 1.0)
        if not batch:
            continue
        if first is None:
            first = batch[0]
        received += len(batch)
        last = batch[-1]
    return received, first, last


def check_read(received: int, first, last, count: int, size: int, per_txn: int = 0) -> None:
    check(received == count, f"received {received} records of {count}")
    check_edge(first, 0, FIRST_MARK, size)
    check_edge(last, record_offset(count - 1, per_txn), LAST_MARK, size)


def check_edge(msg, offset: int, mark: bytes, size: int) -> None:
    check(msg.error() is None, f"error instead of the record at offset {offset}: {msg.error()}")
    check(msg.offset() == offset, f"record expected at offset {offset}, got {msg.offset()}")
    check(msg.value() == edge_payload(mark, size), f"payload at offset {offset} is not the one produced")


def consume(spec: dict) -> dict:
    from confluent_kafka import Consumer

    topic, count = spec["topic"], spec["count"]
    stats = ClientStats()
    consumer = Consumer(consumer_config(spec["bootstrap"], {**spec["consumer_config"], **stats.config()}))
    try:
        wait_for_leader(consumer, topic)
        before = stats.next_document(consumer)  # Metadata only: nothing assigned yet
        window = Window.for_spec(spec)
        window.start()
        received, first, last = read_from_start(consumer, topic, count, time.monotonic() + spec["timeout_s"])
        result = window.stop()
        stats.next_document(consumer)  # counts every fetch that brought the records
    finally:
        consumer.close()
    check(received == count, f"received {received} records of {count} within {spec['timeout_s']} s")
    check_read(received, first, last, count, spec["size"], spec.get("transaction_records", 0))
    # Parsed after the last poll: every document of the window, the windowed figures of all of them.
    return {**result, **fetch_stats(before, stats.documents_since(before), topic)}


# ------------------------------------------------------------------------------ librdkafka's statistics

STATS_INTERVAL_MS = 100  # statistics.interval.ms of the produce and consume scenarios
STATS_PATIENCE_S = 3.0


class ClientStats:
    """librdkafka's statistics documents (stats_cb) of one client, kept as the raw JSON text it
    emits: parsing them inside the timed window would add to the client CPU being measured."""

    def __init__(self) -> None:
        self.documents: list[str] = []

    def config(self) -> dict:
        return {"statistics.interval.ms": STATS_INTERVAL_MS, "stats_cb": self.documents.append}

    def next_document(self, client) -> dict | None:
        """Polls `client` (a Consumer or a Producer) until librdkafka emits its next document (it
        calls stats_cb from poll()); that one parsed, or None if none came. Only called with no
        records left to deliver or to send."""
        seen = len(self.documents)
        deadline = time.monotonic() + STATS_PATIENCE_S
        while len(self.documents) == seen and time.monotonic() < deadline:
            client.poll(STATS_INTERVAL_MS / 1000)
        return json.loads(self.documents[-1]) if len(self.documents) > seen else None

    def documents_since(self, document: dict | None) -> list[dict]:
        """The documents emitted after `document`, parsed."""
        parsed = [json.loads(text) for text in self.documents]
        return [doc for doc in parsed if document is None or doc["ts"] > document["ts"]]


def broker_total(document: dict, field: Callable[[dict], float]) -> float:
    """`field` summed over the document's brokers (the bootstrap connection included)."""
    return sum(field(broker) for broker in document["brokers"].values())


def windows(documents: list[dict], pick: Callable[[dict], list[dict]]) -> list[dict]:
    """librdkafka's windowed figures (rtt, int_latency, batchsize...: each document's covers only
    the interval since the previous document) that `pick` takes from each document, non-empty ones."""
    return [window for doc in documents for window in pick(doc) if window["cnt"]]


def window_average(parts: list[dict], scale: float = 1.0) -> float | None:
    """The average over all the windows' samples (weighted by their counts), times `scale`."""
    count = sum(part["cnt"] for part in parts)
    return sum(part["avg"] * part["cnt"] for part in parts) / count * scale if count else None


def window_p99_max(parts: list[dict], scale: float = 1.0) -> float | None:
    """The highest of the windows' 99th percentiles, times `scale`."""
    return max(part["p99"] for part in parts) * scale if parts else None


def of_brokers(name: str) -> Callable[[dict], list[dict]]:
    return lambda doc: [broker[name] for broker in doc["brokers"].values()]


def request_count(before: dict, last: dict, api: str) -> float:
    """Requests of `api` (librdkafka's name: "Fetch", "Produce") sent between two documents."""
    return broker_total(last, lambda b: b["req"].get(api, 0)) - broker_total(before, lambda b: b["req"].get(api, 0))


US_TO_MS = 1e-3  # librdkafka's latencies are in microseconds


def fetch_stats(before: dict | None, documents: list[dict], topic: str) -> dict:
    """What librdkafka saw of the fetch responses between `before` and the last of `documents`:
    Fetch requests sent, response bytes received (all responses of the window are fetches, plus
    at most one empty long poll after the last record), round trips, and for the partition the
    messages and bytes it took in, the outdated ones it dropped, and the most it held queued."""
    if before is None or not documents:
        return {}
    last = documents[-1]
    rtts = windows(documents, of_brokers("rtt"))
    partition = last["topics"].get(topic, {}).get("partitions", {}).get("0", {})
    return {
        "fetch_requests": request_count(before, last, "Fetch"),
        "fetch_response_bytes": broker_total(last, lambda b: b["rxbytes"]) - broker_total(before, lambda b: b["rxbytes"]),
        "fetch_rtt_avg_ms": window_average(rtts, US_TO_MS),
        "fetch_rtt_max_p99_ms": window_p99_max(rtts, US_TO_MS),
        "partition_rxmsgs": partition.get("rxmsgs"),
        "partition_rxbytes": partition.get("rxbytes"),
        "partition_rx_ver_drops": partition.get("rx_ver_drops"),
        "max_fetchq_cnt": max((doc["topics"].get(topic, {}).get("partitions", {}).get("0", {}).get("fetchq_cnt", 0)
                               for doc in documents), default=None),
    }


def produce_stats(before: dict | None, documents: list[dict], topic: str) -> dict:
    """What librdkafka sent between `before` and the last of `documents`: Produce requests,
    records (txmsgs) and request bytes, retries; the batches it built for `topic` (records and
    bytes per batch, averaged over all batches); per request the round trip (sent to answered),
    and how long records waited in its queue before a batch took them (int_latency) and requests
    in its output buffer before the socket took them (outbuf_latency). librdkafka batches what
    arrives while max.in.flight requests are unanswered, so these show how the broker's answers
    shaped the client's requests."""
    if before is None or not documents:
        return {}
    last = documents[-1]
    requests = request_count(before, last, "Produce")
    records = last["txmsgs"] - before["txmsgs"]
    rtts = windows(documents, of_brokers("rtt"))
    queued = windows(documents, of_brokers("int_latency"))
    batch_bytes = windows(documents, lambda doc: [doc["topics"][topic]["batchsize"]] if topic in doc["topics"] else [])
    batch_records = windows(documents, lambda doc: [doc["topics"][topic]["batchcnt"]] if topic in doc["topics"] else [])
    return {
        "produce_requests": requests,
        "produce_records": records,
        "produce_request_bytes": broker_total(last, lambda b: b["txbytes"]) - broker_total(before, lambda b: b["txbytes"]),
        "produce_retries": broker_total(last, lambda b: b["txretries"]) - broker_total(before, lambda b: b["txretries"]),
        "records_per_request": records / requests if requests else None,
        "batch_records_avg": window_average(batch_records),
        "batch_bytes_avg": window_average(batch_bytes),
        "produce_rtt_avg_ms": window_average(rtts, US_TO_MS),
        "produce_rtt_max_p99_ms": window_p99_max(rtts, US_TO_MS),
        "int_latency_avg_ms": window_average(queued, US_TO_MS),
        "outbuf_latency_avg_ms": window_average(windows(documents, of_brokers("outbuf_latency")), US_TO_MS),
    }


# ------------------------------------------------------------------------------ end-to-end latency


def e2e_consume(spec: dict) -> dict:
    """Prints "ready" once fetching, then reads `count` stamped records and reports latencies."""
    from confluent_kafka import Consumer, TopicPartition

    bootstrap, topic, count = spec["bootstrap"], spec["topic"], spec["count"]
    create_topic(bootstrap, topic)
    consumer = Consumer(consumer_config(bootstrap, spec["consumer_config"]))
    latencies_ns: list[int] = []
    try:
        wait_for_leader(consumer, topic)
        consumer.assign([TopicPartition(topic, 0, 0)])
        consumer.poll(0.5)  # connected to the leader and fetching before the producer starts
        print("ready", flush=True)
        window = Window.for_spec(spec)
        window.start()
        deadline = time.monotonic() + spec["timeout_s"]
        expected_seq = 0
        while expected_seq < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            now = time.monotonic_ns()
            check(msg.error() is None, f"consumer error: {msg.error()}")
            seq, sent_ns = E2E_HEADER.unpack_from(msg.value())
            check(seq == expected_seq and msg.offset() == seq, f"record {seq} at offset {msg.offset()}, expected {expected_seq}")
            latencies_ns.append(now - sent_ns)
            expected_seq += 1
        result = window.stop()
    finally:
        consumer.close()
    check(len(latencies_ns) == count, f"received {len(latencies_ns)} of {count} records")
    latencies_ns.sort()
    result.update({f"p{label}_ms": percentile(latencies_ns, q) / 1e6 for label, q in PERCENTILES})
    result["max_ms"] = latencies_ns[-1] / 1e6
    return result


PERCENTILES = (("50", 0.50), ("99", 0.99), ("999", 0.999))


def percentile(sorted_values: list[int], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = min(len(sorted_values), max(1, math.ceil(q * len(sorted_values))))
    return sorted_values[rank - 1]


def e2e_produce(spec: dict) -> dict:
    """Sends `count` stamped records, one every `interval_ms`, each on its own (linger.ms=0)."""
    from confluent_kafka import Producer

    bootstrap, topic, count, size = spec["bootstrap"], spec["topic"], spec["count"], spec["size"]
    failures: list[str] = []
    producer = Producer(
        {
            **connection(bootstrap),
            **spec["producer_config"],
            "on_delivery": lambda err, _msg: err and failures.append(str(err)),  # confluent-kafka's (err, msg)
        }
    )
    wait_for_leader(producer, topic)
    padding = b"." * max(0, size - E2E_HEADER.size)
    interval_s = spec["interval_ms"] / 1000
    window = Window.for_spec(spec)
    window.start()
    start = time.monotonic()
    for seq in range(count):
        pause = start + seq * interval_s - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        producer.produce(topic, E2E_HEADER.pack(seq, time.monotonic_ns()) + padding, partition=0)
        producer.poll(0)
    remaining = producer.flush(spec["timeout_s"])
    result = window.stop()
    check(remaining == 0 and not failures, f"{remaining} undelivered, {len(failures)} failed: {failures[:1]}")
    return result


# ------------------------------------------------------------------------------ loopback


def loopback_send(spec: dict) -> dict:
    chunk = memoryview(bytearray(LOOPBACK_CHUNK))
    left = spec["bytes"]
    with socket.create_connection(("127.0.0.1", spec["port"])) as sock:
        while left > 0:
            part = chunk[: min(left, LOOPBACK_CHUNK)]
            sock.sendall(part)
            left -= len(part)
    return {"sent": spec["bytes"]}


# ------------------------------------------------------------------------------ idle connections


def raise_open_file_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new_soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))


def api_versions_roundtrip(sock: socket.socket, correlation_id: int) -> None:
    sock.sendall(wire.api_versions_request(correlation_id, IDLE_API_VERSIONS))
    answer = wire.parse_api_versions(wire.read_frame(sock), IDLE_API_VERSIONS)
    check(answer.correlation_id == correlation_id and answer.error_code == 0,
          f"ApiVersions {correlation_id} answered {answer.correlation_id} with error {answer.error_code}")


def idle_connections(spec: dict) -> dict:
    count = spec["count"]
    raise_open_file_limit(count + SPARE_FILES)
    host, port = spec["bootstrap"].rsplit(":", 1)
    before = rss_mib_of(spec["broker_pids"])
    window = Window.for_spec(spec)
    window.start()
    sockets: list[socket.socket] = []
    try:
        for i in range(count):
            sockets.append(socket.create_connection((host, int(port)), timeout=spec["timeout_s"]))
            api_versions_roundtrip(sockets[-1], i)
        time.sleep(IDLE_SETTLE_S)
        after = rss_mib_of(spec["broker_pids"])
        for i, sock in enumerate(sockets):  # all still served: none was dropped to save memory
            api_versions_roundtrip(sock, count + i)
    finally:
        for sock in sockets:
            sock.close()
    result = window.stop()
    check(before is not None and after is not None, f"no RSS readable for broker pids {spec['broker_pids']}")
    return {**result, "connections": count, "rss_before_mib": before, "rss_after_mib": after,
            "rss_growth_mib": after - before}


MODES: dict[str, Callable[[dict], dict]] = {
    "produce": produce,
    "produce-loop": produce_loop,
    "consume": consume,
    "e2e-consume": e2e_consume,
    "e2e-produce": e2e_produce,
    "loopback-send": loopback_send,
    "idle-connections": idle_connections,
}


def main(modes: dict[str, Callable[[dict], dict]] = MODES) -> int:
    """Runs the mode of the spec in argv[1] (scripts/bench_partitions.py passes its own modes)."""
    spec = json.loads(sys.argv[1])
    SECURITY.update(spec.get("client_config") or {})
    if spec.get("cpus"):  # --pin-cpus: before librdkafka starts its threads, which inherit it
        os.sched_setaffinity(0, spec["cpus"])
    try:
        result = modes[spec["mode"]](spec)
    except CheckFailed as exc:
        print(json.dumps({"error": f"verification failed: {exc}"}), flush=True)
        return 1
    except Exception as exc:  # reported to the orchestrator as this run's failure
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
        return 1
    if spec.get("cpus"):
        result["client_cpus"] = sorted(os.sched_getaffinity(0))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
