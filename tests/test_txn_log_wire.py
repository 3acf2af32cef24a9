"""The log side of transactions over real sockets against a kbroker subprocess: transactional
batches produced with an idempotent producer id from InitProducerId, WriteTxnMarkers (27) sent
as a coordinator sends it, then Fetch and ListOffsets under read_committed and read_uncommitted.

Batches are built by kafka-python's record builder (an implementation independent of kbroker);
the marker batches the broker writes are read back with kafka-python too. Expected behaviour is
Apache Kafka 3.9's: the last stable offset stays at the first open transaction until its marker,
aborted transactions come with read_committed fetches, refused markers append nothing.
"""

from __future__ import annotations

import struct

import pytest

from kbroker.testing.batches import read_batches
from kbroker.testing.raw_client import (
    FETCH,
    NONE,
    PRODUCE,
    RawClient,
    advertised_api_keys,
    create_topic,
    fetch_body,
    init_producer_id,
    produce_body,
)
from kbroker.testing.records import batch_values
from kbroker.testing.txn_log import (
    NO_VERIFICATION,
    READ_COMMITTED,
    READ_UNCOMMITTED,
    WRITE_TXN_MARKERS,
    fetch_isolated,
    latest_offset,
    produce_txn,
    txn_batch,
)
from kbroker.testing.txn_log import write_txn_markers as write_markers

UNKNOWN_TOPIC_OR_PARTITION = 3
INVALID_PRODUCER_EPOCH = 47
INVALID_TXN_STATE = 48
TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53
TRANSACTION_COORDINATOR_FENCED = 52


@pytest.fixture(scope="module")
def kbroker(module_broker_factory):
    return module_broker_factory(NO_VERIFICATION)


def test_write_txn_markers_is_advertised(kbroker):
    assert advertised_api_keys(kbroker.port)[WRITE_TXN_MARKERS] == (0, 2)


def test_commit_marker_moves_the_last_stable_offset_past_the_transaction(kbroker):
    topic = "txn-commit"
    create_topic(kbroker.port, topic)
    with RawClient(kbroker.port) as client:
        pid, epoch = init_producer_id(client)
        assert produce_txn(client, topic, 0, txn_batch([b"a", b"b"], pid, epoch, 0))["error_code"] == NONE
        committed = fetch_isolated(client, topic, 0, 0, READ_COMMITTED)
        assert committed["high_watermark"] == 2
        assert committed["last_stable_offset"] == 0
        assert batch_values(committed["records"]) == []
        assert latest_offset(client, topic, 0, READ_COMMITTED) == 0
        assert latest_offset(client, topic, 0, READ_UNCOMMITTED) == 2

        assert write_markers(client, pid, epoch, True, [(topic, 0)]) == {(topic, 0): NONE}

        uncommitted = fetch_isolated(client, topic, 0, 0, READ_UNCOMMITTED)
        assert uncommitted["high_watermark"] == 3  # the marker takes offset 2
        committed = fetch_isolated(client, topic, 0, 0, READ_COMMITTED)
        assert committed["last_stable_offset"] == 3
        assert committed["aborted_transactions"] == []
        batches = read_batches(bytes(committed["records"]))
        assert [[r.value for r in records] for _b, records in batches][0] == [b"a", b"b"]
        marker_batch, [marker] = batches[1]
        assert marker_batch.is_control_batch and marker_batch.is_transactional
        assert marker_batch.producer_id == pid and marker_batch.base_offset == 2
        assert struct.unpack(">hh", marker.key) == (0, 1)  # version 0, COMMIT
        assert struct.unpack(">hi", marker.value) == (0, 0)  # version 0, coordinator epoch 0
        assert latest_offset(client, topic, 0, READ_COMMITTED) == 3


