"""Kafka's own command-line tools (4.4.0, from the Maven jars, run by their main classes as the
bin/*.sh scripts run them) against a real kbroker: each tool's output is asserted, and the error
paths a user hits print what they print against Apache Kafka 4.4 itself.

One JVM per invocation cannot be avoided for CLI tools, so the invocations are counted (about
55, a dozen of them the error paths run against both) and start quickly (C1 only, serial GC;
kbroker.testing.apache_kafka). Apache Kafka runs once, for the error-path comparison only.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from kbroker.testing import wire
from kbroker.testing.apache_kafka import apache_kafka_unavailable_reason, run_kafka_tool
from kbroker.testing.cluster import KafkaCluster
from kbroker.testing.processes import BrokerProcess
from kbroker.testing.waiting import eventually

pytestmark = [pytest.mark.skipif(apache_kafka_unavailable_reason() is not None,
                                 reason=apache_kafka_unavailable_reason() or ""),
              pytest.mark.long_running]

DESCRIBE_LOG_DIRS = 35
TIMEOUT_S = 30.0


@pytest.fixture(scope="module")
def broker(module_broker_factory) -> BrokerProcess:
    return module_broker_factory("num.partitions=1")


def tool(name: str, *args: str, input_text: str | None = None, ok: bool = True) -> subprocess.CompletedProcess:
    """Run one of Kafka's tools; with ok=True a non-zero exit fails the test with its output."""
    done = run_kafka_tool(name, *args, input_text=input_text)
    if ok:
        assert done.returncode == 0, f"{name} {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def cells(text: str) -> list[list[str]]:
    """A table the tools print with tab-separated, space-padded columns."""
    return [[cell.strip() for cell in line.rstrip("\t").split("\t")] for line in lines(text)]


def produce(bootstrap: str, topic: str, values: list[bytes], partitions: int = 1, **config: str) -> None:
    """Round robin over `partitions`, so each partition's count is known."""
    producer = Producer({"bootstrap.servers": bootstrap, **config})
    for i, value in enumerate(values):
        producer.produce(topic, value, partition=i % partitions)
    assert producer.flush(TIMEOUT_S) == 0


def create_topic(bootstrap: str, topic: str, partitions: int = 1) -> None:
    from confluent_kafka.admin import NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(TIMEOUT_S)


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> list[int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        answer = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=TIMEOUT_S)
        return [tp.offset for tp in answer]
    finally:
        consumer.close()


# -- kafka-topics -------------------------------------------------------------------------------


def test_topics_create_list_alter_describe_delete(broker):
    bs = ["--bootstrap-server", broker.bootstrap]
    created = tool("kafka-topics", *bs, "--create", "--topic", "tools-topic", "--partitions", "2",
                   "--replication-factor", "1", "--config", "retention.ms=3600000")
    assert created.stdout.strip() == "Created topic tools-topic."
    assert "tools-topic" in lines(tool("kafka-topics", *bs, "--list").stdout)
    assert tool("kafka-topics", *bs, "--alter", "--topic", "tools-topic", "--partitions", "3").returncode == 0

    described = lines(tool("kafka-topics", *bs, "--describe", "--topic", "tools-topic").stdout)
    assert re.fullmatch(r"Topic: tools-topic\tTopicId: [\w-]{22}\tPartitionCount: 3\tReplicationFactor: 1\t"
                        r"Configs: retention.ms=3600000", described[0]), described
    # Kafka 4.4's TopicCommand describes through DescribeTopicPartitions (75) when the broker
    # serves it, and then prints the partitions' (empty) ELR lists too.
    partitions = [line.strip() for line in described[1:]]
    assert partitions == [f"Topic: tools-topic\tPartition: {p}\tLeader: 0\tReplicas: 0\tIsr: 0\tElr: \tLastKnownElr:"
                          for p in range(3)], partitions

    deleted = tool("kafka-topics", *bs, "--delete", "--topic", "tools-topic")
    assert deleted.stdout.strip() == ""  # Kafka's TopicCommand prints nothing on success
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    eventually(lambda: "tools-topic" not in admin.list_topics(timeout=TIMEOUT_S).topics, what="the topic gone")


