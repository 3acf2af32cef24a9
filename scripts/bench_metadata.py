"""The metadata-10k scenario of scripts/bench (issue 15): a broker holding 10,000 partitions.

One sample, on a broker of its own with a fresh data directory:
1. create `count` partitions (100 topics of 100 at full scale) through the Admin API, and wait
   until a Metadata answer lists them all with a leader;
2. fill them with `count x size` bytes of record values (1 GiB at full scale), spread evenly,
   acks=all (untimed);
3. time a full Metadata request (all topics, v1, one connection, raw bytes: the broker's time
   plus the loopback; median of METADATA_RUNS after a warm-up) and confluent-kafka's
   `list_topics()` (v12 and librdkafka's parsing included); read the broker's RSS and its open
   file descriptors (/proc/PID/fd);
4. stop it with SIGTERM and start it again on the same directory and port: the clean start-up,
   timed from the exec to the first Metadata answer listing every partition with a leader;
   RSS and descriptors again once it answers;
5. kill -9 it and start it again: the start-up with recovery, timed the same way; then verify that
   every partition's high watermark is the count of records acknowledged in step 2, and read one
   partition back whole.

Targets (issue 15): full Metadata <= 50 ms, clean start-up <= 2 s, RSS <= 150 MiB, and a bounded
descriptor count (segments' files opened lazily or bounded). The broker is any BrokerSpec
(kbroker, or an --against command restarted on the same {port} and {dir}). Speaks only Kafka and
reads /proc; confluent-kafka is imported only when a sample runs.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import time
from dataclasses import dataclass

from bench_broker import BrokerSpec, RunningBroker, rss_mib_of, start_broker, stop_broker

from kbroker.testing import wire
from kbroker.testing.waiting import eventually

PARTITIONS_PER_TOPIC = 100
CREATE_TOPICS_PER_REQUEST = 10
VALUE_SIZE = 4096
METADATA_VERSION = 1  # raw requests: every broker serves it, and its answer is easy to read here
METADATA_RUNS = 9
LIST_TOPICS_RUNS = 5
READY_TIMEOUT_S = 300.0  # creation and recovery of 10,000 partitions may be slow on some brokers
STOP_TIMEOUT_S = 60.0
ADMIN_TIMEOUT_S = 120.0
TARGET_METADATA_MS = 50.0
TARGET_CLEAN_START_S = 2.0
TARGET_RSS_MIB = 150.0


@dataclass(frozen=True)
class Layout:
    """The topics a sample creates: `partitions` in topics of up to PARTITIONS_PER_TOPIC."""

    prefix: str
    partitions: int
    bytes_per_partition: int

    @property
    def topics(self) -> dict[str, int]:
        names = {}
        for index in range(math.ceil(self.partitions / PARTITIONS_PER_TOPIC)):
            left = self.partitions - index * PARTITIONS_PER_TOPIC
            names[f"{self.prefix}-{index:03d}"] = min(PARTITIONS_PER_TOPIC, left)
        return names

    @property
    def records_per_partition(self) -> int:
        return max(1, math.ceil(self.bytes_per_partition / VALUE_SIZE))


# ------------------------------------------------------------------------------ raw Metadata v1


def full_metadata(sock: socket.socket, correlation_id: int) -> bytes:
    sock.sendall(wire.metadata_request(correlation_id, METADATA_VERSION, topics=None))
    answer = wire.read_frame(sock)
    if wire.correlation_id_of(answer) != correlation_id:
        raise ConnectionError(f"Metadata answer carries correlation id {wire.correlation_id_of(answer)}")
    return answer


def led_partitions(answer: bytes) -> dict[str, int]:
    """Per topic of a Metadata v1 answer, how many of its partitions have a leader and no error."""
    reader = wire.Reader(answer[4:])
    for _ in range(reader.int32()):  # brokers: node id, host, port, rack
        reader.int32()
        reader.raw(reader.int16())
        reader.int32()
        reader.raw(max(reader.int16(), 0))
    reader.int32()  # controller id
    led = {}
    for _ in range(reader.int32()):
        topic_error = reader.int16()
        name = reader.raw(reader.int16()).decode()
        reader.take(">?")
        count = 0
        for _ in range(reader.int32()):
            error, _index, leader = reader.take(">hii")
            reader.raw(4 * reader.int32())  # replicas
            reader.raw(4 * reader.int32())  # isr
            count += error == 0 and leader >= 0
        led[name] = count if topic_error == 0 else 0
    return led


def all_led(answer: bytes, layout: Layout) -> bool:
    led = led_partitions(answer)
    return all(led.get(name) == partitions for name, partitions in layout.topics.items())


def wait_until_all_led(port: int, layout: Layout, process: subprocess.Popen | None, timeout: float) -> None:
    """Polls (every few ms: start-ups are timed with it) until one answer lists every partition led."""

    def ready() -> bool:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the broker exited with code {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                return all_led(full_metadata(sock, 1), layout)
        except (OSError, wire.ConnectionClosed):
            return False

    eventually(ready, what=f"a Metadata answer listing all {layout.partitions:,} partitions led",
               timeout=timeout, interval=0.005)


def time_full_metadata(port: int, layout: Layout) -> tuple[float, list[float], int]:
    """(median ms, the samples, the answer's bytes) of full Metadata requests on one connection."""
    samples = []
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        first = full_metadata(sock, 0)  # warm-up (and the check that the answer is complete)
        if not all_led(first, layout):
            raise RuntimeError("a full Metadata answer does not list every partition with a leader")
        for run in range(1, METADATA_RUNS + 1):
            started = time.perf_counter()
            answer = full_metadata(sock, run)
            samples.append((time.perf_counter() - started) * 1000)
            if len(answer) != len(first):
                raise RuntimeError(f"full Metadata answers differ in size: {len(answer)} and {len(first)} bytes")
    return statistics.median(samples), samples, len(first)


def time_list_topics(bootstrap: str, layout: Layout) -> float:
    """Median ms of confluent-kafka's list_topics() (librdkafka's Metadata request and parsing)."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    samples = []
    for _ in range(LIST_TOPICS_RUNS + 1):
        started = time.perf_counter()
        listed = admin.list_topics(timeout=60)
        samples.append((time.perf_counter() - started) * 1000)
        found = {name: len(topic.partitions) for name, topic in listed.topics.items()}
        if any(found.get(name) != partitions for name, partitions in layout.topics.items()):
            raise RuntimeError("list_topics() does not list every partition")
    return statistics.median(samples[1:])  # the first also connected


# ------------------------------------------------------------------------------ topics and records


def create_topics(bootstrap: str, layout: Layout) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    items = list(layout.topics.items())
    for start in range(0, len(items), CREATE_TOPICS_PER_REQUEST):
        batch = [NewTopic(name, partitions, 1) for name, partitions in items[start:start + CREATE_TOPICS_PER_REQUEST]]
        for future in admin.create_topics(batch, request_timeout=ADMIN_TIMEOUT_S).values():
            future.result(ADMIN_TIMEOUT_S)


def fill(bootstrap: str, layout: Layout) -> int:
    """Writes records_per_partition records of VALUE_SIZE into every partition, acks=all;
    returns how many were acknowledged (all of them, or it raises)."""
    from confluent_kafka import Producer

    failures: list[str] = []

    def delivered(error, _message) -> None:
        if error is not None:
            failures.append(str(error))

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 100,
                         "batch.size": 1_000_000, "queue.buffering.max.kbytes": 512 * 1024})
    value = b"m" * VALUE_SIZE
    for topic, partitions in layout.topics.items():
        for partition in range(partitions):
            for _ in range(layout.records_per_partition):
                while True:
                    try:
                        producer.produce(topic, value, partition=partition, on_delivery=delivered)
                        break
                    except BufferError:
                        producer.poll(0.05)
            producer.poll(0)
    if producer.flush(ADMIN_TIMEOUT_S) or failures:
        raise RuntimeError(f"fill: {len(failures)} records failed ({failures[:1]}) or were not delivered")
    return layout.partitions * layout.records_per_partition


def verify_records(bootstrap: str, layout: Layout) -> None:
    """Every partition's high watermark is its acknowledged record count, and one partition reads back whole."""
    from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
    from confluent_kafka.admin import AdminClient, OffsetSpec

    admin = AdminClient({"bootstrap.servers": bootstrap})
    wanted = {TopicPartition(name, p): OffsetSpec.latest() for name, count in layout.topics.items() for p in range(count)}
    ends: dict = {}

    def listed() -> bool:  # a restarted Kafka answers UNKNOWN_LEADER_EPOCH (retriable) for a while
        try:
            ends.update({(tp.topic, tp.partition): result.result(ADMIN_TIMEOUT_S).offset
                         for tp, result in admin.list_offsets(wanted, request_timeout=ADMIN_TIMEOUT_S).items()})
        except KafkaException as exc:
            error = exc.args[0]
            if not (error.retriable() or error.code() == KafkaError.UNKNOWN_LEADER_EPOCH):
                raise
            return False
        return True

    eventually(listed, what="the partitions' end offsets", timeout=ADMIN_TIMEOUT_S, interval=0.5)
    short = {key: end for key, end in ends.items() if end != layout.records_per_partition}
    if short:
        raise RuntimeError(f"{len(short)} partitions do not end at offset {layout.records_per_partition}: "
                           f"{sorted(short.items())[:3]}")
    first = next(iter(layout.topics))
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-metadata", "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(first, 0, 0)])
        read, deadline = 0, time.monotonic() + ADMIN_TIMEOUT_S
        while read < layout.records_per_partition and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None or message.error():
                continue
            if message.offset() != read or len(message.value()) != VALUE_SIZE:
                raise RuntimeError(f"read back {first}-0: offset {message.offset()} where {read} was expected")
            read += 1
    finally:
        consumer.close()
    if read != layout.records_per_partition:
        raise RuntimeError(f"read back {read} of {layout.records_per_partition} records of {first}-0")


