"""The Java client (4.4.0 and 4.0.1) against three kbroker processes with a real ZooKeeper.

- describeCluster names the three brokers and ZooKeeper's controller; describeTopics the
  replicas and ISR of a replicated topic; describeLogDirs, asked of every broker, finds each
  replica in its broker's log dir.
- electLeaders (preferred) gives leadership back to the first replica after it returned, then
  answers ElectionNotNeededException.
- Off the controller, ElectLeaders answers as ZooKeeper-mode Kafka's KafkaController does:
  NOT_CONTROLLER per partition under a top-level NONE (the Java client's NotControllerException
  for that partition), nothing for a null partition list.
- alterPartitionReassignments moves a partition to another broker (listPartitionReassignments
  empty once done); cancelling when none is in progress is NoReassignmentInProgressException.
- updateFeatures reaches the controller and is refused as ZooKeeper-mode Kafka refuses it.
- Kafka Streams' word count with exactly_once_v2 and replicated internal topics: its
  transactions span the three brokers (coordinator, markers to other leaders); every word is
  counted once.
- kill -9 of a leader between two sends of an idempotent producer: it finds the new leader,
  and a consumer reads every record once, in order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
from java_driver import JAVA_CLIENT_VERSIONS, JavaDriver, JavaError, driver_for
from test_cluster_replication import CLUSTER_OVERRIDES
from test_java_streams import FIRST, all_counts, send_lines

from kbroker.testing.cluster import KafkaCluster
from kbroker.testing.raw_client import raw_call
from kbroker.testing.waiting import eventually

ELECT_LEADERS, NOT_CONTROLLER = 43, 41

pytestmark = [pytest.mark.timeout(300), pytest.mark.long_running]


@pytest.fixture(scope="module")
def cluster(zookeeper, module_broker_factory):
    overrides = (*CLUSTER_OVERRIDES, "auto.leader.rebalance.enable=false", "offsets.topic.num.partitions=3")
    with KafkaCluster(module_broker_factory, zookeeper, overrides=overrides) as cluster:
        yield cluster


@pytest.fixture(scope="module", params=JAVA_CLIENT_VERSIONS)
def java(request, cluster, tmp_path_factory) -> Iterator[JavaDriver]:
    yield from driver_for(request, cluster.bootstrap, tmp_path_factory)


def name(java: JavaDriver, base: str) -> str:
    return f"{base}-{java.version.replace('.', '_')}"


def fully_replicated(java: JavaDriver, topic: str) -> list[dict] | None:
    """The topic's partitions once the broker the Admin asks knows it (a broker's metadata
    follows the controller's UpdateMetadata, as in Kafka) and every replica is in sync."""
    try:
        partitions = java.call("describe_topics", names=topic)[topic]["partitions"]
    except JavaError as error:
        if error.kind != "UnknownTopicOrPartitionException":
            raise
        return None
    return partitions if all(len(p["isr"]) == 3 for p in partitions) else None


def test_cluster_topics_and_log_dirs(java, cluster):
    described = java.call("describe_cluster")
    assert described["nodes"] == [1, 2, 3]
    assert described["controller"] == cluster.controller_id()
    topic = name(java, "replicated")
    java.call("create_topic", name=topic, partitions=2, rf=3)
    partitions = eventually(lambda: fully_replicated(java, topic), what="the topic known and in sync")
    assert [sorted(p["replicas"]) for p in partitions] == [[1, 2, 3], [1, 2, 3]]
    assert all(p["leader"] == p["replicas"][0] for p in partitions)
    dirs = java.call("describe_log_dirs", brokers=[1, 2, 3])
    for broker in (1, 2, 3):
        [(log_dir, info)] = dirs[str(broker)].items()
        assert log_dir == str(cluster.brokers[broker].log_dir)
        assert {f"{topic}:0", f"{topic}:1"} <= set(info["replicas"])


def test_preferred_leader_election(java, cluster):
    topic = name(java, "elect")
    java.call("create_topic", name=topic, partitions=1, rf=3)
    tp = f"{topic}:0"
    cluster.wait_for(lambda: len(cluster.isr(topic)) == 3, what="every replica in the ISR")
    preferred = cluster.replicas(topic)[0]
    assert cluster.brokers[preferred].stop() == 0  # controlled shutdown hands leadership over
    cluster.wait_for(lambda: cluster.leader(topic) not in (preferred, -1), what="a new leader")
    cluster.restart(preferred)
    cluster.wait_for(lambda: preferred in cluster.isr(topic), what="the preferred replica back in the ISR")
    assert cluster.leader(topic) != preferred
    java.call("admin_reset")  # the controller may have moved with the stop: the Admin must see it
    assert java.call("elect_leaders", tps=tp) == {tp: None}
    assert cluster.leader(topic) == preferred
    assert java.call("elect_leaders", tps=tp) == {tp: "ElectionNotNeededException"}


