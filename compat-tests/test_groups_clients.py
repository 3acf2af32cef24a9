"""Consumer groups with real clients: kafka-python, confluent-kafka, aiokafka and KafkaJS.

For each client, against a fresh broker (default settings: group.initial.rebalance.delay.ms=0):
- three members (processes, test_groups_member.py or js/group_member.js) subscribe to a
  6-partition topic and end up with 2 partitions each, every partition exactly once, and consume
  and commit all 60 records;
- one closes (LeaveGroup): its partitions move to the other two (3 each) well within the 6 s
  session timeout; one is killed with SIGKILL: the last member gets all 6 once the session
  timeout has passed;
- the last member consumes and commits 30 more records and closes; `__consumer_offsets`
  segments hold its commits in Kafka's key/value format; 30 more records are produced and the
  broker restarts; a new member resumes exactly at the commits: it reads those 30 records, no
  more, no fewer;
- the client's admin API lists the group, describes it (member, client id, assignment) and
  fetches its committed offsets; once the member has left, deletes it where the API can.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka.record.memory_records import MemoryRecords

from kbroker.testing.tools import JS_DIR, kafkajs_unavailable_reason, run_kafkajs
from kbroker.testing.waiting import eventually

pytestmark = pytest.mark.long_running  # member processes killed and restarted
MEMBER_SCRIPT = Path(__file__).with_name("test_groups_member.py")
PARTITIONS = 6
SESSION_TIMEOUT_S = 6.0
WAIT_S = 30.0
# The reason the coordinator logs when it removes a member whose session lapsed.
SESSION_EXPIRED = "session timeout expired"
STRATEGIES = {"kafka-python": "range", "confluent-kafka": "range", "aiokafka": "roundrobin", "kafkajs": "roundrobin"}


class Member:
    """A member process; its stdout lines are collected by a reader thread."""

    def __init__(self, client: str, bootstrap: str, topic: str, group: str, name: str, log_dir: Path,
                 instance_id: str | None = None, strategy: str | None = None) -> None:
        self.name = name
        self.client_id = f"{group}-{name}"
        if client == "kafkajs":
            argv = ["node", str(JS_DIR / "group_member.js"), topic, group, self.client_id]
        else:
            argv = [sys.executable, str(MEMBER_SCRIPT), client, bootstrap, topic, group, self.client_id,
                    strategy or STRATEGIES[client]]
        self.stderr_path = log_dir / f"member-{name}.err"
        with self.stderr_path.open("w") as err:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True,
                                         env=dict(os.environ, BOOTSTRAP=bootstrap, PYTHONUNBUFFERED="1",
                                                  GROUP_INSTANCE_ID=instance_id or ""),
                                         start_new_session=True)
        self.assignment: list[int] | None = None
        self.assignments_seen = 0
        self.records: list[tuple[int, int, str]] = []
        self.committed: dict[int, int] = {}
        self.closed = False
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            if line.startswith("{"):
                self.lines.put(json.loads(line))

    def update(self) -> None:
        while True:
            try:
                event = self.lines.get_nowait()
            except queue.Empty:
                return
            kind = event["event"]
            if kind == "assigned":
                self.assignment = event["partitions"]
                self.assignments_seen += 1
            elif kind == "records":
                self.records.extend(tuple(r) for r in event["records"])
            elif kind == "committed":
                for partition, offset in event["offsets"].items():
                    if offset >= 0:
                        self.committed[int(partition)] = max(offset, self.committed.get(int(partition), 0))
            elif kind == "closed":
                self.closed = True

    def close(self) -> None:
        self.proc.stdin.write("close\n")
        self.proc.stdin.flush()
        wait_for(lambda: self.closed, f"{self.name} to close", [self])
        self.proc.wait(timeout=10)

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.kill()

    def report(self) -> str:
        err = self.stderr_path.read_text(errors="replace")[-3000:] if self.stderr_path.exists() else ""
        return (f"--- {self.name}: exit {self.proc.poll()}, assignment {self.assignment}, "
                f"{len(self.records)} records, committed {self.committed}\n{err}")


def wait_for(predicate, what: str, members: list[Member], timeout: float = WAIT_S) -> None:
    """Polls (reading the members' events) until predicate() holds; on timeout the failure
    carries every member's report."""
    def holds() -> bool:
        for m in members:
            m.update()
        return predicate()

    try:
        eventually(holds, what=what, timeout=timeout)
    except AssertionError as timed_out:
        raise AssertionError(f"{timed_out}\n" + "\n".join(m.report() for m in members)) from None


def balanced(members: list[Member], each: int) -> bool:
    assignments = [m.assignment for m in members]
    if any(a is None or len(a) != each for a in assignments):
        return False
    every = sorted(p for a in assignments for p in a)
    return every == list(range(PARTITIONS))


def values(members: list[Member]) -> set[str]:
    return {value for m in members for _, _, value in m.records}


def produce(bootstrap: str, topic: str, start: int, count: int) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for i in range(start, start + count):
        producer.send(topic, f"r{i}".encode(), partition=i % PARTITIONS)
    producer.flush()
    producer.close()


def committed_in_segments(data_dir: Path, group: str) -> dict[tuple[str, int], int]:
    """The latest committed offset per partition of `group`, read from the __consumer_offsets
    segment files with kafka-python's record reader and decoded by hand (KAFKA-FACTS §6)."""
    latest: dict[tuple[str, int], int] = {}
    for segment in sorted(data_dir.glob("__consumer_offsets-*/*.log")):
        records = MemoryRecords(segment.read_bytes())
        while records.has_next():
            for record in records.next_batch():
                key, value = record.key, record.value
                if struct.unpack_from(">h", key)[0] not in (0, 1):
                    continue  # group metadata
                pos = 2
                fields = []
                for _ in range(2):
                    (length,) = struct.unpack_from(">h", key, pos)
                    fields.append(key[pos + 2:pos + 2 + length].decode())
                    pos += 2 + length
                (partition,) = struct.unpack_from(">i", key, pos)
                if fields[0] != group:
                    continue
                if value is None:
                    latest.pop((fields[1], partition), None)
                    continue
                version, offset = struct.unpack_from(">hq", value)
                assert version == 3, f"OffsetCommitValue v{version}: Kafka 3.x writes v3 without expiry"
                latest[(fields[1], partition)] = offset
    return latest


def create_topic(bootstrap: str, topic: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        admin.close()


@pytest.fixture
def spawned():
    members: list[Member] = []
    yield members
    for m in members:
        m.stop()


@pytest.mark.parametrize("client", ["kafka-python", "confluent-kafka", "aiokafka", "kafkajs"])
def test_group_balances_survives_leave_and_kill_and_resumes_after_restart(client, broker_factory, spawned,
                                                                           tmp_path):
    if client == "kafkajs" and kafkajs_unavailable_reason():
        pytest.skip(kafkajs_unavailable_reason())
    broker = broker_factory()
    topic, group = f"orders-{client}", f"workers-{client}"
    create_topic(broker.bootstrap, topic)
    produce(broker.bootstrap, topic, 0, 60)

    def start(name: str) -> Member:
        member = Member(client, broker.bootstrap, topic, group, name, tmp_path)
        spawned.append(member)
        return member

    a, b, c = start("a"), start("b"), start("c")
    trio = [a, b, c]
    wait_for(lambda: balanced(trio, 2), "three members with 2 partitions each", trio)
    wait_for(lambda: values(trio) == {f"r{i}" for i in range(60)}, "all 60 records", trio)

    a.close()
    wait_for(lambda: balanced([b, c], 3), "a's partitions to move to b and c", [b, c])
    # a left through LeaveGroup: nobody waited for its session to lapse.
    assert f"has left group {group} through LeaveGroup" in broker.output()
    assert SESSION_EXPIRED not in broker.output()

    b.kill()
    wait_for(lambda: balanced([c], 6), "b's partitions to move to c", [c])
    assert SESSION_EXPIRED in broker.output()  # b is found dead at its session timeout, then c rejoins

    produce(broker.bootstrap, topic, 60, 30)
    expected_commits = {p: 15 for p in range(PARTITIONS)}
    wait_for(lambda: values(trio) >= {f"r{i}" for i in range(90)} and c.committed == expected_commits,
             "c to consume and commit 90 records", [c])
    c.close()
    assert committed_in_segments(broker.log_dir, group) == {(topic, p): 15 for p in range(PARTITIONS)}

    produce(broker.bootstrap, topic, 90, 30)
    broker.restart()
    d = start("d")
    wait_for(lambda: d.assignment == list(range(PARTITIONS)) and len(d.records) >= 30, "d to read the tail", [d])
    wait_for(lambda: d.committed == {p: 20 for p in range(PARTITIONS)}, "d to commit", [d])
    # Exactly the records after the commits (d has committed past all of them): nothing lost,
    # nothing read twice.
    assert sorted(v for _, _, v in d.records) == sorted(f"r{i}" for i in range(90, 120))
    assert {(p, o) for p, o, _ in d.records} == {(p, o) for p in range(PARTITIONS) for o in range(15, 20)}

    ADMIN_CHECKS[client](broker.bootstrap, group, topic, d.client_id)
    d.close()
    if client in DELETE_GROUP:  # aiokafka's admin client cannot delete groups
        assert DELETE_GROUP[client](broker.bootstrap, group, topic) == {"deleted": True, "listed": False}


def test_confluent_static_member_comes_back_without_a_rebalance(broker_factory, spawned, tmp_path):
    """KIP-345: a static member that restarts within its session timeout rejoins under a new
    member id with its old assignment, and the other member sees no rebalance."""
    broker = broker_factory()
    topic, group = "static-orders", "static-workers"
    create_topic(broker.bootstrap, topic)
    produce(broker.bootstrap, topic, 0, 12)

    def start(name: str, instance: str) -> Member:
        member = Member("confluent-kafka", broker.bootstrap, topic, group, name, tmp_path, instance)
        spawned.append(member)
        return member

    one, two = start("one", "instance-1"), start("two", "instance-2")
    wait_for(lambda: balanced([one, two], 3) and len(values([one, two])) == 12, "two static members", [one, two])
    seen_by_one = one.assignments_seen
    rebalances = broker.output().count(f"preparing to rebalance group {group} ")
    two.kill()
    again = start("two-again", "instance-2")
    wait_for(lambda: again.assignment is not None, "the restarted static member's assignment", [again])
    assert again.assignment == two.assignment
    # The coordinator decides on a rebalance when the member joins, before answering it.
    assert broker.output().count(f"preparing to rebalance group {group} ") == rebalances
    one.update()
    assert one.assignments_seen == seen_by_one
    # It resumes at its commits: none of its partitions' records come again.
    produce(broker.bootstrap, topic, 12, 12)
    new = {f"r{i}" for i in range(12, 24)}
    wait_for(lambda: new <= values([one, again]), "the new records", [one, again])
    assert sorted(v for _, _, v in again.records) == sorted(f"r{i}" for i in range(12, 24)
                                                            if i % PARTITIONS in two.assignment)


# ---------------------------------------------------------------------------------------------
# Each client's admin API, on the stable one-member group the scenario leaves behind


def check_kafka_python_admin(bootstrap: str, group: str, topic: str, client_id: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        listed = {g["group_id"]: g for g in admin.list_groups()}
        assert (listed[group]["protocol_type"], listed[group]["group_state"]) == ("consumer", "Stable")
        described = admin.describe_groups([group])[group]
        assert (described["group_state"], described["protocol_data"]) == ("Stable", "range")
        (member,) = described["members"]
        assert (member["client_id"], member["client_host"]) == (client_id, "/127.0.0.1")
        assert member["member_metadata"]["topics"] == [topic]
        assert member["member_assignment"]["assigned_partitions"] == [
            {"topic": topic, "partitions": list(range(PARTITIONS))}]
        offsets = admin.list_group_offsets({group: None})[group]
        assert {(tp.topic, tp.partition): om.offset for tp, om in offsets.items()} == {
            (topic, p): 20 for p in range(PARTITIONS)}
    finally:
        admin.close()


def check_confluent_admin(bootstrap: str, group: str, topic: str, client_id: str) -> None:
    from confluent_kafka import ConsumerGroupState, ConsumerGroupTopicPartitions
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    listed = admin.list_consumer_groups(request_timeout=15).result(timeout=15)
    (listing,) = [g for g in listed.valid if g.group_id == group]
    assert listing.state == ConsumerGroupState.STABLE and not listing.is_simple_consumer_group
    description = admin.describe_consumer_groups([group], request_timeout=15)[group].result(timeout=15)
    assert (description.state, description.partition_assignor) == (ConsumerGroupState.STABLE, "range")
    (member,) = description.members
    assert (member.client_id, member.host) == (client_id, "/127.0.0.1")
    assert sorted((tp.topic, tp.partition) for tp in member.assignment.topic_partitions) == [
        (topic, p) for p in range(PARTITIONS)]
    futures = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)], request_timeout=15)
    offsets = futures[group].result(timeout=15)
    assert {(tp.topic, tp.partition): tp.offset for tp in offsets.topic_partitions} == {
        (topic, p): 20 for p in range(PARTITIONS)}


