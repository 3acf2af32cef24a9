"""Crash safety of the single-node log, against a kbroker subprocess: kill -9 during sustained
acks=1 production loses no acknowledged record; a torn tail is cut on restart; a clean stop
(SIGTERM) keeps everything and leaves `.kafka_cleanshutdown`; the data directory is laid out
the way Kafka lays it out; retention and DeleteRecords move the log start offset.

Acknowledged records are checked byte for byte with raw Fetch requests after the restart, and the
segment files are read with kafka-python's record reader (CRC included), not with kbroker's code.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kbroker.testing.raw_client import (
    LIST_OFFSETS,
    NONE,
    RawClient,
    create_topic,
    fetch,
    init_producer_id,
    list_offset,
    produce,
    raw_call,
    read_partition,
)
from kbroker.testing.records import build_batch, partition_dir, segment_files, stored_batches, stored_records
from kbroker.testing.waiting import eventually

DELETE_RECORDS = 21
OFFSET_OUT_OF_RANGE = 1
OUT_OF_ORDER_SEQUENCE_NUMBER = 45
EARLIEST = -2
LATEST = -1
PARTITIONS = 3
ACKS_BEFORE_KILL = 3000
SEGMENT_NAME = re.compile(r"^\d{20}\.(log|index|timeindex)$")

# A confluent-kafka producer in its own process: acks=1, as fast as it goes, partitions in turn.
# Each acknowledged record is written to the ack file as "<partition> <offset> <value>" right away.
PRODUCER_SCRIPT = r"""
import sys
from confluent_kafka import Producer

bootstrap, topic, partitions, ack_path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
acks = open(ack_path, "w", buffering=1)

def delivered(err, msg):
    if err is None:
        acks.write(f"{msg.partition()} {msg.offset()} {msg.value().decode()}\n")

producer = Producer({"bootstrap.servers": bootstrap, "acks": 1, "linger.ms": 1, "message.timeout.ms": 30000})
for i in range(10**7):
    value = f"record-{i:08d}-" + "x" * (i % 200)
    while True:
        try:
            producer.produce(topic, value=value.encode(), partition=i % partitions, on_delivery=delivered)
            break
        except BufferError:
            producer.poll(0.01)
    producer.poll(0)