# -- kafka-console-producer / kafka-console-consumer ------------------------------------------


def test_console_producer_and_consumer_carry_keys_headers_and_commit_for_their_group(broker):
    bs = ["--bootstrap-server", broker.bootstrap]
    records = "".join(f"h{i}:x{i},trace:t{i}\tkey{i}\tvalue {i}\n" for i in range(5))
    tool("kafka-console-producer", *bs, "--topic", "console", "--reader-property", "parse.key=true",
         "--reader-property", "parse.headers=true", input_text=records)

    consumed = tool("kafka-console-consumer", *bs, "--topic", "console", "--from-beginning", "--group", "console-g",
                    "--formatter-property", "print.key=true", "--formatter-property", "print.headers=true",
                    "--formatter-property", "print.offset=true", "--max-messages", "5", "--timeout-ms", "30000")
    assert lines(consumed.stdout) == [f"Offset:{i}\th{i}:x{i},trace:t{i}\tkey{i}\tvalue {i}" for i in range(5)]
    assert "Processed a total of 5 messages" in consumed.stderr
    assert committed(broker.bootstrap, "console-g", "console", 1) == [5]


# -- kafka-consumer-groups -----------------------------------------------------------------------


def test_consumer_groups_list_describe_reset_and_delete(broker):
    bs = ["--bootstrap-server", broker.bootstrap]
    topic, group = "grouped", "tools-group"
    create_topic(broker.bootstrap, topic, partitions=2)
    produce(broker.bootstrap, topic, [b"v%d" % i for i in range(20)], partitions=2)
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False})
    consumer.commit(offsets=[TopicPartition(topic, 0, 1), TopicPartition(topic, 1, 2)], asynchronous=False)
    consumer.close()
    end = [tp.offset for tp in _end_offsets(broker.bootstrap, topic, 2)]
    assert end == [10, 10]

    assert group in lines(tool("kafka-consumer-groups", *bs, "--list").stdout)
    described = tool("kafka-consumer-groups", *bs, "--describe", "--group", group)
    rows = [line.split() for line in lines(described.stdout)]
    assert rows[0] == ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID",
                       "HOST", "CLIENT-ID"]
    assert sorted(rows[1:]) == [[group, topic, str(p), str(c), str(e), str(e - c), "-", "-", "-"]
                                for p, c, e in zip((0, 1), (1, 2), end, strict=True)]
    assert f"Consumer group '{group}' has no active members." in described.stderr

    reset = ["--reset-offsets", "--group", group, "--topic", topic, "--execute"]
    assert _new_offsets(tool("kafka-consumer-groups", *bs, *reset, "--to-latest").stdout) == {0: end[0], 1: end[1]}
    assert committed(broker.bootstrap, group, topic, 2) == end
    assert _new_offsets(tool("kafka-consumer-groups", *bs, *reset, "--to-earliest").stdout) == {0: 0, 1: 0}
    assert _new_offsets(tool("kafka-consumer-groups", *bs, *reset, "--shift-by", "3").stdout) == {0: 3, 1: 3}
    # Every record was written after 2020: the first offset at or after that time is the first one.
    by_time = tool("kafka-consumer-groups", *bs, *reset, "--to-datetime", "2020-01-01T00:00:00.000")
    assert _new_offsets(by_time.stdout) == {0: 0, 1: 0}
    assert committed(broker.bootstrap, group, topic, 2) == [0, 0]

    deleted = tool("kafka-consumer-groups", *bs, "--delete", "--group", group)
    assert deleted.stdout.strip() == f"Deletion of requested consumer groups ('{group}') was successful."
    listed = AdminClient({"bootstrap.servers": broker.bootstrap}).list_consumer_groups().result(TIMEOUT_S)
    assert group not in {g.group_id for g in listed.valid}  # one JVM less than asking the tool again