def test_abort_marker_lists_the_aborted_transaction_for_read_committed(kbroker):
    topic = "txn-abort"
    create_topic(kbroker.port, topic)
    with RawClient(kbroker.port) as client:
        pid, epoch = init_producer_id(client)
        assert produce_txn(client, topic, 0, txn_batch([b"x", b"y", b"z"], pid, epoch, 0))["error_code"] == NONE
        assert write_markers(client, pid, epoch, False, [(topic, 0)], coordinator_epoch=4) == {(topic, 0): NONE}
        committed = fetch_isolated(client, topic, 0, 0, READ_COMMITTED)
        assert committed["last_stable_offset"] == 4
        assert committed["aborted_transactions"] == [{"producer_id": pid, "first_offset": 0}]
        uncommitted = fetch_isolated(client, topic, 0, 0, READ_UNCOMMITTED)
        assert uncommitted["aborted_transactions"] is None
        [_data, (marker_batch, [marker])] = read_batches(bytes(uncommitted["records"]))
        assert struct.unpack(">hh", marker.key) == (0, 0)  # ABORT
        assert struct.unpack(">hi", marker.value) == (0, 4)


def test_markers_refused_append_nothing(kbroker):
    topic = "txn-refused"
    create_topic(kbroker.port, topic)
    with RawClient(kbroker.port) as client:
        pid, epoch = init_producer_id(client)
        assert produce_txn(client, topic, 0, txn_batch([b"1"], pid, epoch + 2, 0))["error_code"] == NONE
        # An epoch older than the producer's, a partition that does not exist here.
        answer = write_markers(client, pid, epoch + 1, True, [(topic, 0), (topic, 7), ("no-such-topic", 0)])
        assert answer == {(topic, 0): INVALID_PRODUCER_EPOCH, (topic, 7): UNKNOWN_TOPIC_OR_PARTITION,
                          ("no-such-topic", 0): UNKNOWN_TOPIC_OR_PARTITION}
        assert write_markers(client, pid, epoch + 2, False, [(topic, 0)], coordinator_epoch=3) == {(topic, 0): NONE}
        # A coordinator epoch older than the last marker's is fenced.
        assert write_markers(client, pid, epoch + 2, True, [(topic, 0)], coordinator_epoch=2) == {
            (topic, 0): TRANSACTION_COORDINATOR_FENCED}
        uncommitted = fetch_isolated(client, topic, 0, 0, READ_UNCOMMITTED)
        assert uncommitted["high_watermark"] == 2  # the data batch and the one accepted marker
        assert [b.is_control_batch for b, _records in read_batches(bytes(uncommitted["records"]))] == [False, True]


def test_non_transactional_produce_inside_a_transaction_is_refused(kbroker):
    topic = "txn-mixed"
    create_topic(kbroker.port, topic)
    with RawClient(kbroker.port) as client:
        pid, epoch = init_producer_id(client)
        assert produce_txn(client, topic, 0, txn_batch([b"t"], pid, epoch, 0))["error_code"] == NONE
        answer = produce_txn(client, topic, 0, txn_batch([b"plain"], pid, epoch, 1, transactional=False))
        assert answer["error_code"] == INVALID_TXN_STATE
        assert fetch_isolated(client, topic, 0, 0, READ_UNCOMMITTED)["high_watermark"] == 1


def test_transactional_batches_without_a_transactional_id_are_refused_whole(kbroker):
    """KafkaApis.handleProduceRequest: transactional records are authorized through the request's
    transactional id; without one every partition of the request answers
    TRANSACTIONAL_ID_AUTHORIZATION_FAILED, the plain batch beside it too, and nothing is appended."""
    topic = "txn-no-id"
    create_topic(kbroker.port, topic, partitions=2)
    with RawClient(kbroker.port) as client:
        pid, epoch = init_producer_id(client)
        body = produce_body(topic, 0, txn_batch([b"t"], pid, epoch, 0), acks=-1)
        body["topic_data"][0]["partition_data"].append({"index": 1, "records": txn_batch([b"p"], pid, epoch, 0,
                                                                                          transactional=False)})
        for version in (3, 9, 11):
            answer = client.call(PRODUCE, version, body)["responses"][0]["partition_responses"]
            assert [(p["index"], p["error_code"], p["base_offset"]) for p in answer] == [
                (0, TRANSACTIONAL_ID_AUTHORIZATION_FAILED, -1), (1, TRANSACTIONAL_ID_AUTHORIZATION_FAILED, -1)]
        assert [fetch_isolated(client, topic, p, 0, READ_UNCOMMITTED)["high_watermark"] for p in (0, 1)] == [0, 0]
        # The same batch named by a transactional id goes in (this broker verifies nothing).
        assert produce_txn(client, topic, 0, txn_batch([b"t"], pid, epoch, 0))["error_code"] == NONE