def check_aiokafka_admin(bootstrap: str, group: str, topic: str, client_id: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    async def check() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            listed = await admin.list_consumer_groups()
            assert (group, "consumer") in [(g[0], g[1]) for g in listed]
            (response,) = await admin.describe_consumer_groups([group])
            (described,) = response.groups
            error_code, group_id, state, protocol_type, protocol, members = described[:6]
            assert (error_code, group_id, state, protocol_type, protocol) == (0, group, "Stable", "consumer",
                                                                              "roundrobin")
            assert [(m[1], m[2]) for m in members] == [(client_id, "/127.0.0.1")]
            offsets = await admin.list_consumer_group_offsets(group)
            assert {(tp.topic, tp.partition): om.offset for tp, om in offsets.items()} == {
                (topic, p): 20 for p in range(PARTITIONS)}
        finally:
            await admin.close()

    asyncio.run(check())


def check_kafkajs_admin(bootstrap: str, group: str, topic: str, client_id: str) -> None:
    result = run_kafkajs("group_admin.js", bootstrap, group, topic)
    assert {"groupId": group, "protocolType": "consumer"} in result["groups"]
    (described,) = result["described"]
    assert (described["groupId"], described["state"], described["protocolType"], described["protocol"]) == (
        group, "Stable", "consumer", "RoundRobinAssigner")
    assert [(m["clientId"], m["clientHost"]) for m in described["members"]] == [(client_id, "/127.0.0.1")]
    assert sorted((p["partition"], p["offset"]) for p in result["offsets"]) == [
        (p, "20") for p in range(PARTITIONS)]


# DELETE_GROUP's deleters share one signature; only KafkaJS's script needs the topic.
def delete_with_kafka_python(bootstrap: str, group: str, _topic: str) -> dict:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        deleted = admin.delete_groups([group]) == {group: "OK"}
        return {"deleted": deleted, "listed": group in {g["group_id"] for g in admin.list_groups()}}
    finally:
        admin.close()


def delete_with_confluent(bootstrap: str, group: str, _topic: str) -> dict:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.delete_consumer_groups([group], request_timeout=15)[group].result(timeout=15)  # raises on an error
    listed = admin.list_consumer_groups(request_timeout=15).result(timeout=15)
    return {"deleted": True, "listed": group in {g.group_id for g in listed.valid}}


def delete_with_kafkajs(bootstrap: str, group: str, topic: str) -> dict:
    result = run_kafkajs("group_admin.js", bootstrap, group, topic, "delete")
    return {"deleted": [(r["groupId"], r["errorCode"]) for r in result["deleted"]] == [(group, 0)],
            "listed": group in {g["groupId"] for g in result["groups"]}}


DELETE_GROUP = {"kafka-python": delete_with_kafka_python, "confluent-kafka": delete_with_confluent,
                "kafkajs": delete_with_kafkajs}

ADMIN_CHECKS = {"kafka-python": check_kafka_python_admin, "confluent-kafka": check_confluent_admin,
                "aiokafka": check_aiokafka_admin, "kafkajs": check_kafkajs_admin}

