"""TxnOffsetCommit v6 (KIP-1319, Kafka 4.4) over real sockets against a kbroker subprocess.

v6 names topics by id (UNKNOWN_TOPIC_ID for an id naming none) and answers with the ids; a
KIP-848 member's stale epoch is STALE_MEMBER_EPOCH (ILLEGAL_GENERATION before v6), an unknown
group named with an epoch GROUP_ID_NOT_FOUND. The offsets of a committed transaction become
the group's, those of an aborted one never do.
"""

from __future__ import annotations

import uuid

import pytest

from kbroker.testing.raw_client import (
    FIND_COORDINATOR,
    INIT_PRODUCER_ID,
    NONE,
    RawClient,
    create_topic,
    topic_id_of,
)
from kbroker.testing.waiting import eventually

TXN_OFFSET_COMMIT, ADD_OFFSETS_TO_TXN, END_TXN, OFFSET_FETCH, CONSUMER_GROUP_HEARTBEAT = 28, 25, 26, 9, 68
UNKNOWN_TOPIC_ID, STALE_MEMBER_EPOCH, ILLEGAL_GENERATION, GROUP_ID_NOT_FOUND = 100, 113, 22, 69
UNKNOWN_MEMBER_ID, UNSTABLE_OFFSET_COMMIT = 25, 88
RETRIABLE = (14, 15, 16, 51)  # loading, not available, not coordinator, concurrent transactions
TIMEOUT_S = 30


@pytest.fixture(scope="module")
def kbroker(module_broker_factory):
    return module_broker_factory("offsets.topic.num.partitions=1", "transaction.state.log.num.partitions=1")


def until_ready(call, what: str) -> dict:
    """A coordinator request retried while the coordinator is being created or loaded."""
    return eventually(lambda: (a := call())["error_code"] not in RETRIABLE and a, what=what, timeout=TIMEOUT_S)


def find_coordinator(client: RawClient, key: str, key_type: int) -> None:
    """Until the coordinator of the group (0) or transactional id (1) is up."""
    until_ready(lambda: client.call(FIND_COORDINATOR, 3, {"key": key, "key_type": key_type}), "the coordinator")


class Transaction:
    """A transactional producer's requests: InitProducerId, AddOffsetsToTxn, TxnOffsetCommit, EndTxn."""

    def __init__(self, client: RawClient, transactional_id: str, group_id: str) -> None:
        self.client, self.transactional_id, self.group_id = client, transactional_id, group_id
        find_coordinator(client, transactional_id, 1)
        find_coordinator(client, group_id, 0)
        init = until_ready(lambda: client.call(INIT_PRODUCER_ID, 4, {
            "transactional_id": transactional_id, "transaction_timeout_ms": 60000,
            "producer_id": -1, "producer_epoch": -1}), "InitProducerId")
        assert init["error_code"] == NONE
        self.producer_id, self.epoch = init["producer_id"], init["producer_epoch"]

    def add_offsets(self) -> None:
        answer = until_ready(lambda: self.client.call(ADD_OFFSETS_TO_TXN, 3, {
            "transactional_id": self.transactional_id, "producer_id": self.producer_id,
            "producer_epoch": self.epoch, "group_id": self.group_id}), "AddOffsetsToTxn")
        assert answer["error_code"] == NONE

    def commit_offsets(self, topics: list[dict], version: int = 6, member_id: str = "",
                       epoch: int = -1) -> list[dict]:
        body = {"transactional_id": self.transactional_id, "group_id": self.group_id,
                "producer_id": self.producer_id, "producer_epoch": self.epoch,
                "generation_id_or_member_epoch": epoch, "member_id": member_id, "group_instance_id": None,
                "topics": topics}
        return self.client.call(TXN_OFFSET_COMMIT, version, body)["topics"]

    def end(self, committed: bool) -> None:
        answer = until_ready(lambda: self.client.call(END_TXN, 3, {
            "transactional_id": self.transactional_id, "producer_id": self.producer_id,
            "producer_epoch": self.epoch, "committed": committed}), "EndTxn")
        assert answer["error_code"] == NONE


def by_id(topic_id: uuid.UUID, offsets: dict[int, int]) -> dict:
    return {"topic_id": topic_id, "partitions": [
        {"partition_index": p, "committed_offset": o, "committed_leader_epoch": -1, "committed_metadata": "m"}
        for p, o in offsets.items()]}


def errors_by_id(topics: list[dict]) -> dict[tuple[uuid.UUID, int], int]:
    return {(t["topic_id"], p["partition_index"]): p["error_code"] for t in topics for p in t["partitions"]}


