"""The `kbroker` subcommands (kbroker/tools/) run as a user runs them: `python -m kbroker topics ...`
in a subprocess against a real broker, their output read back and checked line by line.

The records and groups they show are made with confluent-kafka's own Producer and Consumer, so a
tool is checked against what another client did, not only against itself.
"""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
)

from kbroker.cli import TOOL_COMMANDS
from kbroker.group.coordinator_records import partition_for
from kbroker.testing.cluster import KafkaCluster
from kbroker.testing.processes import BrokerProcess, free_port
from kbroker.testing.raw_client import RawClient, init_producer_id
from kbroker.testing.txn_log import NO_VERIFICATION, produce_txn, txn_batch
from kbroker.testing.waiting import eventually
from kbroker.tools import command_names
from kbroker.tools.acls import print_bindings
from kbroker.tools.common import translate_java_properties
from kbroker.tools.configs import split_config_list

RECORDS = 10
# Only the test's leader-election may move leaders back to their preferred replica.
CLUSTER_OVERRIDES = ("zookeeper.session.timeout.ms=6000", "auto.create.topics.enable=false",
                     "auto.leader.rebalance.enable=false", "controlled.shutdown.retry.backoff.ms=200")


@pytest.fixture(scope="module")
def broker(module_broker_factory) -> BrokerProcess:
    return module_broker_factory()


@pytest.fixture(scope="module")
def bootstrap(broker: BrokerProcess) -> str:
    return broker.bootstrap


def kbroker(*argv: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "kbroker", *argv], input=stdin, capture_output=True, text=True,
                          timeout=90)
    if check:
        assert proc.returncode == 0, f"{argv} exited {proc.returncode}: {proc.stderr}"
    return proc