def test_elect_leaders_off_the_controller(java, cluster):
    topic = name(java, "elect-elsewhere")
    java.call("create_topic", name=topic, partitions=1, rf=3)
    other = next(b for b in (1, 2, 3) if b != cluster.controller_id())
    port = cluster.brokers[other].port
    for version in (0, 1, 2):
        body = {"election_type": 0, "timeout_ms": 5000, "topic_partitions": [{"topic": topic, "partitions": [0]}]}
        answer = raw_call(port, ELECT_LEADERS, version, body)
        assert answer.get("error_code", 0) == 0
        [result] = answer["replica_election_results"]
        assert result["topic"] == topic
        assert [(r["partition_id"], r["error_code"], r["error_message"]) for r in result["partition_result"]] == \
            [(0, NOT_CONTROLLER, None)]
    everything = raw_call(port, ELECT_LEADERS, 2, {"election_type": 0, "timeout_ms": 5000, "topic_partitions": None})
    assert (everything["error_code"], everything["replica_election_results"]) == (0, [])


def test_partition_reassignment(java, cluster):
    topic = name(java, "reassigned")
    java.call("create_topic", name=topic, partitions=1, rf=1)
    tp = f"{topic}:0"
    java.call("producer", "moving", acks="all")
    java.call("send", "moving", topic=topic, count=100)
    java.call("close_producer", "moving")
    [source] = cluster.replicas(topic)
    target = next(b for b in (1, 2, 3) if b != source)
    with pytest.raises(JavaError) as nothing_to_cancel:
        java.call("alter_reassignments", tp=tp)
    assert nothing_to_cancel.value.kind == "NoReassignmentInProgressException"
    java.call("alter_reassignments", tp=tp, replicas=[target])
    cluster.wait_for(lambda: cluster.replicas(topic) == [target], what="the reassignment to complete")
    cluster.wait_for(lambda: java.call("list_reassignments") == {}, what="no reassignment listed")
    # the broker the Admin asks learns the move from the controller's UpdateMetadata
    eventually(lambda: [(p["leader"], p["replicas"]) for p in java.call("describe_topics", names=topic)[topic]["partitions"]]
               == [(target, [target])], what="describeTopics to show the new replica")
    java.call("consumer", "check", **{"auto.offset.reset": "earliest"})
    java.call("assign", "check", tps=tp)
    assert len(java.call("poll", "check", max=100, timeout_ms=20000)) == 100  # the data moved along
    java.call("close_consumer", "check")


def test_update_features_reaches_the_controller(java):
    with pytest.raises(JavaError) as refused:
        java.call("update_features", feature="metadata.version", level=20)
    assert refused.value.kind == "InvalidRequestException"
    assert "not supported" in refused.value.message


def test_idempotent_producer_and_consumer_through_a_leader_kill(java, cluster):
    """kill -9 of the partition's leader between two sends: the Java producer (idempotent,
    acks=all) finds the new leader by itself, and a consumer reads every record once, in order."""
    topic = name(java, "failover")
    java.call("create_topic", name=topic, partitions=1, rf=3, configs="min.insync.replicas:2")
    cluster.wait_for(lambda: len(cluster.isr(topic)) == 3, what="every replica in the ISR")
    java.call("producer", "survivor", acks="all", **{"enable.idempotence": "true", "delivery.timeout.ms": "120000"})
    first = java.call("send", "survivor", topic=topic, partition=0, count=100, prefix="before-")
    leader = cluster.leader(topic)
    cluster.kill(leader)
    try:
        second = java.call("send", "survivor", topic=topic, partition=0, count=100, prefix="after-")
        java.call("close_producer", "survivor")
        assert [offset for _, offset, _ in first + second] == list(range(200))
        assert cluster.leader(topic) not in (leader, -1)
        java.call("consumer", "reader", **{"auto.offset.reset": "earliest"})
        java.call("assign", "reader", tps=f"{topic}:0")
        values = [r["value"] for r in java.call("poll", "reader", max=200, timeout_ms=30000)]
        java.call("close_consumer", "reader")
        assert values == [f"before-{i}" for i in range(100)] + [f"after-{i}" for i in range(100)]
    finally:
        cluster.restart(leader)
        cluster.wait_for(lambda: leader in cluster.isr(topic), what="the killed broker back in the ISR")


def test_streams_exactly_once_across_brokers(java, tmp_path):
    suffix = java.version.replace(".", "_")
    source, sink = f"cluster-lines-{suffix}", f"cluster-counts-{suffix}"
    java.call("create_topic", name=source, partitions=2, rf=3)
    java.call("create_topic", name=sink, partitions=2, rf=3)
    send_lines(java, source, FIRST)
    assert java.call("streams_start", "cwc", app=f"cluster-wordcount-{suffix}", input=source, output=sink,
                     state_dir=tmp_path / "state", guarantee="exactly_once_v2", rf=3) == "RUNNING"
    expected = Counter(word for line in FIRST for word in line.split())
    counts = all_counts(java, sink, expected)
    java.call("streams_stop", "cwc")
    assert all(seen == list(range(1, expected[word] + 1)) for word, seen in counts.items()), counts
    assert set(counts) == set(expected)