def _end_offsets(bootstrap: str, topic: str, partitions: int) -> list[TopicPartition]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "end-offsets"})
    try:
        return [TopicPartition(topic, p, consumer.get_watermark_offsets(TopicPartition(topic, p), TIMEOUT_S)[1])
                for p in range(partitions)]
    finally:
        consumer.close()


def _new_offsets(stdout: str) -> dict[int, int]:
    """{partition: NEW-OFFSET} from the reset table (GROUP TOPIC PARTITION NEW-OFFSET)."""
    rows = [line.split() for line in lines(stdout)]
    assert rows[0] == ["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"], stdout
    return {int(row[2]): int(row[3]) for row in rows[1:]}


# -- kafka-configs -----------------------------------------------------------------------------


def test_configs_alter_and_describe_a_topic_and_describe_the_broker(broker):
    bs = ["--bootstrap-server", broker.bootstrap]
    create_topic(broker.bootstrap, "configured")
    topic = ["--entity-type", "topics", "--entity-name", "configured"]
    altered = tool("kafka-configs", *bs, *topic, "--alter", "--add-config", "retention.ms=7200000,max.message.bytes=2000")
    assert altered.stdout.strip() == "Completed updating config for topic configured."
    described = lines(tool("kafka-configs", *bs, *topic, "--describe").stdout)
    assert described[0] == "Dynamic configs for topic configured are:"
    assert sorted(line.strip() for line in described[1:]) == [
        "max.message.bytes=2000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:max.message.bytes=2000, "
        "DEFAULT_CONFIG:message.max.bytes=1048588}",
        "retention.ms=7200000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=7200000}",
    ]

    broker_all = lines(tool("kafka-configs", *bs, "--entity-type", "brokers", "--entity-name", "0", "--describe",
                            "--all").stdout)
    assert broker_all[0] == "All configs for broker 0 are:"
    assert "  log.retention.hours=168 sensitive=false synonyms={DEFAULT_CONFIG:log.retention.hours=168}" in broker_all
    assert any(line.startswith("  num.partitions=1 sensitive=false synonyms={STATIC_BROKER_CONFIG:num.partitions=1")
               for line in broker_all), broker_all


def test_configs_quotas_and_scram_credentials_of_users_and_clients(broker):
    bs = ["--bootstrap-server", broker.bootstrap]
    alice = ["--entity-type", "users", "--entity-name", "alice"]
    altered = tool("kafka-configs", *bs, *alice, "--alter", "--add-config",
                   "producer_byte_rate=1048576,consumer_byte_rate=2048")
    assert altered.stdout.strip() == "Completed updating config for user alice."
    tool("kafka-configs", *bs, *alice, "--alter", "--add-config", "SCRAM-SHA-256=[iterations=8192,password=secret]")
    defaults = tool("kafka-configs", *bs, "--entity-type", "clients", "--entity-default", "--alter",
                    "--add-config", "request_percentage=50")
    assert defaults.stdout.strip() == "Completed updating default config for clients in the cluster."

    quotas, scram = lines(tool("kafka-configs", *bs, *alice, "--describe").stdout)
    prefix = "Quota configs for user-principal 'alice' are "
    assert quotas.startswith(prefix)
    assert sorted(quotas[len(prefix):].split(", ")) == ["consumer_byte_rate=2048.0", "producer_byte_rate=1048576.0"]
    assert scram == "SCRAM credential configs for user-principal 'alice' are SCRAM-SHA-256=iterations=8192"
    clients = lines(tool("kafka-configs", *bs, "--entity-type", "clients", "--describe").stdout)
    assert clients == ["Quota configs for the default client-id are request_percentage=50.0"]

    tool("kafka-configs", *bs, *alice, "--alter", "--delete-config", "producer_byte_rate,consumer_byte_rate")
    tool("kafka-configs", *bs, *alice, "--alter", "--delete-config", "SCRAM-SHA-256")
    assert lines(tool("kafka-configs", *bs, *alice, "--describe").stdout) == []