"""


def read_acks(path: Path) -> list[tuple[int, int, bytes]]:
    """The acknowledged records; a line cut short by the kill is ignored."""
    acks = []
    for line in path.read_text().splitlines():
        parts = line.split(" ")
        if len(parts) == 3 and parts[2].startswith("record-"):
            acks.append((int(parts[0]), int(parts[1]), parts[2].encode()))
    return acks


def assert_kafka_layout(log_dir: Path, topic: str, partitions: int) -> None:
    """The files Kafka keeps in a log dir and in each partition dir, named as Kafka names them.

    The checkpoint is written by the first maintenance round, about a second after a start
    (Kafka creates it empty at startup), hence the wait.
    """
    checkpoint = log_dir / "recovery-point-offset-checkpoint"
    eventually(checkpoint.is_file, timeout=5, what=f"{checkpoint.name} in {sorted(p.name for p in log_dir.iterdir())}")
    lines = checkpoint.read_text().splitlines()
    assert lines[0] == "0" and int(lines[1]) == len(lines) - 2, lines
    assert (log_dir / "meta.properties").is_file()
    properties = (log_dir / "meta.properties").read_text()
    assert re.search(r"^cluster\.id=\S+$", properties, re.MULTILINE), properties
    assert re.search(r"^broker\.id=0$", properties, re.MULTILINE), properties
    for partition in range(partitions):
        directory = partition_dir(log_dir, topic, partition)
        names = {p.name for p in directory.iterdir()}
        assert {"partition.metadata", "leader-epoch-checkpoint"} <= names, names
        segments = sorted(n for n in names if SEGMENT_NAME.match(n))
        bases = {n.split(".")[0] for n in segments}
        assert bases, f"no segment in {directory}: {names}"
        for base in bases:
            assert {f"{base}.log", f"{base}.index", f"{base}.timeindex"} <= names
        assert (directory / "partition.metadata").read_text().startswith("version: 0\ntopic_id: ")
        stored_batches(log_dir, topic, partition)  # asserts magic 2 and a valid CRC for each batch


def test_kill_9_during_acks_1_production_loses_no_acknowledged_record(broker_factory, tmp_path):
    kbroker = broker_factory()
    topic = "crash-acks1"
    create_topic(kbroker.port, topic, partitions=PARTITIONS)
    ack_path = tmp_path / "acks.txt"
    producer = subprocess.Popen(
        [sys.executable, "-c", PRODUCER_SCRIPT, kbroker.bootstrap, topic, str(PARTITIONS), str(ack_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        eventually(lambda: ack_path.exists() and len(read_acks(ack_path)) >= ACKS_BEFORE_KILL, timeout=30, what="acks")
        kbroker.kill()
        time.sleep(0.2)  # acknowledgements already on their way still land in the file
    finally:
        producer.kill()
        producer.wait(timeout=10)
    acks = read_acks(ack_path)
    assert not (kbroker.log_dir / ".kafka_cleanshutdown").exists()

    kbroker.start()

    stored = {}
    for partition in range(PARTITIONS):
        high_watermark, records = read_partition(kbroker.port, topic, partition)
        assert [offset for offset, *_ in records] == list(range(high_watermark))
        stored.update({(partition, offset): value for offset, _, value, _ in records})
    lost = [(p, o, v) for p, o, v in acks if stored.get((p, o)) != v]
    assert not lost, f"{len(lost)} of {len(acks)} acknowledged records are missing or changed: {lost[:5]}"
    assert_kafka_layout(kbroker.log_dir, topic, PARTITIONS)


def test_torn_tail_is_truncated_on_restart(broker_factory):
    kbroker = broker_factory()
    topic = "crash-torn"
    create_topic(kbroker.port, topic)
    with RawClient(kbroker.port) as client:
        for n in range(5):
            produce(client, topic, 0, build_batch([f"batch{n}-{i}".encode() for i in range(4)]))
    kbroker.kill()
    [log_file] = segment_files(kbroker.log_dir, topic, 0)
    intact_size = log_file.stat().st_size
    half_batch = build_batch([b"never acknowledged"] * 3)[:40]
    with log_file.open("ab") as out:
        out.write(half_batch)

    kbroker.start()
    high_watermark, records = read_partition(kbroker.port, topic, 0)
    with RawClient(kbroker.port) as client:
        after = produce(client, topic, 0, build_batch([b"after the crash"]))

    assert high_watermark == 20
    assert [v for _, _, v, _ in records] == [f"batch{n}-{i}".encode() for n in range(5) for i in range(4)]
    assert after["base_offset"] == 20
    assert [o for o, *_ in stored_records(kbroker.log_dir, topic, 0)] == list(range(21))
    assert log_file.stat().st_size > intact_size  # cut back to the intact size, then appended to


def test_idempotent_producer_state_survives_a_crash(broker_factory):
    kbroker = broker_factory()
    topic = "crash-idempotent"
    create_topic(kbroker.port, topic)
    with RawClient(kbroker.port) as client:
        pid, _ = init_producer_id(client)
        batches = [
            build_batch(
                [f"s{seq}-{i}".encode() for i in range(3)],
                producer_id=pid,
                producer_epoch=0,
                base_sequence=seq,
            )
            for seq in (0, 3, 6)
        ]
        for batch in batches:
            produce(client, topic, 0, batch)
    kbroker.kill()

    kbroker.start()
    with RawClient(kbroker.port) as client:
        retried = produce(client, topic, 0, batches[2])
        gap = produce(
            client, topic, 0, build_batch([b"gap"], producer_id=pid, producer_epoch=0, base_sequence=20)
        )
        _, fetched = fetch(client, topic, 0, 0)

    assert (retried["error_code"], retried["base_offset"]) == (NONE, 6)
    assert gap["error_code"] == OUT_OF_ORDER_SEQUENCE_NUMBER  # the last sequence was remembered
    assert fetched["high_watermark"] == 9


def test_clean_shutdown_keeps_everything_and_writes_the_marker(broker_factory):
    kbroker = broker_factory()
    topic = "crash-clean"
    create_topic(kbroker.port, topic, partitions=2)
    with RawClient(kbroker.port) as client:
        for partition in range(2):
            for n in range(10):
                produce(
                    client,
                    topic,
                    partition,
                    build_batch([f"p{partition}-{n}-{i}".encode() for i in range(5)]),
                )
    before = {p: read_partition(kbroker.port, topic, p) for p in range(2)}

    assert kbroker.stop(signal.SIGTERM) == 0
    assert (kbroker.log_dir / ".kafka_cleanshutdown").is_file()
    assert_kafka_layout(kbroker.log_dir, topic, 2)
    checkpoint = (kbroker.log_dir / "recovery-point-offset-checkpoint").read_text().splitlines()
    assert f"{topic} 0 50" in checkpoint and f"{topic} 1 50" in checkpoint, checkpoint

    kbroker.start()
    after = {p: read_partition(kbroker.port, topic, p) for p in range(2)}
    assert after == before
    assert before[0][0] == 50
    assert not (kbroker.log_dir / ".kafka_cleanshutdown").exists()  # removed once the logs are loaded


# --- log start offset -------------------------------------------------------------------------


def test_retention_bytes_deletes_old_segments(broker_factory):
    kbroker = broker_factory("log.retention.check.interval.ms=200", "log.initial.task.delay.ms=0")
    topic = "retention-bytes"
    create_topic(
        kbroker.port,
        topic,
        configs={"segment.bytes": "2000", "retention.bytes": "4000", "file.delete.delay.ms": "0"},
    )
    with RawClient(kbroker.port) as client:
        for n in range(30):
            produce(client, topic, 0, build_batch([f"{n:03d}".encode() * 100]))

        def earliest() -> int:
            error, offset = list_offset(client, topic, 0, EARLIEST)
            assert error == NONE
            return offset

        eventually(lambda: earliest() > 0, timeout=10, what="retention to delete a segment")
        start = earliest()
        _, below = fetch(client, topic, 0, 0)
        _, latest = list_offset(client, topic, 0, LATEST)

    assert below["error_code"] == OFFSET_OUT_OF_RANGE
    assert latest == 30
    assert 0 < start < 30
    assert stored_records(kbroker.log_dir, topic, 0)[0][0] == start
    eventually(lambda: not list(partition_dir(kbroker.log_dir, topic, 0).glob("*.deleted")), timeout=5, what="deleted files")


def test_retention_ms_deletes_every_expired_segment(broker_factory):
    """Kafka measures retention.ms against the records' timestamps; it rolls the active segment
    when every segment has expired, so the log start offset reaches the log end."""
    kbroker = broker_factory("log.retention.check.interval.ms=200", "log.initial.task.delay.ms=0")
    topic = "retention-ms"
    create_topic(kbroker.port, topic, configs={"retention.ms": "60000", "segment.bytes": "2000"})
    an_hour_ago = int(time.time() * 1000) - 3600 * 1000
    with RawClient(kbroker.port) as client:
        for n in range(10):
            produce(client, topic, 0, build_batch([b"old" * 100], timestamps=[an_hour_ago + n]))

        eventually(lambda: list_offset(client, topic, 0, EARLIEST) == (NONE, 10), timeout=10, what="retention.ms")
        after = produce(client, topic, 0, build_batch([b"fresh"]))
        _, fetched = fetch(client, topic, 0, 10)

    assert after["base_offset"] == 10
    assert fetched["error_code"] == NONE


def test_first_retention_check_waits_for_the_initial_task_delay(broker_factory):
    """Kafka's LogManager runs its first retention pass log.initial.task.delay.ms after start-up:
    records with ancient timestamps written just after a start stay readable until then. The
    broker's own log times show when the pass deleted them."""
    kbroker = broker_factory("log.retention.check.interval.ms=100", "log.initial.task.delay.ms=2000")
    topic = "retention-delay"
    create_topic(kbroker.port, topic, configs={"segment.bytes": "2000"})
    with RawClient(kbroker.port) as client:
        for n in range(10):
            produce(client, topic, 0, build_batch([b"old" * 100], timestamps=[1000 + n]))
        eventually(lambda: list_offset(client, topic, 0, EARLIEST) == (NONE, 10), timeout=15, what="retention.ms")

    def logged_at(pattern: str) -> float:
        line = next(line for line in kbroker.output().splitlines() if re.search(pattern, line))
        stamp = re.match(r"\[(\S+ \S+)\]", line).group(1)
        return time.mktime(time.strptime(stamp[:19], "%Y-%m-%d %H:%M:%S")) + int(stamp[20:]) / 1000

    started = logged_at(r"kbroker 0 started in")
    deleted = logged_at(rf"{topic}-0: deleted \d+ segments \(retention\.ms")
    assert deleted - started >= 1.9  # the delay counts from just before the "started" line