def tool(command: str, bootstrap: str, *argv: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return kbroker(command, "--bootstrap-server", bootstrap, *argv, **kwargs)


def new_topic(bootstrap: str, partitions: int = 1) -> str:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    assert tool("topics", bootstrap, "--create", "--topic", name, "--partitions", str(partitions)).stdout \
        == f"Created topic {name}.\n"
    return name


def produce(bootstrap: str, topic: str, count: int = RECORDS) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(count):
        producer.produce(topic, f"value-{i}".encode(), f"key-{i}".encode(), headers=[("h", f"{i}".encode())])
    assert producer.flush(30) == 0


def consume(bootstrap: str, topic: str, count: int) -> list:
    """The first `count` records of a topic, read by confluent-kafka's Consumer."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{uuid.uuid4().hex[:8]}",
                         "auto.offset.reset": "earliest"})
    received = []

    def more() -> bool:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            received.append(message)
        return len(received) >= count

    try:
        consumer.subscribe([topic])
        eventually(more, what=f"{count} records of {topic}", timeout=30)
    finally:
        consumer.close()
    return received


def describe_rows(bootstrap: str, group: str) -> list[list[str]]:
    out = tool("consumer-groups", bootstrap, "--describe", "--group", group).stdout
    lines = [line.split() for line in out.splitlines() if line.strip()]
    header = lines.index(["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG",
                          "CONSUMER-ID", "HOST", "CLIENT-ID"])
    return lines[header + 1:]


def test_the_broker_knows_every_subcommand_by_name() -> None:
    # kbroker.cli dispatches on this list without importing the tools (test_start_imports checks that).
    assert sorted(TOOL_COMMANDS) == command_names()


def test_add_config_keeps_commas_inside_brackets() -> None:
    assert split_config_list("retention.ms=1000,cleanup.policy=[compact,delete]") == {
        "retention.ms": "1000", "cleanup.policy": "compact,delete"}


def test_topics_create_describe_alter_delete(bootstrap: str) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    out = tool("topics", bootstrap, "--create", "--topic", name, "--partitions", "2", "--replication-factor", "1",
               "--config", "retention.ms=123456", "--config", "cleanup.policy=compact").stdout
    assert out == f"Created topic {name}.\n"
    assert name in tool("topics", bootstrap, "--list").stdout.splitlines()

    lines = tool("topics", bootstrap, "--describe", "--topic", name).stdout.splitlines()
    assert re.fullmatch(rf"Topic: {name}\tTopicId: [A-Za-z0-9_-]{{22}}\tPartitionCount: 2\tReplicationFactor: 1"
                        r"\tConfigs: cleanup.policy=compact,retention.ms=123456", lines[0]), lines[0]
    assert lines[1:] == [f"\tTopic: {name}\tPartition: {p}\tLeader: 0\tReplicas: 0\tIsr: 0" for p in (0, 1)]

    tool("topics", bootstrap, "--alter", "--topic", name, "--partitions", "3")
    [described] = json.loads(tool("topics", bootstrap, "--describe", "--topic", name, "--output", "json").stdout)
    assert described["partition_count"] == 3
    assert [p["partition"] for p in described["partitions"]] == [0, 1, 2]
    assert described["configs"] == {"cleanup.policy": "compact", "retention.ms": "123456"}

    again = tool("topics", bootstrap, "--create", "--topic", name, check=False)
    assert again.returncode == 1 and again.stderr.count("\n") == 1 and "TOPIC_ALREADY_EXISTS" in again.stderr
    assert tool("topics", bootstrap, "--create", "--topic", name, "--if-not-exists").stdout == ""

    regex = tool("topics", bootstrap, "--describe", "--topic", f"{name[:-1]}.", "--output", "json").stdout
    assert [topic["topic"] for topic in json.loads(regex)] == [name]  # --topic is a regular expression too

    tool("topics", bootstrap, "--delete", "--topic", name)
    eventually(lambda: name not in tool("topics", bootstrap, "--list").stdout.splitlines(), what="topic deleted")
    gone = tool("topics", bootstrap, "--describe", "--topic", name, check=False)
    assert gone.returncode == 1 and f"Topic '{name}' does not exist" in gone.stderr


def test_reassign_partitions_moves_a_replica_between_log_dirs(broker_factory, tmp_path: Path) -> None:
    """A plan with `log_dirs` on a broker with two log dirs: --execute moves the replica (Kafka's
    lines), --verify reports the move as Kafka's tool does, and a plan whose log_dirs do not match
    its replicas is refused with Kafka's message."""
    single = broker_factory()
    single.stop()
    second = tmp_path / "second-log-dir"
    single.overrides.append(f"log.dirs={single.log_dir},{second}")
    single.start()
    topic = new_topic(single.bootstrap)
    produce(single.bootstrap, topic)
    dirs = sorted([str(single.log_dir), str(second)])
    [current] = [d for d in dirs if (Path(d) / f"{topic}-0").is_dir()]
    [other] = [d for d in dirs if d != current]

    def plan(log_dirs: list[str]) -> tuple[str, ...]:
        path = tmp_path / f"plan-{len(log_dirs)}.json"
        path.write_text(json.dumps({"version": 1, "partitions": [
            {"topic": topic, "partition": 0, "replicas": [0], "log_dirs": log_dirs}]}))
        return ("reassign-partitions", single.bootstrap, "--reassignment-json-file", str(path))

    out = tool(*plan([other]), "--execute").stdout.splitlines()
    assert out[-2:] == [f"Successfully started partition reassignments for {topic}-0",
                        f"Successfully started moving log directory to {other} for replica {topic}-0 with broker 0 "]
    eventually(lambda: tool(*plan([other]), "--verify").stdout.splitlines() == [
        "Status of partition reassignment:", f"Reassignment of partition {topic}-0 is completed.",
        f"Reassignment of replica {topic}-0-0 completed successfully."], what="the move to finish")
    assert (Path(other) / f"{topic}-0").is_dir() and not (Path(current) / f"{topic}-0").exists()
    assert len(consume(single.bootstrap, topic, RECORDS)) == RECORDS
    assert tool(*plan([current]), "--verify").stdout.splitlines()[-1] == \
        f"Partition {topic}-0 on broker 0 is not being moved from log dir {other} to {current}."
    refused = tool(*plan([current, other]), "--execute", check=False)
    assert refused.returncode == 1
    assert f"Size of replicas list [0] is different from size of log dirs list [{current}, {other}] " \
           f"for partition {topic}-0" in refused.stderr
    assert single.stop() == 0


@pytest.mark.timeout(300)  # ZooKeeper and three brokers, one restarted
def test_describe_leader_election_and_reassignment_on_a_cluster(zookeeper, broker_factory, tmp_path: Path) -> None:
    with KafkaCluster(broker_factory, zookeeper, overrides=CLUSTER_OVERRIDES) as cluster:
        kbroker("topics", "--bootstrap-server", cluster.bootstrap, "--create", "--topic", "spread",
                "--partitions", "3", "--replication-factor", "3")

        def described() -> list[str] | None:
            lines = tool("topics", cluster.bootstrap, "--describe", "--topic", "spread").stdout.splitlines()
            return lines if all(not line.endswith("\tIsr: ") and "Leader: none" not in line for line in lines) else None

        lines = eventually(described, what="leaders and ISRs of spread", timeout=30)
        assert "\tPartitionCount: 3\tReplicationFactor: 3\tConfigs: " in lines[0]
        for partition, line in enumerate(lines[1:]):
            match = re.fullmatch(rf"\tTopic: spread\tPartition: {partition}\tLeader: (\d)\tReplicas: (\d,\d,\d)"
                                 r"\tIsr: (\d,\d,\d)", line)
            assert match, line
            replicas = match[2].split(",")
            assert sorted(replicas) == ["1", "2", "3"] and sorted(match[3].split(",")) == ["1", "2", "3"]
            assert match[1] == replicas[0]  # the preferred leader leads a new topic
        assert len({line.split("Replicas: ")[1][0] for line in lines[1:]}) == 3  # leaders spread over the brokers

        preferred = cluster.replicas("spread", 0)[0]
        cluster.brokers[preferred].stop()  # a controlled shutdown moves its leadership away
        cluster.wait_for(lambda: cluster.leader("spread", 0) not in (-1, preferred), what="a new leader")
        under = ("topics", cluster.bootstrap, "--describe", "--under-replicated-partitions")
        lagging = eventually(lambda: tool(*under).stdout.splitlines(), what="under-replicated partitions")
        assert all(line.startswith("\tTopic: spread\tPartition: ") and str(preferred) not in line.split("Isr: ")[1]
                   for line in lagging), lagging
        assert len(lagging) == 3  # the stopped broker holds a replica of each partition
        assert tool("topics", cluster.bootstrap, "--describe", "--unavailable-partitions").stdout == ""
        cluster.restart(preferred)
        cluster.wait_for(lambda: preferred in cluster.isr("spread", 0), what="the restarted broker in the ISR")
        eventually(lambda: tool(*under).stdout == "", what="no under-replicated partition left")
        elect = ("leader-election", cluster.bootstrap, "--election-type", "preferred", "--topic", "spread",
                 "--partition", "0")
        assert tool(*elect).stdout == "Successfully completed leader election (PREFERRED) for partitions spread-0\n"
        cluster.wait_for(lambda: cluster.leader("spread", 0) == preferred, what="the preferred leader back")
        assert tool(*elect).stdout == "Valid replica already elected for partitions spread-0\n"

        tool("topics", cluster.bootstrap, "--create", "--topic", "moving", "--replica-assignment", "1:2")
        produce(cluster.bootstrap, "moving")
        plan = tmp_path / "plan.json"
        plan.write_text(json.dumps({"version": 1, "partitions": [{"topic": "moving", "partition": 0,
                                                                  "replicas": [3, 2]}]}))
        reassign = ("reassign-partitions", cluster.bootstrap, "--reassignment-json-file", str(plan))
        out = tool(*reassign, "--execute").stdout.splitlines()
        assert out[:3] == ["Current partition replica assignment", "",
                           '{"version":1,"partitions":[{"topic":"moving","partition":0,"replicas":[1,2],'
                           '"log_dirs":["any","any"]}]}']
        assert out[-1] == "Successfully started partition reassignments for moving-0"
        eventually(lambda: tool(*reassign, "--verify").stdout.splitlines() == [
            "Status of partition reassignment:", "Reassignment of partition moving-0 is completed."],
            what="the reassignment to finish", timeout=60)
        assert tool("reassign-partitions", cluster.bootstrap, "--list").stdout == "No partition reassignments found.\n"
        described = tool("topics", cluster.bootstrap, "--describe", "--topic", "moving").stdout.splitlines()
        assert "\tReplicas: 3,2\tIsr: " in described[1]
        assert cluster.logs_identical("moving")


def test_console_producer_then_console_consumer(bootstrap: str) -> None:
    topic = new_topic(bootstrap)
    lines = [f"key-{i}:value {i}" for i in range(50)]
    produced = tool("console-producer", bootstrap, "--topic", topic, "--property", "parse.key=true",
                    "--property", "key.separator=:", "--producer-property", "acks=all",
                    stdin="\n".join(lines) + "\n")
    assert produced.stdout == produced.stderr == ""  # piped: no progress bar

    consumed = tool("console-consumer", bootstrap, "--topic", topic, "--from-beginning", "--max-messages", "50",
                    "--property", "print.key=true", "--property", "key.separator=:", "--timeout-ms", "20000")
    assert consumed.stdout.splitlines() == lines
    assert "Processed a total of 50 messages" in consumed.stderr

    values = tool("console-consumer", bootstrap, "--topic", topic, "--from-beginning", "--max-messages", "2",
                  "--timeout-ms", "20000").stdout
    assert values == "value 0\nvalue 1\n"


def test_console_consumer_prints_headers_offsets_and_stops_when_idle(bootstrap: str) -> None:
    topic = new_topic(bootstrap)
    produce(bootstrap, topic, 3)
    out = tool("console-consumer", bootstrap, "--topic", topic, "--from-beginning", "--timeout-ms", "3000",
               "--property", "print.headers=true", "--property", "print.key=true",
               "--property", "print.offset=true", "--property", "key.separator=|").stdout
    assert out.splitlines() == [f"Offset:{i}|h:{i}|key-{i}|value-{i}" for i in range(3)]

    compacted = f"cli-{uuid.uuid4().hex[:8]}"
    tool("topics", bootstrap, "--create", "--topic", compacted, "--config", "cleanup.policy=compact")
    keyless = tool("console-producer", bootstrap, "--topic", compacted, stdin="no key\n", check=False)
    assert keyless.returncode == 1
    assert keyless.stderr.startswith("kbroker console-producer: error: INVALID_RECORD: ")

    missing = tool("console-producer", bootstrap, "--topic", topic, "--property", "parse.key=true",
                   stdin="no separator here\n", check=False)
    assert missing.returncode == 1
    assert "No key separator found on line number 1" in missing.stderr


def test_console_producer_parses_headers_and_null_markers(bootstrap: str) -> None:
    topic = new_topic(bootstrap)
    tool("console-producer", bootstrap, "--topic", topic, "--property", "parse.headers=true",
         "--property", "parse.key=true", "--property", "null.marker=NULL",
         stdin="a:1,b:NULL\tk1\tv1\n\tNULL\tv2\n")
    received = consume(bootstrap, topic, 2)
    assert [(m.headers(), m.key(), m.value()) for m in received] == [
        ([("a", b"1"), ("b", None)], b"k1", b"v1"), (None, None, b"v2")]

    bad = tool("console-producer", bootstrap, "--topic", topic, "--property", "parse.headers=true",
               stdin="nokeysep\tvalue\n", check=False)
    assert bad.returncode == 1
    assert bad.stderr == ("kbroker console-producer: error: No header key separator found in pair 'nokeysep' "
                          "on line number 1\n")


def test_console_consumer_reads_one_partition_from_an_offset(bootstrap: str) -> None:
    topic = new_topic(bootstrap, partitions=2)
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(4):
        producer.produce(topic, f"p1-{i}".encode(), partition=1)
    producer.produce(topic, b"p0", partition=0)
    assert producer.flush(30) == 0
    out = tool("console-consumer", bootstrap, "--topic", topic, "--partition", "1", "--offset", "2",
               "--timeout-ms", "3000", "--property", "print.partition=true", "--property", "print.offset=true").stdout
    assert out == "Partition:1\tOffset:2\tp1-2\nPartition:1\tOffset:3\tp1-3\n"


def test_group_lag_members_and_reset_offsets(bootstrap: str) -> None:
    topic, group = new_topic(bootstrap), f"cli-group-{uuid.uuid4().hex[:8]}"
    produce(bootstrap, topic)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "client.id": "lag-checker",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        consumer.subscribe([topic])
        eventually(lambda: consumer.poll(0.5) is not None, what="a first record", timeout=30)
        consumer.commit(offsets=[TopicPartition(topic, 0, 4)], asynchronous=False)

        [row] = describe_rows(bootstrap, group)
        assert row[:6] == [group, topic, "0", "4", str(RECORDS), str(RECORDS - 4)]
        assert row[6] != "-" and row[8] == "lag-checker"
        members = tool("consumer-groups", bootstrap, "--describe", "--group", group, "--members").stdout.split()
        assert members[:5] == ["GROUP", "CONSUMER-ID", "HOST", "CLIENT-ID", "#PARTITIONS"]
        assert members[5] == group and members[8:] == ["lag-checker", "1"]
        assert group in tool("consumer-groups", bootstrap, "--list").stdout.splitlines()
        assert [group, "Stable"] in [line.split() for line in
                                     tool("consumer-groups", bootstrap, "--list", "--state").stdout.splitlines()]
        state = tool("consumer-groups", bootstrap, "--describe", "--group", group, "--state").stdout
        assert re.search(rf"^{group} +127\.0\.0\.1:\d+ \(0\) +range +Stable +1$", state, re.M), state

        active = tool("consumer-groups", bootstrap, "--reset-offsets", "--group", group, "--topic", topic,
                      "--to-earliest", "--execute", check=False)
        assert active.returncode == 1
        assert f"Assignments can only be reset if the group '{group}' is inactive" in active.stderr
    finally:
        consumer.close()

    [row] = describe_rows(bootstrap, group)
    assert row == [group, topic, "0", "4", str(RECORDS), str(RECORDS - 4), "-", "-", "-"]

    def reset(*how: str) -> list[str]:
        out = tool("consumer-groups", bootstrap, "--reset-offsets", "--group", group, "--topic", topic, *how).stdout
        return out.split()

    assert reset("--to-earliest", "--dry-run") == ["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET", group, topic, "0", "0"]
    assert describe_rows(bootstrap, group)[0][3] == "4"  # a dry run changes nothing
    assert reset("--to-earliest", "--execute")[-1] == "0"
    assert describe_rows(bootstrap, group)[0][3:6] == ["0", str(RECORDS), str(RECORDS)]
    assert reset("--shift-by", "3", "--execute")[-1] == "3"
    assert reset("--to-offset", "1000", "--execute")[-1] == str(RECORDS)  # kept within the log
    assert reset("--to-datetime", "2000-01-01T00:00:00.000", "--execute")[-1] == "0"
    assert reset("--to-latest", "--execute")[-1] == str(RECORDS)
    described = json.loads(tool("consumer-groups", bootstrap, "--describe", "--group", group,
                                "--output", "json").stdout)
    assert described["partitions"][0]["lag"] == 0

    out = tool("consumer-groups", bootstrap, "--delete-offsets", "--group", group, "--topic", topic).stdout
    assert out.splitlines()[0] == f"Request succeed for deleting offsets with topic {topic} group {group}"
    assert out.split()[-3:] == [topic, "0", "Successful"]
    gone = tool("consumer-groups", bootstrap, "--describe", "--group", group, check=False)
    assert gone.returncode == 1 and f"Consumer group '{group}' does not exist." in gone.stderr


def test_delete_a_group_and_dump_its_offsets_records(broker: BrokerProcess, bootstrap: str) -> None:
    topic, group = new_topic(bootstrap), f"cli-group-{uuid.uuid4().hex[:8]}"
    produce(bootstrap, topic, 1)
    tool("console-consumer", bootstrap, "--topic", topic, "--group", group, "--from-beginning",
         "--max-messages", "1", "--timeout-ms", "20000")
    assert describe_rows(bootstrap, group)[0][3] == "1"  # the console consumer committed in its group
    described = json.loads(tool("consumer-groups", bootstrap, "--describe", "--all-groups", "--output", "json").stdout)
    assert {"group": group, "state": "Empty", "partitions": [
        {"group": group, "topic": topic, "partition": 0, "current_offset": 1, "log_end_offset": 1, "lag": 0,
         "consumer_id": None, "host": None, "client_id": None}]} in described
    out = tool("consumer-groups", bootstrap, "--delete", "--group", group).stdout
    assert out == f"Deletion of requested consumer groups ('{group}') was successful.\n"
    assert group not in tool("consumer-groups", bootstrap, "--list").stdout.splitlines()

    segment = broker.log_dir / f"__consumer_offsets-{partition_for(group, 50)}" / f"{0:020d}.log"
    records = [line for line in kbroker("dump-log", "--offsets-decoder", "--files", str(segment)).stdout.splitlines()
               if line.startswith("| ")]
    commit_key = json.dumps({"type": "1", "data": {"group": group, "topic": topic, "partition": 0}},
                            separators=(",", ":"))
    commits = [line.split(" payload: ")[1] for line in records if f" key: {commit_key} " in line]
    assert json.loads(commits[0])["data"]["offset"] == 1 and commits[-1] == "<DELETE>"
    group_key = f' key: {{"type":"2","data":{{"group":"{group}"}}}} payload: '
    states = [line.split(" payload: ")[1] for line in records if group_key in line]
    assert json.loads(states[0])["data"]["protocolType"] == "consumer" and states[-1] == "<DELETE>"


def test_configs_alter_then_describe(bootstrap: str) -> None:
    topic = new_topic(bootstrap)
    entity = ("--entity-type", "topics", "--entity-name", topic)
    out = tool("configs", bootstrap, *entity, "--alter", "--add-config",
               "retention.ms=7200000,cleanup.policy=[compact,delete]").stdout
    assert out == f"Completed updating config for topic {topic}.\n"
    lines = tool("configs", bootstrap, *entity, "--describe").stdout.splitlines()
    assert lines[0] == f"Dynamic configs for topic {topic} are:"
    assert lines[1].startswith("  cleanup.policy=compact,delete sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:")
    assert lines[2].startswith("  retention.ms=7200000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:")
    assert len(lines) == 3

    tool("configs", bootstrap, *entity, "--alter", "--delete-config", "retention.ms")
    described = json.loads(tool("configs", bootstrap, *entity, "--describe", "--output", "json").stdout)
    assert [(c["name"], c["value"]) for c in described] == [("cleanup.policy", "compact,delete")]

    every = tool("configs", bootstrap, "--entity-type", "brokers", "--entity-name", "0", "--describe", "--all")
    assert every.stdout.splitlines()[0] == "All configs for broker 0 are:"
    assert any(line.startswith("  num.partitions=1 ") for line in every.stdout.splitlines())


def test_configs_users_and_clients_quotas_and_scram(bootstrap: str) -> None:
    user = f"cli-user-{uuid.uuid4().hex[:6]}"
    alice = ("--entity-type", "users", "--entity-name", user)
    assert tool("configs", bootstrap, *alice, "--alter", "--add-config",
                "producer_byte_rate=1048576,consumer_byte_rate=2048").stdout == \
        f"Completed updating config for user {user}.\n"
    tool("configs", bootstrap, *alice, "--alter", "--add-config", "SCRAM-SHA-256=[iterations=8192,password=secret]")
    tool("configs", bootstrap, *alice, "--entity-type", "clients", "--entity-name", "app", "--alter",
         "--add-config", "request_percentage=25")
    assert tool("configs", bootstrap, "--entity-type", "clients", "--entity-default", "--alter", "--add-config",
                "consumer_byte_rate=100").stdout == "Completed updating default config for clients in the cluster.\n"

    assert tool("configs", bootstrap, *alice, "--describe").stdout.splitlines() == [
        f"Quota configs for user-principal '{user}' are consumer_byte_rate=2048.0, producer_byte_rate=1048576.0",
        f"SCRAM credential configs for user-principal '{user}' are SCRAM-SHA-256=iterations=8192"]
    both = tool("configs", bootstrap, *alice, "--entity-type", "clients", "--entity-name", "app", "--describe")
    assert both.stdout == f"Quota configs for user-principal '{user}', client-id 'app' are request_percentage=25.0\n"
    assert "Quota configs for the default client-id are consumer_byte_rate=100.0" in \
        tool("configs", bootstrap, "--entity-type", "clients", "--describe").stdout.splitlines()

    tool("configs", bootstrap, *alice, "--alter", "--delete-config", "SCRAM-SHA-256")
    tool("configs", bootstrap, *alice, "--alter", "--delete-config", "producer_byte_rate")
    described = json.loads(tool("configs", bootstrap, *alice, "--describe", "--output", "json").stdout)
    assert described == {"quotas": [{"entity": {"user": user}, "values": {"consumer_byte_rate": 2048.0}}],
                         "scram_credentials": {}}
    missing = tool("configs", bootstrap, *alice, "--alter", "--delete-config", "producer_byte_rate", check=False)
    assert missing.returncode == 1 and "Invalid config(s): producer_byte_rate" in missing.stderr
    mixed = tool("configs", bootstrap, "--entity-type", "clients", "--entity-name", "c", "--alter",
                 "--add-config", "SCRAM-SHA-256=[password=x]", check=False)
    assert mixed.returncode == 1 and "Only quota configs" in mixed.stderr


def test_configs_ips_connection_rate_quotas(bootstrap: str) -> None:
    ip = ("--entity-type", "ips", "--entity-name", "10.20.30.41")
    assert tool("configs", bootstrap, *ip, "--alter", "--add-config", "connection_creation_rate=25").stdout == \
        "Completed updating config for ip 10.20.30.41.\n"
    assert tool("configs", bootstrap, "--entity-type", "ips", "--entity-default", "--alter", "--add-config",
                "connection_creation_rate=1000000").stdout == "Completed updating default config for ips in the cluster.\n"

    assert tool("configs", bootstrap, *ip, "--describe").stdout == \
        "Quota configs for ip '10.20.30.41' are connection_creation_rate=25.0\n"
    every = tool("configs", bootstrap, "--entity-type", "ips", "--describe").stdout.splitlines()
    assert "Quota configs for the default ip are connection_creation_rate=1000000.0" in every

    tool("configs", bootstrap, "--entity-type", "ips", "--entity-default", "--alter", "--delete-config",
         "connection_creation_rate")
    tool("configs", bootstrap, *ip, "--alter", "--delete-config", "connection_creation_rate")
    assert tool("configs", bootstrap, *ip, "--describe").stdout == ""
    wrong = tool("configs", bootstrap, *ip, "--alter", "--add-config", "producer_byte_rate=5", check=False)
    assert wrong.returncode == 1 and "Only connection quota configs can be added for 'ips'" in wrong.stderr
    bad = tool("configs", bootstrap, "--entity-type", "ips", "--entity-name", "no such host.invalid", "--alter",
               "--add-config", "connection_creation_rate=5", check=False)
    assert bad.returncode == 1 and "must be a valid IP or resolvable host" in bad.stderr


def test_leader_election_where_nothing_is_to_elect(bootstrap: str) -> None:
    topic = new_topic(bootstrap, partitions=2)
    out = tool("leader-election", bootstrap, "--election-type", "PREFERRED", "--all-topic-partitions").stdout
    assert f"{topic}-0, {topic}-1" in out and out.startswith("Valid replica already elected for partitions ")
    unknown = tool("leader-election", bootstrap, "--election-type", "preferred", "--topic", "no-such-topic",
                   "--partition", "0", check=False)
    assert unknown.returncode == 1
    assert unknown.stdout.startswith("Error completing leader election (PREFERRED) for partition: no-such-topic-0: "
                                     "UNKNOWN_TOPIC_OR_PART")
    assert unknown.stderr == "kbroker leader-election: error: 1 replica(s) could not be elected\n"


def test_acls_against_a_broker_without_an_authorizer(bootstrap: str) -> None:
    # kbroker has no authorizer yet: Kafka's answer then is SECURITY_DISABLED, and the list is empty.
    assert tool("acls", bootstrap, "--list").stdout == ""
    added = tool("acls", bootstrap, "--add", "--allow-principal", "User:alice", "--operation", "Read",
                 "--topic", "t", check=False)
    assert added.returncode == 1
    assert added.stderr == "kbroker acls: error: SECURITY_DISABLED: No Authorizer is configured.\n"


def test_acls_print_kafka_acl_command_layout(capsys) -> None:
    binding = AclBinding(ResourceType.TOPIC, "t", ResourcePatternType.LITERAL, "User:alice", "*", AclOperation.READ,
                         AclPermissionType.ALLOW)
    print_bindings("Adding ACLs for resource", [binding])
    assert capsys.readouterr().out == (
        "Adding ACLs for resource `ResourcePattern(resourceType=TOPIC, name=t, patternType=LITERAL)`: \n"
        " \t(principal=User:alice, host=*, operation=READ, permissionType=ALLOW) \n\n")


def transactions(bootstrap: str, *argv: str, **kwargs) -> list[dict[str, str]]:
    """`kbroker transactions` rows as {column: cell}, from its tab-separated table."""
    out = tool("transactions", bootstrap, *argv, **kwargs).stdout
    header, *rows = [[cell.strip() for cell in line.split("\t")[:-1]] for line in out.splitlines()]
    return [dict(zip(header, row, strict=True)) for row in rows]


def test_transactions_list_describe_find_hanging_and_abort(broker_factory) -> None:
    """kafka-transactions.sh's commands against a real broker: a confluent-kafka transaction left
    open is listed, described and shown by describe-producers but is not hanging; a transactional
    batch no coordinator knows of (written with KIP-890's verification off, as brokers before it
    let one through) is hanging until `abort --start-offset` writes its ABORT marker."""
    bootstrap = broker_factory(NO_VERIFICATION).bootstrap
    topic = new_topic(bootstrap, partitions=2)
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": "cli-txn", "linger.ms": 0})
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(topic, b"open", partition=0)
    assert producer.flush(30) == 0

    [listed] = [row for row in transactions(bootstrap, "list") if row["TransactionalId"] == "cli-txn"]
    assert listed["TransactionState"] == "Ongoing"
    [described] = transactions(bootstrap, "describe", "--transactional-id", "cli-txn")
    assert (described["TransactionState"], described["TopicPartitions"], described["ProducerId"]) == (
        "Ongoing", f"{topic}-0", listed["ProducerId"])
    assert described["CoordinatorId"] == listed["Coordinator"] and int(described["TransactionDurationMs"]) >= 0
    [open_producer] = transactions(bootstrap, "describe-producers", "--topic", topic, "--partition", "0")
    assert (open_producer["ProducerId"], open_producer["CurrentTransactionStartOffset"]) == (listed["ProducerId"], "0")

    with RawClient(int(bootstrap.rsplit(":", 1)[1])) as client:
        ghost, epoch = init_producer_id(client)  # an idempotent id: no coordinator lists it
        assert produce_txn(client, topic, 1, txn_batch([b"ghost"], ghost, epoch, 0))["error_code"] == 0

    def hanging() -> list[dict[str, str]]:
        return transactions(bootstrap, "find-hanging", "--topic", topic, "--max-transaction-timeout", "0")

    [found] = eventually(hanging, what="the hanging transaction")  # older than 0 minutes: a ms later
    assert (found["Topic"], found["Partition"], found["ProducerId"], found["StartOffset"]) == (
        topic, "1", str(ghost), "0")
    assert transactions(bootstrap, "find-hanging", "--broker-id", listed["Coordinator"],
                        "--max-transaction-timeout", "0") == [found]  # the broker's partitions: the same one

    missing = tool("transactions", bootstrap, "abort", "--topic", topic, "--partition", "1", "--start-offset", "5",
                   check=False)
    assert (missing.returncode, missing.stdout) == (1, "")
    assert missing.stderr == (f"kbroker transactions: error: Could not find any open transactions starting at "
                              f"offset 5 on partition {topic}-1\n")
    assert tool("transactions", bootstrap, "abort", "--topic", topic, "--partition", "1", "--start-offset", "0"
                ).stdout == ""
    [aborted] = transactions(bootstrap, "describe-producers", "--topic", topic, "--partition", "1")
    assert (aborted["ProducerId"], aborted["CurrentTransactionStartOffset"]) == (str(ghost), "None")
    assert hanging() == []
    as_json = json.loads(tool("transactions", bootstrap, "--output", "json", "describe-producers", "--topic", topic,
                              "--partition", "1").stdout)
    assert as_json == [{**aborted, "ProducerId": ghost, "ProducerEpoch": epoch,
                        "LatestCoordinatorEpoch": int(aborted["LatestCoordinatorEpoch"]),
                        "LastSequence": 0, "LastTimestamp": int(aborted["LastTimestamp"])}]

    unknown = tool("transactions", bootstrap, "describe", "--transactional-id", "nobody", check=False)
    assert unknown.returncode == 1 and unknown.stderr.startswith(
        "kbroker transactions: error: Failed to describe transaction state of transactional-id `nobody`: "
        "TRANSACTIONAL_ID_NOT_FOUND")
    unscoped = tool("transactions", bootstrap, "find-hanging", check=False)
    assert unscoped.returncode == 2 and "requires either --topic or --broker-id" in unscoped.stderr
    producer.abort_transaction(30)
    assert [row["TransactionState"] for row in transactions(bootstrap, "list")
            if row["TransactionalId"] == "cli-txn"] == ["CompleteAbort"]


def test_get_offsets_and_delete_records(bootstrap: str, tmp_path: Path) -> None:
    topic = new_topic(bootstrap, partitions=2)
    producer = Producer({"bootstrap.servers": bootstrap})
    for _ in range(5):
        producer.produce(topic, b"v", partition=0)
    producer.produce(topic, b"v", partition=1)
    assert producer.flush(30) == 0
    assert tool("get-offsets", bootstrap, "--topic", topic).stdout == f"{topic}:0:5\n{topic}:1:1\n"

    offsets = tmp_path / "offsets.json"
    offsets.write_text(json.dumps({"partitions": [{"topic": topic, "partition": 0, "offset": 3}], "version": 1}))
    out = tool("delete-records", bootstrap, "--offset-json-file", str(offsets)).stdout
    assert out.splitlines() == ["Executing records delete operation", "Records delete operation completed:",
                                f"partition: {topic}-0\tlow_watermark: 3"]
    assert tool("get-offsets", bootstrap, "--topic", topic, "--time", "-2").stdout == f"{topic}:0:3\n{topic}:1:0\n"
    rows = json.loads(tool("get-offsets", bootstrap, "--topic", topic, "--partitions", "0", "--output", "json").stdout)
    assert rows == [{"topic": topic, "partition": 0, "offset": 5}]


def test_console_producer_shows_progress_on_a_terminal(bootstrap: str, tmp_path: Path) -> None:
    topic = new_topic(bootstrap)
    lines = tmp_path / "lines.txt"
    lines.write_text("".join(f"line {i}\n" for i in range(2000)))
    controller, terminal = pty.openpty()
    try:
        with lines.open("rb") as stdin:
            proc = subprocess.Popen([sys.executable, "-m", "kbroker", "console-producer", "--bootstrap-server",
                                     bootstrap, "--topic", topic], stdin=stdin, stdout=terminal, stderr=terminal)
        os.close(terminal)
        shown = b""
        while chunk := _read_terminal(controller):
            shown += chunk
        assert proc.wait(60) == 0
    finally:
        os.close(controller)
    assert b"producing" in shown  # rich's bar, drawn on the terminal
    assert tool("get-offsets", bootstrap, "--topic", topic).stdout == f"{topic}:0:2000\n"


def _read_terminal(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO: the child closed the terminal
        return b""


def test_dump_log_decodes_segments_offline(broker: BrokerProcess, bootstrap: str) -> None:
    topic = f"cli-{uuid.uuid4().hex[:8]}"
    # An index entry per batch, so the .index and .timeindex have something to show.
    tool("topics", bootstrap, "--create", "--topic", topic, "--config", "index.interval.bytes=1")
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    for i in range(3):
        producer.produce(topic, f"value-{i}".encode(), f"key-{i}".encode(), headers=[("h", b"x")], timestamp=1000 + i)
        producer.flush(30)
    segment = broker.log_dir / f"{topic}-0" / f"{0:020d}"
    out = kbroker("dump-log", "--print-data-log", "--files", f"{segment}.log", f"{segment}.index",
                  f"{segment}.timeindex").stdout.splitlines()

    assert out[:2] == [f"Dumping {segment}.log", "Log starting offset: 0"]
    batches = [line for line in out if line.startswith("baseOffset:")]
    assert len(batches) == 3
    assert re.fullmatch(r"baseOffset: 0 lastOffset: 0 count: 1 .* position: 0 CreateTime: 1000 size: \d+ magic: 2 "
                        r"compresscodec: none crc: \d+ isvalid: true", batches[0]), batches[0]
    records = [line for line in out if line.startswith("| ")]
    assert records == [f"| offset: {i} CreateTime: {1000 + i} keySize: 5 valueSize: 7 sequence: -1 "
                       f"headerKeys: [h] key: key-{i} payload: value-{i}" for i in range(3)]
    index = out[out.index(f"Dumping {segment}.index") + 1:out.index(f"Dumping {segment}.timeindex")]
    positions = {line.split()[1]: line.split(" position: ")[1].split()[0] for line in batches}
    assert index == [f"offset: {o} position: {positions[o]}" for o in ("1", "2")]  # batch 0 is at position 0
    timeindex = out[out.index(f"Dumping {segment}.timeindex") + 1:]
    assert timeindex == ["timestamp: 1001 offset: 1", "timestamp: 1002 offset: 2"]


@pytest.mark.parametrize("argv", [
    ["topics"],
    ["topics", "--bootstrap-server", "B"],
    ["topics", "--bootstrap-server", "B", "--create"],
    ["topics", "--bootstrap-server", "B", "--alter", "--topic", "t"],
    ["topics", "--bootstrap-server", "B", "--list", "--partitions", "x"],
    ["consumer-groups", "--bootstrap-server", "B", "--describe"],
    ["consumer-groups", "--bootstrap-server", "B", "--reset-offsets", "--group", "g", "--topic", "t"],
    ["consumer-groups", "--bootstrap-server", "B", "--reset-offsets", "--group", "g", "--to-earliest"],
    ["consumer-groups", "--bootstrap-server", "B", "--list", "--to-latest", "--to-earliest"],
    ["consumer-groups", "--bootstrap-server", "B", "--reset-offsets", "--group", "g", "--topic", "t",
     "--to-datetime", "yesterday"],
    ["consumer-groups", "--bootstrap-server", "B", "--delete-offsets", "--group", "g", "--topic", "t:x"],
    ["consumer-groups", "--bootstrap-server", "B", "--reset-offsets", "--all-groups", "--topic", "t", "--to-latest"],
    ["configs", "--bootstrap-server", "B", "--entity-type", "users", "--entity-name", "u", "--alter"],
    ["configs", "--bootstrap-server", "B", "--entity-type", "users", "--alter", "--add-config", "producer_byte_rate=1"],
    ["configs", "--bootstrap-server", "B", "--entity-type", "users", "--entity-type", "topics", "--describe"],
    ["configs", "--bootstrap-server", "B", "--entity-type", "topics", "--entity-name", "t", "--alter"],
    ["console-producer", "--bootstrap-server", "B"],
    ["console-consumer", "--bootstrap-server", "B", "--topic", "t", "--max-messages", "many"],
    ["console-consumer", "--bootstrap-server", "B", "--topic", "t", "--offset", "3"],
    ["console-consumer", "--bootstrap-server", "B", "--topic", "t", "--partition", "0", "--offset", "-5"],
    ["get-offsets", "--bootstrap-server", "B", "--time", "yesterday"],
    ["delete-records", "--bootstrap-server", "B"],
    ["dump-log"],
    ["acls", "--bootstrap-server", "B", "--add", "--topic", "t", "--operation", "Read"],
    ["acls", "--bootstrap-server", "B", "--add", "--allow-principal", "User:a", "--operation", "Peek", "--topic", "t"],
    ["acls", "--bootstrap-server", "B", "--remove", "--force"],
    ["reassign-partitions", "--bootstrap-server", "B", "--execute"],
    ["topics", "--bootstrap-server", "B", "--create", "--topic", "t", "--replica-assignment", "1:x"],
    ["leader-election", "--bootstrap-server", "B", "--election-type", "preferred"],
    ["leader-election", "--bootstrap-server", "B", "--election-type", "fair", "--all-topic-partitions"],
    ["leader-election", "--bootstrap-server", "B", "--election-type", "unclean", "--topic", "t"],
    ["transactions", "--bootstrap-server", "B"],
    ["transactions", "list"],
])
def test_a_missing_or_wrong_argument_prints_usage_and_exits_2(argv: list[str]) -> None:
    proc = kbroker(*argv, check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("usage: kbroker ") and f"kbroker {argv[0]}: error: " in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(f"kbroker {argv[0]}: error: ")  # no client noise
    assert proc.stdout == ""


def test_an_unreachable_broker_is_one_error_line_naming_the_cause(tmp_path: Path) -> None:
    settings = tmp_path / "client.properties"
    settings.write_text("default.api.timeout.ms=2000\n")  # a Java client's setting, honoured by the tools
    address = f"127.0.0.1:{free_port()}"
    for argv in (["topics", "--list"], ["configs", "--entity-type", "topics", "--entity-name", "t", "--describe"]):
        proc = kbroker(argv[0], "--bootstrap-server", address, "--command-config", str(settings), *argv[1:],
                       check=False)
        assert proc.returncode == 1 and proc.stdout == ""
        assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(f"kbroker {argv[0]}: error: ")
        assert "Connection refused" in proc.stderr


def test_an_unreadable_command_config_is_one_error_line(bootstrap: str, tmp_path: Path) -> None:
    proc = tool("get-offsets", bootstrap, "--command-config", str(tmp_path / "absent"), check=False)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr == (f"kbroker get-offsets: error: --command-config: Cannot read properties file "
                           f"{tmp_path / 'absent'}: No such file or directory\n")

    # A Java client's file: its sasl.jaas.config becomes librdkafka's sasl.username/sasl.password.
    java = tmp_path / "java-client.properties"
    java.write_text("security.protocol=PLAINTEXT\nsasl.mechanism=PLAIN\nsasl.jaas.config="
                    "org.apache.kafka.common.security.plain.PlainLoginModule required "
                    'username="alice" password="s\\"cret";\n')
    topic = new_topic(bootstrap)
    assert tool("get-offsets", bootstrap, "--topic", topic, "--command-config", str(java)).stdout == f"{topic}:0:0\n"
    assert translate_java_properties({"sasl.jaas.config": java.read_text().split("sasl.jaas.config=")[1]}) == {
        "sasl.username": "alice", "sasl.password": 's"cret'}

    settings = tmp_path / "client.properties"
    settings.write_text("no.such.client.setting=1\n")
    proc = tool("get-offsets", bootstrap, "--command-config", str(settings), check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith("kbroker get-offsets: error: ") and "no.such.client.setting" in proc.stderr