def test_configs_connection_rate_quotas_of_ips(broker):
    bs = ["--bootstrap-server", broker.bootstrap]
    ip = ["--entity-type", "ips", "--entity-name", "10.20.30.40"]
    altered = tool("kafka-configs", *bs, *ip, "--alter", "--add-config", "connection_creation_rate=25")
    assert altered.stdout.strip() == "Completed updating config for ip 10.20.30.40."

    assert lines(tool("kafka-configs", *bs, *ip, "--describe").stdout) == [
        "Quota configs for ip '10.20.30.40' are connection_creation_rate=25.0"]

    tool("kafka-configs", *bs, *ip, "--alter", "--delete-config", "connection_creation_rate")
    assert lines(tool("kafka-configs", *bs, *ip, "--describe").stdout) == []


# -- kafka-get-offsets, kafka-delete-records ---------------------------------------------------


def test_get_offsets_and_delete_records(broker, tmp_path):
    bs = ["--bootstrap-server", broker.bootstrap]
    produce(broker.bootstrap, "trimmed", [b"r%d" % i for i in range(10)])
    assert lines(tool("kafka-get-offsets", *bs, "--topic", "trimmed").stdout) == ["trimmed:0:10"]

    plan = tmp_path / "delete.json"
    plan.write_text(json.dumps({"partitions": [{"topic": "trimmed", "partition": 0, "offset": 4}], "version": 1}))
    deleted = tool("kafka-delete-records", *bs, "--offset-json-file", str(plan))
    assert lines(deleted.stdout) == ["Executing records delete operation", "Records delete operation completed:",
                                     "partition: trimmed-0\tlow_watermark: 4"]
    assert lines(tool("kafka-get-offsets", *bs, "--topic", "trimmed", "--time", "-2").stdout) == ["trimmed:0:4"]


# -- kafka-producer-perf-test, kafka-consumer-perf-test ----------------------------------------


def test_producer_and_consumer_perf_tests(broker):
    produced = tool("kafka-producer-perf-test", "--topic", "perf", "--num-records", "3000", "--record-size", "100",
                    "--throughput", "-1", "--bootstrap-server", broker.bootstrap, "--command-property", "acks=all")
    assert re.search(r"^3000 records sent, [\d.]+ records/sec", produced.stdout, re.M), produced.stdout
    consumed = tool("kafka-consumer-perf-test", "--bootstrap-server", broker.bootstrap, "--topic", "perf",
                    "--num-records", "3000", "--timeout", "30000")
    header, row = lines(consumed.stdout)[-2:]
    fields = dict(zip([h.strip() for h in header.split(",")], [v.strip() for v in row.split(",")], strict=True))
    assert fields["data.consumed.in.nMsg"] == "3000"
    assert float(fields["data.consumed.in.MB"]) == pytest.approx(3000 * 100 / 1024 / 1024, abs=0.001)


# -- kafka-transactions ------------------------------------------------------------------------


def test_transactions_list_and_describe(broker):
    producer = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "tools-txn"})
    producer.init_transactions(TIMEOUT_S)
    producer.begin_transaction()
    producer.produce("txn-topic", b"in a transaction")
    producer.commit_transaction(TIMEOUT_S)

    listed = cells(tool("kafka-transactions", "--bootstrap-server", broker.bootstrap, "list").stdout)
    assert listed[0][:4] == ["TransactionalId", "Coordinator", "ProducerId", "TransactionState"]
    [row] = [row for row in listed[1:] if row[0] == "tools-txn"]
    assert row[1] == "0" and row[3] == "CompleteCommit"

    header, values = cells(tool("kafka-transactions", "--bootstrap-server", broker.bootstrap, "describe",
                                "--transactional-id", "tools-txn").stdout)
    fields = dict(zip(header, values, strict=False))
    assert fields["TransactionalId"] == "tools-txn" and fields["TransactionState"] == "CompleteCommit"
    assert fields["ProducerId"] == row[2] and fields["CoordinatorId"] == "0"