def test_delete_records_moves_the_log_start_offset_across_restarts(broker_factory):
    kbroker = broker_factory()
    topic = "delete-records"
    create_topic(kbroker.port, topic)
    with RawClient(kbroker.port) as client:
        for n in range(10):
            produce(client, topic, 0, build_batch([f"{n}-{i}".encode() for i in range(10)]))
        answer = client.call(
            DELETE_RECORDS,
            2,
            {
                "topics": [{"name": topic, "partitions": [{"partition_index": 0, "offset": 42}]}],
                "timeout_ms": 5000,
            },
        )
        [result] = answer["topics"][0]["partitions"]
        past_end = client.call(
            DELETE_RECORDS,
            2,
            {
                "topics": [{"name": topic, "partitions": [{"partition_index": 0, "offset": 500}]}],
                "timeout_ms": 5000,
            },
        )
        earliest = list_offset(client, topic, 0, EARLIEST)
        _, below = fetch(client, topic, 0, 41)
        _, at = fetch(client, topic, 0, 42)

    assert (result["error_code"], result["low_watermark"]) == (NONE, 42)
    assert past_end["topics"][0]["partitions"][0]["error_code"] == OFFSET_OUT_OF_RANGE
    assert earliest == (NONE, 42)
    assert below["error_code"] == OFFSET_OUT_OF_RANGE
    assert at["error_code"] == NONE

    kbroker.restart()
    assert (
        raw_call(
            kbroker.port,
            LIST_OFFSETS,
            7,
            {
                "replica_id": -1,
                "topics": [{"name": topic, "partitions": [{"partition_index": 0, "timestamp": EARLIEST}]}],
            },
        )["topics"][0]["partitions"][0]["offset"]
        == 42
    )
    high_watermark, records = read_partition(kbroker.port, topic, 0, start=42)
    assert high_watermark == 100
    assert [o for o, *_ in records] == list(range(42, 100))


@pytest.mark.parametrize("stop", ["sigterm", "kill"])
def test_restart_keeps_topic_ids_and_offsets(broker_factory, stop):
    kbroker = broker_factory()
    topic = f"restart-{stop}"
    create_topic(kbroker.port, topic)
    with RawClient(kbroker.port) as client:
        produce(client, topic, 0, build_batch([b"a", b"b"]))
    topic_id = (partition_dir(kbroker.log_dir, topic, 0) / "partition.metadata").read_text()

    if stop == "kill":
        kbroker.kill()
        kbroker.start()
    else:
        kbroker.restart()
    with RawClient(kbroker.port) as client:
        again = produce(client, topic, 0, build_batch([b"c"]))

    assert again["base_offset"] == 2
    assert (partition_dir(kbroker.log_dir, topic, 0) / "partition.metadata").read_text() == topic_id
    assert [v for _, _, v, _ in read_partition(kbroker.port, topic, 0)[1]] == [b"a", b"b", b"c"]
