"""The log side of transactions over a RawClient, for tests that act as a transaction coordinator:
transactional batches built by kafka-python, WriteTxnMarkers (27) as a coordinator sends it, and
Fetch / ListOffsets under an isolation level.

`write_mixed_transactions` writes one partition's worth of committed, aborted, plain and open
transactions and says what each isolation level must see. Brokers for these tests take
NO_VERIFICATION: the transactional id of their produces (TXN_LOG_TEST_ID) has no coordinator.

Must not start or stop brokers and must not write to a broker's data dir.
"""

from __future__ import annotations

from kbroker.testing.batches import producer_batch
from kbroker.testing.raw_client import (
    FETCH,
    LIST_OFFSETS,
    NONE,
    RawClient,
    fetch_body,
    init_producer_id,
    produce,
)
from kbroker.testing.records import now_ms

WRITE_TXN_MARKERS = 27
READ_UNCOMMITTED, READ_COMMITTED = 0, 1
LATEST_TIMESTAMP = -1
# These tests play the coordinator themselves, so no coordinator knows their transactional id:
# their brokers run without KIP-890's verification, which would ask one (as Kafka could be told).
TXN_LOG_TEST_ID = "kbroker-txn-log-test"
NO_VERIFICATION = "transaction.partition.verification.enable=false"


def txn_batch(values: list[bytes], producer_id: int, epoch: int, sequence: int, *, transactional: bool = True,
              keys: list[bytes | None] | None = None) -> bytes:
    """A producer's batch (transactional unless told otherwise), timestamped now: an old timestamp
    would make the broker roll a segment (segment.ms) before the next append."""
    return bytes(producer_batch(values, keys=keys, producer_id=producer_id, producer_epoch=epoch,
                                base_sequence=sequence, transactional=transactional, timestamp=now_ms()))


def write_txn_markers(client: RawClient, producer_id: int, epoch: int, committed: bool,
                      partitions: list[tuple[str, int]], *, coordinator_epoch: int = 0,
                      version: int = 1, transaction_version: int = 0) -> dict[tuple[str, int], int]:
    """{(topic, partition): error code} of a one-marker WriteTxnMarkers request (v2 carries the
    coordinator's transaction.version)."""
    topics: dict[str, list[int]] = {}
    for topic, index in partitions:
        topics.setdefault(topic, []).append(index)
    answer = client.call(WRITE_TXN_MARKERS, version, {"markers": [{
        "producer_id": producer_id, "producer_epoch": epoch, "transaction_result": committed,
        "coordinator_epoch": coordinator_epoch, "transaction_version": transaction_version,
        "topics": [{"name": name, "partition_indexes": indexes} for name, indexes in topics.items()]}]})
    [marker] = answer["markers"]
    assert marker["producer_id"] == producer_id, marker
    return {(t["name"], p["partition_index"]): p["error_code"] for t in marker["topics"] for p in t["partitions"]}


def fetch_isolated(client: RawClient, topic: str, partition: int, offset: int, isolation: int) -> dict:
    """One partition's Fetch (v12) answer under `isolation`; it must carry no error."""
    body = fetch_body(topic, partition, offset)
    body["isolation_level"] = isolation
    answer = client.call(FETCH, 12, body)
    [partition_answer] = answer["responses"][0]["partitions"]
    assert partition_answer["error_code"] == NONE, partition_answer
    return partition_answer


def latest_offset(client: RawClient, topic: str, partition: int, isolation: int) -> int:
    """ListOffsets (v7) for the latest offset under `isolation`: the LSO for read_committed."""
    answer = client.call(LIST_OFFSETS, 7, {"replica_id": -1, "isolation_level": isolation, "topics": [
        {"name": topic, "partitions": [{"partition_index": partition, "timestamp": LATEST_TIMESTAMP}]}]})
    [entry] = answer["topics"][0]["partitions"]
    assert entry["error_code"] == NONE, entry
    return entry["offset"]


def produce_txn(client: RawClient, topic: str, partition: int, records: bytes) -> dict:
    """One partition's Produce answer (acks=-1) for transactional batches, named by the
    transactional id Kafka requires with them (TRANSACTIONAL_ID_AUTHORIZATION_FAILED otherwise)."""
    return produce(client, topic, partition, records, acks=-1, transactional_id=TXN_LOG_TEST_ID)


class Producers:
    """Three idempotent producer ids acting as transactional producers, and their sequences."""

    def __init__(self, client: RawClient) -> None:
        self.client = client
        self.ids = {name: init_producer_id(client) for name in ("A", "B", "C")}
        self.sequences = dict.fromkeys(self.ids, 0)

    def send(self, topic: str, name: str, values: list[bytes], keys: list[bytes | None] | None = None) -> int:
        pid, epoch = self.ids[name]
        batch = txn_batch(values, pid, epoch, self.sequences[name], keys=keys)
        answer = produce_txn(self.client, topic, 0, batch)
        assert answer["error_code"] == NONE, answer
        self.sequences[name] += len(values)
        return answer["base_offset"]

    def end(self, topic: str, name: str, committed: bool) -> int:
        pid, epoch = self.ids[name]
        assert write_txn_markers(self.client, pid, epoch, committed, [(topic, 0)]) == {(topic, 0): NONE}
        return fetch_isolated(self.client, topic, 0, 0, READ_UNCOMMITTED)["high_watermark"] - 1


def plain(client: RawClient, topic: str, values: list[bytes], keys: list[bytes | None] | None = None) -> None:
    """A non-transactional, non-idempotent batch to partition 0."""
    batch = bytes(producer_batch(values, keys=keys, timestamp=now_ms()))
    assert produce(client, topic, 0, batch)["error_code"] == NONE


def write_mixed_transactions(client: RawClient, topic: str) -> tuple[Producers, dict]:
    """Into partition 0: A commits, A aborts while B is open, a plain record, B commits, C stays
    open. Returns the producers and what is expected: (offset, value) under read_committed
    ("committed") and read_uncommitted ("uncommitted"), the LSO and Fetch's aborted_transactions."""
    producers = Producers(client)
    producers.send(topic, "A", [b"a1", b"a2"])  # 0-1
    producers.end(topic, "A", True)  # 2
    producers.send(topic, "B", [b"b1"])  # 3
    aborted_at = producers.send(topic, "A", [b"a3"])  # 4
    producers.end(topic, "A", False)  # 5
    plain(client, topic, [b"p1"])  # 6
    producers.end(topic, "B", True)  # 7
    open_at = producers.send(topic, "C", [b"c1"])  # 8, open
    expected = {
        "committed": [(0, b"a1"), (1, b"a2"), (3, b"b1"), (6, b"p1")],
        "uncommitted": [(0, b"a1"), (1, b"a2"), (3, b"b1"), (4, b"a3"), (6, b"p1"), (8, b"c1")],
        "lso": open_at,
        "aborted": [{"producer_id": producers.ids["A"][0], "first_offset": aborted_at}],
    }
    return producers, expected