# -- kafka-log-dirs ----------------------------------------------------------------------------


def test_log_dirs_describes_the_partitions_of_a_topic(broker):
    versions = wire.parse_api_versions(wire.roundtrip(broker.port, wire.api_versions_request(1)), 0)
    if DESCRIBE_LOG_DIRS not in versions.api_keys:
        pytest.skip("DescribeLogDirs (35) is not served on this branch yet (the javaclients branch adds it)")
    produce(broker.bootstrap, "dirs", [b"x" * 100])
    described = lines(tool("kafka-log-dirs", "--bootstrap-server", broker.bootstrap, "--describe",
                           "--topic-list", "dirs").stdout)
    assert described[:2] == ["Querying brokers for log directories information",
                             "Received log directory information from brokers 0"]
    answer = json.loads(described[2])
    [log_dir] = answer["brokers"][0]["logDirs"]
    assert log_dir["logDir"] == str(broker.log_dir) and log_dir["error"] is None
    [partition] = log_dir["partitions"]
    assert partition["partition"] == "dirs-0" and partition["size"] > 100 and partition["offsetLag"] == 0


# -- kafka-dump-log on kbroker's files -----------------------------------------------------------


def test_dump_log_reads_kbrokers_segments_and_indexes(broker):
    produce(broker.bootstrap, "dumped", [b"d%04d" % i * 100 for i in range(2000)], **{"batch.size": "20000"})
    directory = Path(broker.log_dir) / "dumped-0"
    files = [str(directory / f"00000000000000000000.{ext}") for ext in ("log", "index", "timeindex")]
    dumped = tool("kafka-dump-log", "--files", ",".join(files), "--print-data-log")
    assert not re.search(r"mismatch|corrupt|isvalid: false|Exception", dumped.stdout + dumped.stderr, re.I), dumped.stdout[-2000:]
    records = re.findall(r"^\| offset: (\d+) .* payload: (\S+)$", dumped.stdout, re.M)
    assert [(int(o), p) for o, p in records] == [(i, f"d{i:04d}" * 100) for i in range(2000)]
    assert len(re.findall(r"^offset: \d+ position: \d+$", dumped.stdout, re.M)) > 1  # the .index
    assert len(re.findall(r"^timestamp: \d+ offset: \d+$", dumped.stdout, re.M)) > 1  # the .timeindex


def test_rolled_segments_indexes_pass_kafkas_sanity_check(broker):
    """The check Kafka runs at start-up on the indexes of segments that are no longer active (an
    active segment's preallocated .timeindex fails it on Kafka's own brokers too): a rolled
    segment's indexes must have been trimmed and ordered as Kafka's are."""
    from confluent_kafka.admin import NewTopic

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic("rolled", 1, 1, config={"segment.bytes": "100000"})])["rolled"].result(TIMEOUT_S)
    produce(broker.bootstrap, "rolled", [b"r%04d" % i * 50 for i in range(2000)], **{"batch.size": "10000"})
    segments = sorted((Path(broker.log_dir) / "rolled-0").glob("*.log"))
    assert len(segments) > 2, segments
    first = segments[0].with_suffix("")
    files = [f"{first}.index", f"{first}.timeindex"]
    sane = tool("kafka-dump-log", "--index-sanity-check", "--files", ",".join(files))
    assert lines(sane.stdout) == [line for path in files for line in (f"Dumping {path}", f"{path} passed sanity check.")]


def _partition_files(log_dir: Path, topic: str) -> list[str]:
    """Every non-empty first segment of `topic`'s partitions in kbroker's data dir."""
    segments = sorted(log_dir.glob(f"{topic}-*/00000000000000000000.log"))
    return [str(path) for path in segments if path.stat().st_size > 0]