# ------------------------------------------------------------------------------ the broker's life


def open_fds(pids: list[int]) -> int | None:
    counted = [len(os.listdir(f"/proc/{pid}/fd")) for pid in pids if os.path.isdir(f"/proc/{pid}/fd")]
    return sum(counted) if counted else None


def files_in(directory: str | None) -> int:
    return sum(len(files) for _, _, files in os.walk(directory)) if directory else 0


def stop(broker: RunningBroker, sig: signal.Signals) -> float:
    """Signals the broker's process group and waits for it; the seconds it took to exit."""
    assert broker.process is not None
    started = time.perf_counter()
    os.killpg(broker.process.pid, sig)
    broker.process.wait(STOP_TIMEOUT_S)
    return time.perf_counter() - started


def restart(spec: BrokerSpec, broker: RunningBroker, layout: Layout) -> float:
    """The same command on the same port and data directory; seconds to a Metadata answer listing all."""
    assert broker.data_dir is not None and broker.log_path is not None
    port = int(broker.bootstrap.rsplit(":", 1)[1])
    with open(broker.log_path, "ab") as log:
        started = time.perf_counter()
        broker.process = subprocess.Popen(spec.argv(port, broker.data_dir), stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True)
    wait_until_all_led(port, layout, broker.process, READY_TIMEOUT_S)
    return time.perf_counter() - started


