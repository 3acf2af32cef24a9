"""One consumer-group member, as a process of its own, for the group compat tests (no tests here).

    python compat-tests/test_groups_member.py <client> <bootstrap> <topic> <group> <client id> <strategy>

<client> is kafka-python, confluent-kafka or aiokafka (KafkaJS members are js/group_member.js,
speaking the same lines). A confluent-kafka member with the strategy `consumer` uses KIP-848's
protocol (group.protocol=consumer: the broker assigns, incrementally; "assigned" then reports
its whole assignment after each change). The member subscribes with a 6 s session timeout and 1 s heartbeats,
never auto-commits, and reports on stdout, one JSON object per line:
  {"event": "assigned", "partitions": [..]}          after every (re)assignment
  {"event": "records", "records": [[p, offset, value], ..]}   each batch, before committing it
  {"event": "committed", "offsets": {"p": next offset}}       after a synchronous commit
  {"event": "commit_failed", "error": "..."}                  when a rebalance got in the way
  {"event": "closed"}                                          after a clean close (LeaveGroup)
It closes cleanly on a "close" line (or end of file) on stdin; the tests kill it with SIGKILL
to play a member that dies without leaving. GROUP_INSTANCE_ID in the environment makes a
confluent-kafka member static. A kafka-python member sends its first JoinGroup only once its
metadata holds the topic's partitions (wait_for_partitions says why). Uses nothing of kbroker.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time

SESSION_TIMEOUT_MS = 6000
HEARTBEAT_INTERVAL_MS = 1000
POLL_MS = 200


def emit(event: str, **fields) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def close_requested() -> threading.Event:
    """Set when stdin says "close" or ends (the test process went away)."""
    stop = threading.Event()

    def watch() -> None:
        for line in sys.stdin:
            if line.strip() == "close":
                break
        stop.set()

    threading.Thread(target=watch, daemon=True).start()
    return stop


def wait_for_partitions(consumer, topic: str) -> None:
    """Returns once the kafka-python consumer's metadata holds the topic's partitions, so that
    its first JoinGroup (sent by the first poll) is made knowing them.

    Why: kafka-python 3.0.12 can wedge a group leader for good. subscribe() only asks for the
    topic's metadata, and that request waits out retry_backoff_ms after the bootstrap's, so with
    group.initial.rebalance.delay.ms=0 the first join can complete before it is even sent: the
    leader assigns no partitions, then sees the metadata change and rejoins. That rejoin is
    driven by its metadata snapshot alone (rejoin_needed stays False), and need_rejoin() turns
    False as soon as the leader has computed the new assignment. If poll()'s timer runs out
    while that JoinGroup/SyncGroup is in flight (likely on a loaded machine), the next poll()
    sees no rejoin needed and never awaits the join again: the coordinator's SyncGroup answer
    is dropped, the member stays REBALANCING with heartbeats disabled, its session expires
    and it never notices (assignment [], no records). Java's consumer keeps rejoining while a
    join is pending (rejoinNeededOrPending() is rejoinNeeded || joinFuture != null). With the
    partitions known before the first join, the first assignment is complete and that rejoin
    never happens; the topic's partition count does not change in these tests.
    """
    while not consumer.partitions_for_topic(topic):  # a metadata round trip while unknown
        time.sleep(0.1)


def run_kafka_python(bootstrap: str, topic: str, group: str, client_id: str, strategy: str) -> None:
    from kafka import ConsumerRebalanceListener, KafkaConsumer
    from kafka.coordinator.assignors.range import RangePartitionAssignor
    from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            pass

        def on_partitions_assigned(self, assigned):
            emit("assigned", partitions=sorted(tp.partition for tp in assigned))

    assignor = RangePartitionAssignor if strategy == "range" else RoundRobinPartitionAssignor
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, client_id=client_id,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             session_timeout_ms=SESSION_TIMEOUT_MS, heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
                             partition_assignment_strategy=[assignor])
    consumer.subscribe([topic], listener=Listener())
    wait_for_partitions(consumer, topic)
    stop = close_requested()
    while not stop.is_set():
        batches = consumer.poll(POLL_MS)
        records = [[r.partition, r.offset, r.value.decode()] for rs in batches.values() for r in rs]
        if not records:
            continue
        emit("records", records=records)
        try:
            consumer.commit()
        except Exception as exc:  # CommitFailedError while the group rebalances
            emit("commit_failed", error=repr(exc))
            continue
        emit("committed", offsets={str(tp.partition): consumer.position(tp) for tp in batches})
    consumer.close()
    emit("closed")


def run_confluent(bootstrap: str, topic: str, group: str, client_id: str, strategy: str) -> None:
    from confluent_kafka import Consumer, KafkaException

    config = {"bootstrap.servers": bootstrap, "group.id": group, "client.id": client_id,
              "auto.offset.reset": "earliest", "enable.auto.commit": False}
    if strategy == "consumer":
        # KIP-848: the broker owns the session timeout, the heartbeat interval and the assignor.
        config["group.protocol"] = "consumer"
    else:
        config.update({"session.timeout.ms": SESSION_TIMEOUT_MS, "heartbeat.interval.ms": HEARTBEAT_INTERVAL_MS,
                       "partition.assignment.strategy": strategy})
    if os.environ.get("GROUP_INSTANCE_ID"):
        config["group.instance.id"] = os.environ["GROUP_INSTANCE_ID"]  # a static member (KIP-345)
    consumer = Consumer(config)

    def on_assign(_consumer, partitions):  # confluent-kafka calls on_assign(consumer, partitions)
        if strategy != "consumer":
            emit("assigned", partitions=sorted(p.partition for p in partitions))
            return
        consumer.incremental_assign(partitions)
        emit("assigned", partitions=sorted(p.partition for p in consumer.assignment()))

    def on_revoke(_consumer, partitions):
        if strategy == "consumer":
            consumer.incremental_unassign(partitions)
            emit("assigned", partitions=sorted(p.partition for p in consumer.assignment()))

    consumer.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_revoke)
    stop = close_requested()
    while not stop.is_set():
        messages = [m for m in consumer.consume(num_messages=500, timeout=POLL_MS / 1000) if m.error() is None]
        if not messages:
            continue
        emit("records", records=[[m.partition(), m.offset(), m.value().decode()] for m in messages])
        try:
            committed = consumer.commit(asynchronous=False)
        except KafkaException as exc:
            emit("commit_failed", error=str(exc))
            continue
        emit("committed", offsets={str(tp.partition): tp.offset for tp in committed})
    consumer.close()
    emit("closed")


async def _run_aiokafka(bootstrap: str, topic: str, group: str, client_id: str, strategy: str) -> None:
    from aiokafka import AIOKafkaConsumer
    from aiokafka.abc import ConsumerRebalanceListener
    from aiokafka.coordinator.assignors.range import RangePartitionAssignor
    from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
    from aiokafka.errors import CommitFailedError, KafkaError

    class Listener(ConsumerRebalanceListener):
        async def on_partitions_revoked(self, revoked):
            pass

        async def on_partitions_assigned(self, assigned):
            emit("assigned", partitions=sorted(tp.partition for tp in assigned))

    assignor = RangePartitionAssignor if strategy == "range" else RoundRobinPartitionAssignor
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, client_id=client_id,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                session_timeout_ms=SESSION_TIMEOUT_MS, heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
                                partition_assignment_strategy=(assignor,))
    consumer.subscribe([topic], listener=Listener())
    await consumer.start()
    stop = close_requested()
    while not stop.is_set():
        batches = await consumer.getmany(timeout_ms=POLL_MS)
        records = [[r.partition, r.offset, r.value.decode()] for rs in batches.values() for r in rs]
        if not records:
            continue
        emit("records", records=records)
        offsets = {tp: rs[-1].offset + 1 for tp, rs in batches.items()}
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            emit("commit_failed", error=repr(exc))
            continue
        emit("committed", offsets={str(tp.partition): offset for tp, offset in offsets.items()})
    await consumer.stop()
    emit("closed")


def run_aiokafka(*args: str) -> None:
    asyncio.run(_run_aiokafka(*args))


MEMBERS = {"kafka-python": run_kafka_python, "confluent-kafka": run_confluent, "aiokafka": run_aiokafka}

if __name__ == "__main__":
    client, *member_args = sys.argv[1:]
    MEMBERS[client](*member_args)
