"""Transactions in a three-broker cluster with a real ZooKeeper (kbroker/testing/cluster.py),
after ducktape's transactions_test: a confluent-kafka transactional producer writes a stream of
transactions (every fifth aborted) to a replicated topic, and a broker is killed with SIGKILL in
the middle of a transaction: the transaction coordinator, or separately the leader of a data
partition.

Afterwards a read_committed consumer must see every committed transaction exactly once and in
order per partition, nothing of an aborted one, and each transaction whose outcome the producer
did not learn either whole or not at all (the new coordinator completes what was prepared).
`__transaction_state` is created with replication factor 3, every broker names the same
coordinator, and the coordinator moves to the partition's new leader. A follower refuses
WriteTxnMarkers for the partition (NOT_LEADER_OR_FOLLOWER) without appending.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from kbroker.testing.cluster import KafkaCluster
from kbroker.testing.raw_client import RawClient
from kbroker.testing.txn_log import READ_UNCOMMITTED, latest_offset, write_txn_markers
from kbroker.testing.waiting import eventually

pytestmark = pytest.mark.timeout(300)
TIMEOUT_S = 60
PARTITIONS = 3
TRANSACTIONS = 30
PER_TXN = 12
KILL_AT = 10
TXN_ID = "cluster-txn"
CLUSTER_OVERRIDES = (
    "zookeeper.session.timeout.ms=6000",
    "replica.fetch.backoff.ms=200",
    "controlled.shutdown.retry.backoff.ms=200",
    "transaction.state.log.num.partitions=4",
    "offsets.topic.num.partitions=4",
)
NONE, NOT_LEADER_OR_FOLLOWER = 0, 6


@pytest.fixture
def cluster(zookeeper, broker_factory):
    with KafkaCluster(broker_factory, zookeeper, overrides=CLUSTER_OVERRIDES) as cluster:
        yield cluster


def coordinator_of(cluster: KafkaCluster, broker_id: int) -> int:
    try:
        with RawClient(cluster.brokers[broker_id].port, timeout=5) as client:
            answer = client.call(10, 3, {"key": TXN_ID, "key_type": 1})
    except OSError:
        return -1
    return answer["node_id"] if answer["error_code"] == NONE else -1


def run_stream(cluster: KafkaCluster, topic: str, kill: callable) -> tuple[set[int], set[int], set[int]]:
    """Writes the transactions; returns (committed, aborted, in doubt) transaction numbers."""
    producer = Producer({"bootstrap.servers": cluster.bootstrap, "transactional.id": TXN_ID, "linger.ms": 5,
                         "transaction.timeout.ms": 60000})
    producer.init_transactions(TIMEOUT_S)
    committed, aborted, in_doubt = set(), set(), set()
    for txn in range(TRANSACTIONS):
        producer.begin_transaction()
        for i in range(PER_TXN):
            producer.produce(topic, key=b"%d" % i, value=b"%d-%d" % (txn, i), partition=i % PARTITIONS)
            if txn == KILL_AT and i == PER_TXN // 2:
                producer.flush(TIMEOUT_S)
                kill()
        try:
            if txn % 5 == 4:
                producer.abort_transaction(TIMEOUT_S)
                aborted.add(txn)
            else:
                producer.commit_transaction(TIMEOUT_S)
                committed.add(txn)
        except KafkaException as exc:
            error = exc.args[0]
            if error.fatal():
                raise
            in_doubt.add(txn)
            if error.txn_requires_abort():
                producer.abort_transaction(TIMEOUT_S)
    producer.flush(TIMEOUT_S)
    return committed, aborted, in_doubt


def read_committed(cluster: KafkaCluster, topic: str, expected: int) -> dict[int, list[bytes]]:
    # Assigned from the beginning: no group, so no __consumer_offsets needed with a broker down.
    consumer = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": f"check-{time.monotonic_ns()}",
                         "isolation.level": "read_committed", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    got: dict[int, list[bytes]] = {}
    count, last = 0, time.monotonic()
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while time.monotonic() < deadline and (count < expected or time.monotonic() - last < 3):
            for message in consumer.consume(500, 0.2):
                if not message.error():
                    got.setdefault(message.partition(), []).append(message.value())
                    count += 1
                    last = time.monotonic()
    finally:
        consumer.close()
    return got


def check(got: dict[int, list[bytes]], committed: set[int], aborted: set[int], in_doubt: set[int]) -> None:
    seen: dict[int, int] = {}
    for values in got.values():
        for value in values:
            txn = int(value.split(b"-")[0])
            seen[txn] = seen.get(txn, 0) + 1
    assert not set(seen) & aborted, "records of aborted transactions are visible"
    for txn in committed:
        assert seen.get(txn) == PER_TXN, f"committed transaction {txn}: {seen.get(txn)} records visible"
    for txn in in_doubt:
        assert seen.get(txn, 0) in (0, PER_TXN), f"transaction {txn} is partly visible"
    for partition, values in got.items():  # in order per partition, each exactly once
        expected = [b"%d-%d" % (txn, i) for txn in sorted(seen) for i in range(partition, PER_TXN, PARTITIONS)]
        assert values == expected, f"partition {partition} out of order or duplicated"


def refuse_markers_on_a_follower(cluster: KafkaCluster, topic: str) -> None:
    """WriteTxnMarkers sent to a broker that follows the partition: NOT_LEADER_OR_FOLLOWER, and
    nothing reaches the log (the leader's log end stays 0)."""
    leader = cluster.leader(topic, 0)
    follower = next(r for r in cluster.replicas(topic, 0) if r != leader)
    with RawClient(cluster.brokers[follower].port, timeout=10) as client:
        assert write_txn_markers(client, 4242, 0, True, [(topic, 0)]) == {(topic, 0): NOT_LEADER_OR_FOLLOWER}
    with RawClient(cluster.brokers[leader].port, timeout=10) as client:
        assert latest_offset(client, topic, 0, READ_UNCOMMITTED) == 0


@pytest.mark.parametrize("victim", ["coordinator", "partition-leader"])
def test_transactions_survive_a_broker_kill(cluster, victim):
    topic = f"txn-cluster-{victim}"
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    admin.create_topics([NewTopic(topic, PARTITIONS, 3)], operation_timeout=TIMEOUT_S)[topic].result(TIMEOUT_S)

    def agreed() -> set[int]:
        return {coordinator_of(cluster, b) for b in cluster.brokers if b not in killed}

    killed: set[int] = set()
    cluster.wait_for(lambda: len(agreed()) == 1 and -1 not in agreed(), timeout=TIMEOUT_S,
                     what="every broker to name the transaction coordinator")
    assert {len(cluster.replicas("__transaction_state", p)) for p in range(4)} == {3}
    (coordinator,) = agreed()
    refuse_markers_on_a_follower(cluster, topic)

    def kill() -> None:
        if victim == "coordinator":
            target = coordinator
        else:  # a data partition's leader that is not the coordinator
            leaders = [cluster.leader(topic, p) for p in range(PARTITIONS)]
            target = next(leader for leader in leaders if leader != coordinator)
        killed.add(target)
        cluster.kill(target)

    committed, aborted, in_doubt = run_stream(cluster, topic, kill)
    assert len(committed) >= TRANSACTIONS * 3 // 4 - 2, (committed, aborted, in_doubt)
    got = read_committed(cluster, topic, len(committed) * PER_TXN)
    check(got, committed, aborted, in_doubt)
    if victim == "coordinator":
        cluster.wait_for(lambda: len(agreed()) == 1 and -1 not in agreed() and coordinator not in agreed(),
                         timeout=TIMEOUT_S, what="a new coordinator")
    (current,) = agreed()

    def settled() -> dict | None:  # nothing left prepared: markers written, Complete state written
        with RawClient(cluster.brokers[current].port, timeout=5) as client:
            [state] = client.call(65, 0, {"transactional_ids": [TXN_ID]})["transaction_states"]
        return state if state["transaction_state"] in ("CompleteCommit", "CompleteAbort") else None

    final = eventually(settled, timeout=TIMEOUT_S, what="the last transaction completed")
    assert final["topics"] == []