def measure_metadata(scenario, spec: BrokerSpec, work_dir: str, prefix: str) -> dict:
    """One sample of the scenario (see the module's docstring) on a broker of its own; its data is
    deleted afterwards."""
    layout = Layout(prefix, scenario.count, scenario.size)
    broker = start_broker(spec, work_dir)
    try:
        return run_sample(spec, broker, layout)
    except Exception as exc:
        raise RuntimeError(f"{type(exc).__name__}: {exc}; the broker's output ends: {broker.log_tail(3)}") from exc
    finally:
        stop_broker(broker)
        if broker.data_dir:
            shutil.rmtree(broker.data_dir, ignore_errors=True)


def run_sample(spec: BrokerSpec, broker: RunningBroker, layout: Layout) -> dict:
    port = int(broker.bootstrap.rsplit(":", 1)[1])
    started = time.perf_counter()
    create_topics(broker.bootstrap, layout)
    wait_until_all_led(port, layout, broker.process, READY_TIMEOUT_S)
    create_s = time.perf_counter() - started
    started = time.perf_counter()
    acknowledged = fill(broker.bootstrap, layout)
    fill_s = time.perf_counter() - started
    metadata_ms, metadata_samples, answer_bytes = time_full_metadata(port, layout)
    list_topics_ms = time_list_topics(broker.bootstrap, layout)
    loaded = {"rss_mib": rss_mib_of(broker.pids()), "fds": open_fds(broker.pids())}
    stop_s = stop(broker, signal.SIGTERM)
    clean_start_s = restart(spec, broker, layout)
    after_start = {"rss_mib": rss_mib_of(broker.pids()), "fds": open_fds(broker.pids())}
    restarted_metadata_ms, _, _ = time_full_metadata(port, layout)
    stop(broker, signal.SIGKILL)
    recovery_start_s = restart(spec, broker, layout)
    verify_records(broker.bootstrap, layout)
    return {
        "partitions": layout.partitions,
        "topics": len(layout.topics),
        "records": acknowledged,
        "value_bytes": acknowledged * VALUE_SIZE,
        "create_s": create_s,
        "fill_s": fill_s,
        "metadata_ms": metadata_ms,
        "metadata_samples_ms": metadata_samples,
        "metadata_answer_bytes": answer_bytes,
        "list_topics_ms": list_topics_ms,
        "rss_mib": max(value for value in (loaded["rss_mib"], after_start["rss_mib"]) if value is not None),
        "rss_loaded_mib": loaded["rss_mib"],
        "rss_restarted_mib": after_start["rss_mib"],
        "fds": max(value for value in (loaded["fds"], after_start["fds"]) if value is not None),
        "fds_loaded": loaded["fds"],
        "fds_restarted": after_start["fds"],
        "data_files": files_in(broker.data_dir),
        "stop_s": stop_s,
        "clean_start_s": clean_start_s,
        "restarted_metadata_ms": restarted_metadata_ms,
        "recovery_start_s": recovery_start_s,
    }