def test_dump_log_decodes_consumer_offsets_and_transaction_state(broker):
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "dump-group", "enable.auto.commit": False})
    produce(broker.bootstrap, "dump-offsets", [b"x"])
    consumer.commit(offsets=[TopicPartition("dump-offsets", 0, 1)], asynchronous=False)
    consumer.close()
    producer = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "dump-txn"})
    producer.init_transactions(TIMEOUT_S)
    producer.begin_transaction()
    producer.produce("dump-offsets", b"y")
    producer.commit_transaction(TIMEOUT_S)

    log_dir = Path(broker.log_dir)
    offsets = tool("kafka-dump-log", "--offsets-decoder", "--files", ",".join(_partition_files(log_dir, "__consumer_offsets")))
    assert "Exception" not in offsets.stdout + offsets.stderr, offsets.stderr[-2000:]
    assert re.search(r'key: \{"type":"1","data":\{"group":"dump-group","topic":"dump-offsets","partition":0\}\} '
                     r'payload: \{"version":"\d+","data":\{"offset":1,', offsets.stdout), offsets.stdout[-3000:]

    states = tool("kafka-dump-log", "--transaction-log-decoder", "--files",
                  ",".join(_partition_files(log_dir, "__transaction_state")))
    assert "Exception" not in states.stdout + states.stderr, states.stderr[-2000:]
    assert re.search(r'key: \{"type":"0","data":\{"transactionalId":"dump-txn"\}\} payload: \{"version":"\d+",'
                     r'"data":\{"producerId":\d+,.*"transactionStatus":"CompleteCommit"', states.stdout), states.stdout[-3000:]


# -- kafka-reassign-partitions, kafka-leader-election (a cluster) --------------------------------


@pytest.fixture(scope="module")
def broker3_log_dirs(tmp_path_factory) -> list[str]:
    """Broker 3 of the cluster has two log dirs, so replicas can move between them."""
    return [str(tmp_path_factory.mktemp("broker3-first")), str(tmp_path_factory.mktemp("broker3-second"))]


@pytest.fixture(scope="module")
def cluster(zookeeper, module_broker_factory, broker3_log_dirs):
    with KafkaCluster(module_broker_factory, zookeeper, overrides=("auto.leader.rebalance.enable=false",),
                      broker_overrides={3: (f"log.dirs={','.join(broker3_log_dirs)}",)}) as cluster:
        yield cluster


def test_leader_election_puts_the_preferred_replica_back(cluster):
    bs = ["--bootstrap-server", cluster.bootstrap]
    tool("kafka-topics", *bs, "--create", "--topic", "elected", "--replica-assignment", "1:2")
    cluster.wait_for(lambda: cluster.leader("elected") == 1 and sorted(cluster.isr("elected")) == [1, 2],
                     what="broker 1 to lead with both in the ISR")
    assert cluster.brokers[1].stop() == 0  # controlled shutdown hands leadership to broker 2
    cluster.wait_for(lambda: cluster.leader("elected") == 2, what="broker 2 to lead")
    cluster.restart(1)
    cluster.wait_for(lambda: 1 in cluster.isr("elected"), what="broker 1 back in the ISR")

    elected = tool("kafka-leader-election", *bs, "--election-type", "preferred", "--topic", "elected",
                   "--partition", "0")
    assert elected.stdout.strip() == "Successfully completed leader election (PREFERRED) for partitions elected-0"
    assert cluster.leader("elected") == 1
    again = tool("kafka-leader-election", *bs, "--election-type", "preferred", "--topic", "elected",
                 "--partition", "0")
    assert again.stdout.strip() == "Valid replica already elected for partitions elected-0"