def committed(client: RawClient, group_id: str, topic: str, stable: bool = False) -> dict[int, int] | int:
    """The group's committed offsets of the topic, or the fetch's error (UNSTABLE_OFFSET_COMMIT
    for a pending transactional commit under require_stable)."""
    answer = client.call(OFFSET_FETCH, 7, {"group_id": group_id, "require_stable": stable,
                                           "topics": [{"name": topic, "partition_indexes": [0, 1]}]})
    partitions = [p for t in answer["topics"] for p in t["partitions"]]
    error = answer["error_code"] or next((p["error_code"] for p in partitions if p["error_code"]), NONE)
    return error or {p["partition_index"]: p["committed_offset"] for p in partitions}


def test_v6_commits_by_topic_id_visible_after_commit_and_dropped_on_abort(kbroker):
    topic = "txn-v6"
    create_topic(kbroker.port, topic, partitions=2)
    topic_id = topic_id_of(kbroker.port, topic)
    unknown = uuid.uuid4()
    with RawClient(kbroker.port) as client:
        txn = Transaction(client, "txn-v6", "group-v6")
        txn.add_offsets()
        answer = txn.commit_offsets([by_id(topic_id, {0: 5, 1: 7}), by_id(unknown, {0: 1})])
        assert [t["topic_id"] for t in answer] == [topic_id, unknown]  # v6 answers with the ids
        assert errors_by_id(answer) == {(topic_id, 0): NONE, (topic_id, 1): NONE, (unknown, 0): UNKNOWN_TOPIC_ID}
        assert committed(client, "group-v6", topic, stable=True) == UNSTABLE_OFFSET_COMMIT
        assert committed(client, "group-v6", topic) == {0: -1, 1: -1}  # pending until the marker
        txn.end(committed=True)
        eventually(lambda: committed(client, "group-v6", topic, stable=True) == {0: 5, 1: 7},
                   what="the committed transaction's offsets", timeout=TIMEOUT_S)

        txn.add_offsets()
        assert errors_by_id(txn.commit_offsets([by_id(topic_id, {0: 50})])) == {(topic_id, 0): NONE}
        txn.end(committed=False)
        eventually(lambda: committed(client, "group-v6", topic, stable=True) != UNSTABLE_OFFSET_COMMIT,
                   what="the abort marker on __consumer_offsets", timeout=TIMEOUT_S)
        assert committed(client, "group-v6", topic, stable=True) == {0: 5, 1: 7}


def test_v6_checks_a_consumer_group_members_epoch_and_the_group(kbroker):
    topic = "txn-v6-member"
    create_topic(kbroker.port, topic)
    topic_id = topic_id_of(kbroker.port, topic)
    member_id = str(uuid.uuid4())
    with RawClient(kbroker.port) as client:
        find_coordinator(client, "kip848-group", 0)
        beat = until_ready(lambda: client.call(CONSUMER_GROUP_HEARTBEAT, 1, {
            "group_id": "kip848-group", "member_id": member_id, "member_epoch": 0, "instance_id": None,
            "rack_id": None, "rebalance_timeout_ms": 30000, "subscribed_topic_names": [topic],
            "subscribed_topic_regex": None, "server_assignor": None, "topic_partitions": []}), "the heartbeat")
        assert beat["error_code"] == NONE
        epoch = beat["member_epoch"]
        assert epoch > 0
        txn = Transaction(client, "txn-v6-member", "kip848-group")
        txn.add_offsets()
        offsets = [by_id(topic_id, {0: 3})]
        for stale in (epoch - 1, epoch + 1):
            assert errors_by_id(txn.commit_offsets(offsets, member_id=member_id, epoch=stale)) == {
                (topic_id, 0): STALE_MEMBER_EPOCH}
        v5 = txn.commit_offsets([{"name": topic, "partitions": offsets[0]["partitions"]}], version=5,
                                member_id=member_id, epoch=epoch + 1)
        assert [(t["name"], [p["error_code"] for p in t["partitions"]]) for t in v5] == [(topic, [ILLEGAL_GENERATION])]
        assert errors_by_id(txn.commit_offsets(offsets, member_id="stranger", epoch=epoch)) == {
            (topic_id, 0): UNKNOWN_MEMBER_ID}
        assert errors_by_id(txn.commit_offsets(offsets, member_id=member_id, epoch=epoch)) == {(topic_id, 0): NONE}
        txn.end(committed=True)
        eventually(lambda: committed(client, "kip848-group", topic, stable=True) == {0: 3, 1: -1},
                   what="the member's committed offsets", timeout=TIMEOUT_S)

        other = Transaction(client, "txn-v6-nogroup", "no-such-group")
        other.add_offsets()
        assert errors_by_id(other.commit_offsets(offsets, member_id=member_id, epoch=4)) == {
            (topic_id, 0): GROUP_ID_NOT_FOUND}
        v5 = other.commit_offsets([{"name": topic, "partitions": offsets[0]["partitions"]}], version=5,
                                  member_id=member_id, epoch=4)
        assert [p["error_code"] for t in v5 for p in t["partitions"]] == [ILLEGAL_GENERATION]
        other.end(committed=False)