# ------------------------------------------------------------------------------ reporting

SUMMARY_KEYS = ("metadata_ms", "list_topics_ms", "restarted_metadata_ms", "clean_start_s", "recovery_start_s",
                "stop_s", "rss_mib", "rss_loaded_mib", "rss_restarted_mib", "fds", "fds_loaded", "fds_restarted",
                "data_files", "create_s", "fill_s", "metadata_answer_bytes", "partitions", "topics", "records",
                "value_bytes")
SPREAD_FORMATS = {"metadata_ms": ("full Metadata ms", ",.1f"), "clean_start_s": ("clean start s", ",.2f"),
                  "recovery_start_s": ("start after kill -9 s", ",.2f"), "rss_mib": ("RSS MiB", ",.1f"),
                  "fds": ("open fds", ",.0f")}
HEADLINES = [("metadata_ms", False), ("clean_start_s", False), ("recovery_start_s", False), ("rss_mib", False),
             ("fds", False)]


def summary_fields(good: list[dict]) -> dict:
    """Medians of every figure over the successful samples, and whether each target is met."""
    fields: dict = {}
    for key in SUMMARY_KEYS:
        values = [sample[key] for sample in good if sample.get(key) is not None]
        fields[key] = statistics.median(values) if values else None
    fields["targets"] = {
        "metadata_ms": TARGET_METADATA_MS,
        "clean_start_s": TARGET_CLEAN_START_S,
        "rss_mib": TARGET_RSS_MIB,
    }
    fields["within_targets"] = {key: fields[key] is not None and fields[key] <= target
                                for key, target in fields["targets"].items()}
    return fields


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else f"{value:{spec}}"


def table_lines(summary: dict) -> list[str]:
    """The figures under the result's line of scripts/bench's table."""
    met = {key: "met" if ok else "MISSED" for key, ok in summary["within_targets"].items()}
    pad = " " * 14
    return [
        f"{pad}{fmt(summary['partitions'], ',.0f')} partitions in {fmt(summary['topics'], ',.0f')} topics, "
        f"{fmt(summary['records'], ',.0f')} records ({fmt(summary['value_bytes'] and summary['value_bytes'] / 2**20, ',.0f')} MiB); "
        f"created in {fmt(summary['create_s'], ',.1f')} s, filled in {fmt(summary['fill_s'], ',.1f')} s",
        f"{pad}full Metadata v1: {fmt(summary['metadata_ms'], ',.1f')} ms ({fmt(summary['metadata_answer_bytes'], ',.0f')} B; "
        f"target <= {TARGET_METADATA_MS:.0f} ms: {met['metadata_ms']}), after the restart "
        f"{fmt(summary['restarted_metadata_ms'], ',.1f')} ms; list_topics(): {fmt(summary['list_topics_ms'], ',.1f')} ms",
        f"{pad}start-up to all partitions led: clean {fmt(summary['clean_start_s'], ',.2f')} s "
        f"(target <= {TARGET_CLEAN_START_S:.0f} s: {met['clean_start_s']}), after kill -9 "
        f"{fmt(summary['recovery_start_s'], ',.2f')} s; SIGTERM to exit {fmt(summary['stop_s'], ',.2f')} s",
        f"{pad}RSS {fmt(summary['rss_loaded_mib'], ',.1f')} MiB loaded, {fmt(summary['rss_restarted_mib'], ',.1f')} MiB "
        f"restarted (target <= {TARGET_RSS_MIB:.0f} MiB: {met['rss_mib']}); open fds {fmt(summary['fds_loaded'], ',.0f')} "
        f"loaded, {fmt(summary['fds_restarted'], ',.0f')} restarted, of {fmt(summary['data_files'], ',.0f')} files in the data dir",
    ]


def describe(sample: dict) -> str:
    return (f"Metadata {sample['metadata_ms']:.1f} ms, clean start {sample['clean_start_s']:.2f} s, "
            f"recovery {sample['recovery_start_s']:.2f} s, RSS {sample['rss_mib']:.0f} MiB, {sample['fds']} fds")


def main() -> int:
    """`bench_metadata.py [PARTITIONS] [BYTES_PER_PARTITION]`: one sample on kbroker, printed as JSON."""
    import json
    import sys
    import tempfile

    partitions = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    per_partition = int(sys.argv[2]) if len(sys.argv) > 2 else 2**30 // 10_000

    class Sized:
        count, size = partitions, per_partition

    work_dir = tempfile.mkdtemp(prefix="kbroker-bench-metadata-")
    try:
        print(json.dumps(measure_metadata(Sized, BrokerSpec("kbroker"), work_dir, "bench-metadata")))
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