def test_reassign_partitions_executes_and_verifies(cluster, tmp_path):
    versions = wire.parse_api_versions(wire.roundtrip(cluster.brokers[1].port, wire.api_versions_request(1)), 0)
    if DESCRIBE_LOG_DIRS not in versions.api_keys:  # the tool asks where each replica lives first
        pytest.skip("kafka-reassign-partitions needs DescribeLogDirs (35), which the javaclients branch adds")
    bs = ["--bootstrap-server", cluster.bootstrap]
    tool("kafka-topics", *bs, "--create", "--topic", "moved", "--replica-assignment", "1:2")
    cluster.wait_for(lambda: cluster.leader("moved") == 1, what="broker 1 to lead")
    plan = tmp_path / "reassign.json"
    plan.write_text(json.dumps({"version": 1, "partitions": [{"topic": "moved", "partition": 0, "replicas": [3, 1]}]}))
    started = tool("kafka-reassign-partitions", *bs, "--reassignment-json-file", str(plan), "--execute")
    assert "Successfully started partition reassignment for moved-0" in started.stdout
    cluster.wait_for(lambda: cluster.replicas("moved") == [3, 1], what="the reassignment to complete")
    verified = tool("kafka-reassign-partitions", *bs, "--reassignment-json-file", str(plan), "--verify")
    assert "Reassignment of partition moved-0 is completed." in verified.stdout
    assert cluster.leader("moved") == 1  # the leader stays while it is among the new replicas


def test_reassign_partitions_with_log_dirs_and_log_dirs_describe(cluster, broker3_log_dirs, tmp_path):
    """A plan with `log_dirs` puts the new replica in the dir named (AlterReplicaLogDirs before
    the replica exists: kbroker remembers the dir, as Kafka's preferred log dir), then moves it
    to the other dir of the same broker (a future log copied and swapped); --verify reports
    both the partition's reassignment and the replica's log dir move, and kafka-log-dirs finds
    the replica in its new dir with the same size."""
    first, second = broker3_log_dirs
    bs = ["--bootstrap-server", cluster.bootstrap]
    tool("kafka-topics", *bs, "--create", "--topic", "dir-moved", "--replica-assignment", "1:2")
    cluster.wait_for(lambda: cluster.leader("dir-moved") == 1, what="broker 1 to lead")
    produce(cluster.bootstrap, "dir-moved", [b"m%04d" % i * 20 for i in range(500)])

    def reassign(target: str, action: str) -> str:
        plan = tmp_path / f"to-{Path(target).name}.json"
        plan.write_text(json.dumps({"version": 1, "partitions": [
            {"topic": "dir-moved", "partition": 0, "replicas": [3, 1], "log_dirs": [target, "any"]}]}))
        return tool("kafka-reassign-partitions", *bs, "--reassignment-json-file", str(plan), action).stdout

    started = reassign(second, "--execute")
    assert "Successfully started partition reassignment for dir-moved-0" in started
    assert f"Successfully started moving log directory to {second} for replica dir-moved-0 with broker 3" in started
    cluster.wait_for(lambda: cluster.replicas("dir-moved") == [3, 1] and 3 in cluster.isr("dir-moved"),
                     what="broker 3 to join the ISR")
    verified = reassign(second, "--verify")
    assert "Reassignment of partition dir-moved-0 is completed." in verified
    assert "Reassignment of replica dir-moved-0-3 completed successfully." in verified

    def placed() -> dict[str, tuple[int, int, bool]]:
        out = lines(tool("kafka-log-dirs", *bs, "--describe", "--broker-list", "3", "--topic-list", "dir-moved").stdout)
        assert out[1] == "Received log directory information from brokers 3"
        [broker] = json.loads(out[2])["brokers"]
        return {d["logDir"]: (p["size"], p["offsetLag"], p["isFuture"])
                for d in broker["logDirs"] for p in d["partitions"] if p["partition"] == "dir-moved-0"}

    before = placed()
    assert list(before) == [second] and before[second][0] > 500 * 100 and before[second][1:] == (0, False)
    moving = reassign(first, "--execute")  # same replicas: only the log dir moves
    assert f"Successfully started moving log directory to {first} for replica dir-moved-0 with broker 3" in moving
    cluster.wait_for(lambda: "completed successfully" in reassign(first, "--verify"), what="the log dir move")
    assert placed() == {first: before[second]}


