"""Transactions as real consumers see them, against a kbroker subprocess: transactional batches
produced over a socket with idempotent producer ids from InitProducerId, ended by WriteTxnMarkers
as a coordinator sends it, then read by confluent-kafka (librdkafka) and kafka-python consumers
with isolation.level read_committed and read_uncommitted. read_committed sees exactly the
committed records (and the non-transactional ones) up to the first open transaction, in offset
order; read_uncommitted sees every record; no consumer sees a marker.

The broker is then killed (kill -9) or stopped cleanly and started again: the last stable offset,
the aborted transactions (the .txnindex, decoded with struct) and what each consumer sees are
the same, and the open transaction still commits. Compaction removes the aborted data and, after
delete.retention.ms, the abort marker, as Kafka's cleaner does.
"""

from __future__ import annotations

import struct
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition
from kafka import KafkaConsumer
from kafka import TopicPartition as KafkaPythonTopicPartition

from kbroker.testing.batches import read_batches
from kbroker.testing.raw_client import RawClient, create_topic
from kbroker.testing.txn_log import (
    NO_VERIFICATION,
    READ_COMMITTED,
    READ_UNCOMMITTED,
    Producers,
    fetch_isolated,
    latest_offset,
    plain,
    write_mixed_transactions,
)
from kbroker.testing.waiting import eventually

TIMEOUT_S = 20


def consume_confluent(bootstrap: str, topic: str, isolation: str) -> list[tuple[int, bytes]]:
    """(offset, value) of everything a confluent-kafka consumer reads from offset 0 to its end of
    partition (the last stable offset for read_committed, the high watermark otherwise)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"txn-{uuid.uuid4()}",
                         "enable.auto.commit": False, "enable.partition.eof": True, "isolation.level": isolation})
    consumer.assign([TopicPartition(topic, 0, 0)])
    records = []
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error() is not None:
                if message.error().code() == KafkaError._PARTITION_EOF:
                    return records
                raise AssertionError(message.error())
            records.append((message.offset(), message.value()))
    finally:
        consumer.close()
    raise AssertionError(f"no end of partition within {TIMEOUT_S} s; read {records}")


def consume_kafka_python(bootstrap: str, topic: str, isolation: str, expected: int) -> list[tuple[int, bytes]]:
    """(offset, value) read by kafka-python until `expected` records came or it idles for 2 s."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=2000,
                             isolation_level=isolation)
    partition = KafkaPythonTopicPartition(topic, 0)
    consumer.assign([partition])
    consumer.seek(partition, 0)
    records = []
    for message in consumer:
        records.append((message.offset, message.value))
        if len(records) >= expected:
            break
    consumer.close()
    return records


def check_views(port: int, bootstrap: str, topic: str, expected: dict) -> None:
    assert consume_confluent(bootstrap, topic, "read_committed") == expected["committed"]
    assert consume_confluent(bootstrap, topic, "read_uncommitted") == expected["uncommitted"]
    # kafka-python drops aborted records by the aborted_transactions list, as librdkafka does.
    committed = consume_kafka_python(bootstrap, topic, "read_committed", len(expected["committed"]))
    assert committed == expected["committed"]
    with RawClient(port) as client:
        answer = fetch_isolated(client, topic, 0, 0, READ_COMMITTED)
        assert answer["last_stable_offset"] == expected["lso"]
        assert answer["aborted_transactions"] == expected["aborted"]
        assert latest_offset(client, topic, 0, READ_COMMITTED) == expected["lso"]


def txn_index_entries(log_dir: Path, topic: str) -> list[tuple[int, ...]]:
    """Every .txnindex entry of the partition, read with struct: 34 bytes of
    (version, producer id, first offset, last offset, last stable offset)."""
    entries = []
    for path in sorted((log_dir / f"{topic}-0").glob("*.txnindex")):
        data = path.read_bytes()
        assert len(data) % 34 == 0
        entries += [struct.unpack_from(">hqqqq", data, at) for at in range(0, len(data), 34)]
    return entries


def test_consumers_see_committed_records_only_under_read_committed(module_broker_factory):
    kbroker = module_broker_factory(NO_VERIFICATION)
    topic = "txn-consumers"
    create_topic(kbroker.port, topic)
    with RawClient(kbroker.port) as client:
        producers, expected = write_mixed_transactions(client, topic)
        check_views(kbroker.port, kbroker.bootstrap, topic, expected)
        # The open transaction commits: read_committed reaches the end and sees it.
        producers.end(topic, "C", True)
    assert consume_confluent(kbroker.bootstrap, topic, "read_committed") == expected["committed"] + [(8, b"c1")]
    a_pid = producers.ids["A"][0]
    assert txn_index_entries(kbroker.log_dir, topic) == [(0, a_pid, 4, 5, 3)]


