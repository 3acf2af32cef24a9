"""The log side of transactions over a RawClient, for tests that act as a transaction coordinator:
transactional batches built by kafka-python, WriteTxnMarkers (27) as a coordinator sends it, and
Fetch / ListOffsets under an isolation level.

Must not start or stop brokers and must not write to a broker's data dir.
"""

from __future__ import annotations

from kbroker.testing.batches import producer_batch
from kbroker.testing.raw_client import FETCH, LIST_OFFSETS, NONE, RawClient, fetch_body
from kbroker.testing.records import now_ms

WRITE_TXN_MARKERS = 27
READ_UNCOMMITTED, READ_COMMITTED = 0, 1
LATEST_TIMESTAMP = -1


def txn_batch(values: list[bytes], producer_id: int, epoch: int, sequence: int, *, transactional: bool = True,
              keys: list[bytes | None] | None = None) -> bytes:
    """A producer's batch (transactional unless told otherwise), timestamped now: an old timestamp
    would make the broker roll a segment (segment.ms) before the next append."""
    return bytes(producer_batch(values, keys=keys, producer_id=producer_id, producer_epoch=epoch,
                                base_sequence=sequence, transactional=transactional, timestamp=now_ms()))


def write_txn_markers(client: RawClient, producer_id: int, epoch: int, committed: bool,
                      partitions: list[tuple[str, int]], *, coordinator_epoch: int = 0,
                      version: int = 1) -> dict[tuple[str, int], int]:
    """{(topic, partition): error code} of a one-marker WriteTxnMarkers request."""
    topics: dict[str, list[int]] = {}
    for topic, index in partitions:
        topics.setdefault(topic, []).append(index)
    answer = client.call(WRITE_TXN_MARKERS, version, {"markers": [{
        "producer_id": producer_id, "producer_epoch": epoch, "transaction_result": committed,
        "coordinator_epoch": coordinator_epoch,
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