# -- error paths: the same message as against Apache Kafka -----------------------------------------


def test_topics_describe_prints_the_partitions_as_against_apache_kafka(broker, apache_kafka):
    """Both brokers serve DescribeTopicPartitions: the partition lines (leader, replicas, ISR,
    ELR, last known ELR) are the same, the node ids masked."""
    outputs = []
    for target in (broker.bootstrap, apache_kafka.bootstrap):
        bs = ["--bootstrap-server", target]
        tool("kafka-topics", *bs, "--create", "--topic", "tools-describe", "--partitions", "2",
             "--replication-factor", "1")
        described = lines(tool("kafka-topics", *bs, "--describe", "--topic", "tools-describe").stdout)
        outputs.append([re.sub(r"\b(Leader|Replicas|Isr): \d+", r"\1: <node>", line.strip()) for line in described[1:]])
    assert outputs[0] == outputs[1]
    assert len(outputs[0]) == 2


def _message(done: subprocess.CompletedProcess) -> str:
    """The first line a user reads, with the address of the broker masked."""
    first = lines(done.stdout)[0] if lines(done.stdout) else lines(done.stderr)[0]
    return re.sub(r"127\.0\.0\.1:\d+", "<broker>", first)


@pytest.mark.parametrize("argv", [
    ("kafka-topics", "--describe", "--topic", "no-such-topic"),
    ("kafka-consumer-groups", "--describe", "--group", "no-such-group"),
    ("kafka-configs", "--entity-type", "topics", "--entity-name", "no-such-topic", "--describe"),
    ("kafka-transactions", "describe", "--transactional-id", "no-such-id"),
    # No authorizer on either side: kafka-acls says so (SECURITY_DISABLED) the same way.
    ("kafka-acls", "--list"),
], ids=lambda argv: " ".join(argv[:3]))
def test_error_paths_print_what_apache_kafka_prints(broker, apache_kafka, argv):
    name, *args = argv
    ours = tool(name, "--bootstrap-server", broker.bootstrap, *args, ok=False)
    theirs = tool(name, "--bootstrap-server", apache_kafka.bootstrap, *args, ok=False)
    assert (ours.returncode, _message(ours)) == (theirs.returncode, _message(theirs))


@pytest.mark.parametrize(("setting", "reason"), [
    ("retention.ms=abc", "Invalid value abc for configuration retention.ms: Not a number of type LONG"),
    ("retention.ms=-5", "Invalid value -5 for configuration retention.ms: Value must be at least -1"),
    ("cleanup.policy=forever",
     "Invalid value forever for configuration cleanup.policy: String must be one of: compact, delete"),
], ids=["not-a-number", "below-range", "not-in-list"])
def test_a_bad_config_value_prints_kafkas_reason(broker, apache_kafka, setting, reason):
    """The reason is ConfigDef's own. Allowed to differ: the wrapping. A ZooKeeper-mode broker
    (kbroker, as Kafka 3.9's ZkAdminManager) answers INVALID_REQUEST "Invalid config value for
    resource ...: <reason>", a KRaft controller INVALID_CONFIG "<reason>"."""
    outputs = []
    for target in (broker.bootstrap, apache_kafka.bootstrap):
        if "bad-config" not in AdminClient({"bootstrap.servers": target}).list_topics(timeout=TIMEOUT_S).topics:
            create_topic(target, "bad-config")
        done = tool("kafka-configs", "--bootstrap-server", target, "--entity-type", "topics", "--entity-name",
                    "bad-config", "--alter", "--add-config", setting, ok=False)
        assert done.returncode == 1
        outputs.append(done.stderr)
    ours, theirs = outputs
    assert f"Caused by: org.apache.kafka.common.errors.InvalidConfigurationException: {reason}" in theirs, theirs
    assert ("Caused by: org.apache.kafka.common.errors.InvalidRequestException: Invalid config value for resource "
            f"ConfigResource(type=TOPIC, name='bad-config'): {reason}") in ours, ours