@pytest.mark.parametrize("stop", ["kill", "sigterm"])
def test_last_stable_offset_and_aborted_index_survive_a_restart(broker_factory, stop):
    kbroker = broker_factory(NO_VERIFICATION)
    topic = f"txn-restart-{stop}"
    create_topic(kbroker.port, topic)
    with RawClient(kbroker.port) as client:
        producers, expected = write_mixed_transactions(client, topic)
    index_before = txn_index_entries(kbroker.log_dir, topic)
    assert len(index_before) == 1
    if stop == "kill":
        kbroker.kill()
    else:
        kbroker.stop()
    kbroker.start()
    assert txn_index_entries(kbroker.log_dir, topic) == index_before
    check_views(kbroker.port, kbroker.bootstrap, topic, expected)
    with RawClient(kbroker.port) as client:
        producers.client = client
        end = producers.end(topic, "C", False)
        answer = fetch_isolated(client, topic, 0, 0, READ_COMMITTED)
        assert answer["last_stable_offset"] == end + 1
        c_pid = producers.ids["C"][0]
        assert {"producer_id": c_pid, "first_offset": expected["lso"]} in answer["aborted_transactions"]
    assert consume_confluent(kbroker.bootstrap, topic, "read_committed") == expected["committed"]


def test_compaction_removes_aborted_data_then_the_abort_marker(broker_factory):
    kbroker = broker_factory(NO_VERIFICATION, "log.cleaner.backoff.ms=100")
    topic = "txn-compacted"
    create_topic(kbroker.port, topic, configs={
        "cleanup.policy": "compact", "segment.bytes": "1024", "min.cleanable.dirty.ratio": "0.01",
        "delete.retention.ms": "300"})
    fillers = iter(range(1_000_000))

    def roll() -> None:
        """Keyed filler records enough to fill a segment: what came before becomes cleanable."""
        n = next(fillers)
        for i in range(4):  # each batch well below segment.bytes, which a batch may not exceed
            plain(client, topic, [b"." * 300], keys=[b"filler-%d-%d" % (n, i)])

    def stored() -> list[tuple[bool, list[tuple[bytes | None, bytes | None]]]]:
        """(is a marker, [(key, value)]) of every batch from offset 0, read_uncommitted."""
        batches, offset, end = [], 0, None
        while end is None or offset < end:
            answer = fetch_isolated(client, topic, 0, offset, READ_UNCOMMITTED)
            end = answer["high_watermark"]
            found = read_batches(bytes(answer["records"]))
            if not found:
                break
            for batch, records in found:
                batches.append((batch.is_control_batch, [(r.key, r.value) for r in records]))
                offset = batch.base_offset + batch.last_offset_delta + 1
        return batches

    with RawClient(kbroker.port) as client:
        producers = Producers(client)
        producers.send(topic, "A", [b"aborted"], keys=[b"k1"])
        producers.end(topic, "A", False)
        # A's next transaction: its last batch (kept, even emptied, while the producer is active,
        # as Kafka keeps it) is no longer the aborted one, which may then go altogether.
        producers.send(topic, "A", [b"committed"], keys=[b"k2"])
        producers.end(topic, "A", True)
        roll()
        roll()

        def aborted_data_gone():
            batches = stored()
            return batches if all((b"k1", b"aborted") not in records for _m, records in batches) else None

        batches = eventually(aborted_data_gone, what="the aborted record compacted away", timeout=TIMEOUT_S)
        assert any((b"k2", b"committed") in records for _m, records in batches)

        def abort_marker_gone():
            roll()  # new dirty segments make the cleaner run again past delete.retention.ms
            markers = [records for is_marker, records in stored() if is_marker]
            return markers if len(markers) == 1 else None

        [commit] = eventually(abort_marker_gone, what="the abort marker removed after delete.retention.ms",
                              timeout=TIMEOUT_S, interval=0.3)
        assert struct.unpack(">hh", commit[0][0]) == (0, 1)  # the COMMIT marker stays with its data
    assert consume_confluent(kbroker.bootstrap, topic, "read_committed")[0] == (2, b"committed")