def test_write_txn_markers_v0(kbroker):
    topic = "txn-v0"
    create_topic(kbroker.port, topic)
    with RawClient(kbroker.port) as client:
        pid, epoch = init_producer_id(client)
        assert produce_txn(client, topic, 0, txn_batch([b"v0"], pid, epoch, 0))["error_code"] == NONE
        assert write_markers(client, pid, epoch, True, [(topic, 0)], version=0) == {(topic, 0): NONE}
        assert fetch_isolated(client, topic, 0, 0, READ_COMMITTED)["last_stable_offset"] == 2


def test_write_txn_markers_v2_transaction_version_2_needs_a_bumped_epoch(kbroker):
    """KIP-1228: a transaction.version 2 coordinator bumps the epoch for its marker, so a TV2
    marker at the producer's own epoch is refused (nothing appended); TV0/1 accept it."""
    topic = "txn-v2-markers"
    create_topic(kbroker.port, topic)
    with RawClient(kbroker.port) as client:
        pid, epoch = init_producer_id(client)
        assert produce_txn(client, topic, 0, txn_batch([b"a"], pid, epoch, 0))["error_code"] == NONE
        assert write_markers(client, pid, epoch, True, [(topic, 0)], version=2, transaction_version=2) == {
            (topic, 0): INVALID_PRODUCER_EPOCH}
        assert latest_offset(client, topic, 0, READ_UNCOMMITTED) == 1  # the refused marker is not there
        assert write_markers(client, pid, epoch + 1, True, [(topic, 0)], version=2, transaction_version=2) == {
            (topic, 0): NONE}
        assert latest_offset(client, topic, 0, READ_COMMITTED) == 2
        assert produce_txn(client, topic, 0, txn_batch([b"b"], pid, epoch + 1, 0))["error_code"] == NONE
        assert write_markers(client, pid, epoch + 1, False, [(topic, 0)], version=2, transaction_version=1) == {
            (topic, 0): NONE}
        assert latest_offset(client, topic, 0, READ_COMMITTED) == 4


def test_a_parked_read_committed_fetch_wakes_when_the_marker_moves_the_lso(kbroker):
    topic = "txn-long-poll"
    create_topic(kbroker.port, topic)
    with RawClient(kbroker.port) as client, RawClient(kbroker.port, timeout=20) as poller:
        pid, epoch = init_producer_id(client)
        assert produce_txn(client, topic, 0, txn_batch([b"late"], pid, epoch, 0))["error_code"] == NONE
        # Nothing is readable below the LSO (0): the fetch waits up to a minute, far longer than
        # the poller's socket timeout, so only the marker's wake-up can answer it in time.
        body = fetch_body(topic, 0, 0, max_wait_ms=60_000, min_bytes=1)
        body["isolation_level"] = READ_COMMITTED
        poller.send(FETCH, 12, body)
        assert write_markers(client, pid, epoch, True, [(topic, 0)]) == {(topic, 0): NONE}
        _correlation, answer = poller.receive(FETCH, 12)
    [partition] = answer["responses"][0]["partitions"]
    assert partition["last_stable_offset"] == 2
    batches = read_batches(bytes(partition["records"]))
    assert [([r.value for r in records], b.is_control_batch) for b, records in batches] == [
        ([b"late"], False), ([b"\x00\x00\x00\x00\x00\x00"], True)]  # the data, then the marker
