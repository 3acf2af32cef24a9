"""The Java Admin client (kafka-clients 4.4.0 and 4.0.1) against one kbroker.

- Topics: createTopics (and TopicExistsException, InvalidReplicationFactorException),
  listTopics, describeTopics (4.x asks DescribeTopicPartitions, 75, since kbroker advertises
  it: the broker counts those requests; with partitionSizeLimitPerResponse the client follows
  the cursors page by page), createPartitions, deleteTopics.
- Configs: describeConfigs of a topic and a broker, incrementalAlterConfigs SET and DELETE (the
  4.x Admin has no legacy alterConfigs any more), InvalidRequestException for a value that does not parse (as ZooKeeper-mode Kafka).
- Records and offsets: deleteRecords, listOffsets earliest/latest/max-timestamp/by time and
  earliestLocal/latestTiered/earliestPendingUpload (-1 without tiered storage, as Kafka).
- Consumer groups: list, describe, listConsumerGroupOffsets, alterConsumerGroupOffsets,
  deleteConsumerGroupOffsets, removeMembersFromConsumerGroup, deleteConsumerGroups; their
  errors: GroupIdNotFoundException, GroupNotEmptyException, UnknownMemberIdException (offsets of
  an active group), GroupSubscribedToTopicException.
- Cluster: describeCluster, describeFeatures (none finalized, as a ZooKeeper-mode broker),
  updateFeatures refused for an unsupported feature, describeLogDirs with sizes that grow with
  the data (the broker has two log dirs), describeReplicaLogDirs, alterReplicaLogDirs to the
  current dir, to a dir that is not one of log.dirs (LogDirNotFoundException) and to the other
  log dir, where describeReplicaLogDirs and describeLogDirs then find the replica.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from java_driver import JAVA_CLIENT_VERSIONS, JavaDriver, JavaError, driver_for

from kbroker.testing.metrics_scrape import requests_by_version
from kbroker.testing.processes import free_port
from kbroker.testing.waiting import eventually


@pytest.fixture(scope="module")
def metrics_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def kbroker(module_broker_factory, metrics_port, tmp_path_factory):
    broker = module_broker_factory("num.partitions=1", "offsets.topic.num.partitions=3",
                                   f"metrics.listener=http://127.0.0.1:{metrics_port}")
    broker.stop()  # two log dirs, so that alterReplicaLogDirs can move a replica
    broker.overrides.append(f"log.dirs={broker.log_dir},{tmp_path_factory.mktemp('second-log-dir')}")
    broker.restart()
    return broker


@pytest.fixture(scope="module", params=JAVA_CLIENT_VERSIONS)
def java(request, kbroker, tmp_path_factory) -> Iterator[JavaDriver]:
    yield from driver_for(request, kbroker.bootstrap, tmp_path_factory)


def name(java: JavaDriver, base: str) -> str:
    return f"{base}-{java.version.replace('.', '_')}"


def test_topics(java):
    topic = name(java, "admin-topics")
    java.call("create_topic", name=topic, partitions=2, configs="retention.ms:3600000;cleanup.policy:compact")
    with pytest.raises(JavaError) as exists:
        java.call("create_topic", name=topic, partitions=2)
    assert exists.value.kind == "TopicExistsException"
    with pytest.raises(JavaError) as bad_rf:
        java.call("create_topic", name=name(java, "rf-too-large"), partitions=1, rf=3)
    assert bad_rf.value.kind == "InvalidReplicationFactorException"
    assert topic in java.call("list_topics")
    described = java.call("describe_topics", names=topic)[topic]
    assert not described["internal"]
    assert len(described["topic_id"]) == 22
    assert [(p["partition"], p["leader"], p["replicas"], p["isr"]) for p in described["partitions"]] == \
        [(0, 0, [0], [0]), (1, 0, [0], [0])]
    with pytest.raises(JavaError) as unknown:
        java.call("describe_topics", names=name(java, "no-such-topic"))
    assert unknown.value.kind == "UnknownTopicOrPartitionException"
    java.call("create_partitions", name=topic, count=4)
    assert len(java.call("describe_topics", names=topic)[topic]["partitions"]) == 4
    with pytest.raises(JavaError) as fewer:
        java.call("create_partitions", name=topic, count=2)
    assert fewer.value.kind == "InvalidPartitionsException"
    java.call("delete_topics", names=topic)
    eventually(lambda: topic not in java.call("list_topics"), what="the topic gone from listTopics")


def test_describe_topics_pages_through_describe_topic_partitions(java, metrics_port):
    """Two topics of 3 partitions, two partitions a response: the Admin client follows the
    broker's NextCursor (inside a topic and across topics) and puts the pages back together."""
    topics = [name(java, "admin-pages-a"), name(java, "admin-pages-b")]
    for topic in topics:
        java.call("create_topic", name=topic, partitions=3)
    before = requests_by_version(metrics_port, "DescribeTopicPartitions").get(0, 0)
    described = java.call("describe_topics", names=topics, page_limit=2)
    assert {t: [p["partition"] for p in d["partitions"]] for t, d in described.items()} == {t: [0, 1, 2] for t in topics}
    assert all(p["leader"] == 0 and p["isr"] == [0] for d in described.values() for p in d["partitions"])
    # 6 partitions, 2 a page: 3 requests at least (the client may ask topic by topic)
    assert requests_by_version(metrics_port, "DescribeTopicPartitions").get(0, 0) - before >= 3


def test_configs(java):
    topic = name(java, "admin-configs")
    java.call("create_topic", name=topic)
    configs = java.call("describe_configs", type="topic", name=topic)
    assert configs["cleanup.policy"] == ["delete", "DEFAULT_CONFIG"]
    java.call("incremental_alter_configs", type="topic", name=topic, set="retention.ms:123456;cleanup.policy:compact")
    configs = java.call("describe_configs", type="topic", name=topic)
    assert configs["retention.ms"] == ["123456", "DYNAMIC_TOPIC_CONFIG"]
    assert configs["cleanup.policy"] == ["compact", "DYNAMIC_TOPIC_CONFIG"]
    java.call("incremental_alter_configs", type="topic", name=topic, delete="retention.ms")
    assert java.call("describe_configs", type="topic", name=topic)["retention.ms"][1] == "DEFAULT_CONFIG"
    with pytest.raises(JavaError) as bad:
        java.call("incremental_alter_configs", type="topic", name=topic, set="retention.ms:soon")
    assert bad.value.kind == "InvalidRequestException"  # ZkAdminManager's ConfigException path
    broker = java.call("describe_configs", type="broker", name="0")
    assert broker["num.partitions"][0] == "1"
    assert broker["message.max.bytes"][0] == "1048588"


def test_records_and_offsets(java):
    topic = name(java, "admin-records")
    java.call("create_topic", name=topic)
    java.call("producer", "recs")
    for i in range(10):
        java.call("send", "recs", topic=topic, partition=0, timestamp=1000 * (i + 1), value=f"v{i}")
    java.call("close_producer", "recs")
    tp = f"{topic}:0"
    assert java.call("list_offsets", tps=tp, spec="earliest") == {tp: [0, -1]}
    assert java.call("list_offsets", tps=tp, spec="latest") == {tp: [10, -1]}
    assert java.call("list_offsets", tps=tp, spec="max_timestamp") == {tp: [9, 10000]}
    assert java.call("list_offsets", tps=tp, spec="3500") == {tp: [3, 4000]}
    # no tiered storage: the earliest local offset is the log start, nothing tiered or pending
    assert java.call("list_offsets", tps=tp, spec="earliest_local") == {tp: [0, -1]}
    assert java.call("list_offsets", tps=tp, spec="latest_tiered") == {tp: [-1, -1]}
    if java.version >= "4.2":  # earliestPendingUpload (KIP-1023, ListOffsets v11) came with 4.2
        assert java.call("list_offsets", tps=tp, spec="earliest_pending_upload") == {tp: [-1, -1]}
    assert java.call("delete_records", tp=tp, before=4) == 4
    assert java.call("list_offsets", tps=tp, spec="earliest") == {tp: [4, -1]}
    with pytest.raises(JavaError) as beyond:
        java.call("delete_records", tp=tp, before=50)
    assert beyond.value.kind == "OffsetOutOfRangeException"


def test_consumer_groups(java):
    topic = name(java, "admin-groups")
    group = name(java, "admin-group")
    java.call("create_topic", name=topic, partitions=2)
    java.call("producer", "gp")
    java.call("send", "gp", topic=topic, count=20)
    java.call("close_producer", "gp")
    java.call("consumer", "gm", **{"group.id": group, "group.instance.id": "static-1", "auto.offset.reset": "earliest",
                                   "enable.auto.commit": "false"})
    java.call("subscribe", "gm", topics=topic)
    java.call("poll_group", names="gm", partitions=2)
    java.call("seek_to_end", "gm", tps=[f"{topic}:0", f"{topic}:1"])
    assert java.call("position", "gm", tp=f"{topic}:0") + java.call("position", "gm", tp=f"{topic}:1") == 20
    java.call("commit_sync", "gm")
    assert java.call("list_groups")[group] == "Stable"
    described = java.call("describe_groups", ids=group)[group]
    assert described["state"] == "Stable"
    assert [m["instance_id"] for m in described["members"]] == ["static-1"]
    offsets = java.call("list_group_offsets", id=group)
    assert sum(offsets.values()) == 20
    # a static member is removed by its group.instance.id (KIP-345); the group empties
    java.call("remove_members", id=group, instances="static-1")
    assert java.call("describe_groups", ids=group)[group]["state"] == "Empty"
    java.call("close_consumer", "gm")
    java.call("alter_group_offsets", id=group, tp=f"{topic}:0", offset=1)
    assert java.call("list_group_offsets", id=group)[f"{topic}:0"] == 1
    java.call("delete_group_offsets", id=group, tps=f"{topic}:1")
    assert f"{topic}:1" not in java.call("list_group_offsets", id=group)
    java.call("delete_groups", ids=group)
    assert group not in java.call("list_groups")
    with pytest.raises(JavaError) as missing:
        java.call("delete_groups", ids=group)
    assert missing.value.kind == "GroupIdNotFoundException"


def test_cluster_features_and_log_dirs(java):
    cluster = java.call("describe_cluster")
    assert cluster["nodes"] == [0]
    assert cluster["controller"] == 0
    assert cluster["cluster_id"]
    features = java.call("describe_features")
    assert features["finalized"] == {}  # ZooKeeper mode without metadata.version: none
    with pytest.raises(JavaError) as unsupported:
        java.call("update_features", feature="group.version", level=1)
    assert unsupported.value.kind == "InvalidRequestException"
    assert "not supported" in unsupported.value.message

    topic = name(java, "admin-logdirs")
    java.call("create_topic", name=topic)
    tp = f"{topic}:0"
    before = java.call("describe_log_dirs", brokers=0)["0"]
    assert len(before) == 2 and all(d["error"] == "" for d in before.values())
    [log_dir] = [d for d, held in before.items() if tp in held["replicas"]]
    [other] = [d for d in before if d != log_dir]
    info = before[log_dir]
    assert info["replicas"][tp] == [0, 0, False]
    assert info["total_bytes"] >= info["usable_bytes"] > 0
    java.call("producer", "ld")
    java.call("send", "ld", topic=topic, partition=0, count=50, size=100)
    java.call("close_producer", "ld")
    size, lag, future = java.call("describe_log_dirs", brokers=0)["0"][log_dir]["replicas"][tp]
    assert size > 50 * 100
    assert (lag, future) == (0, False)
    assert java.call("describe_replica_log_dirs", tp=tp, broker=0) == {"current": log_dir, "future": "null"}
    assert java.call("alter_replica_log_dirs", tp=tp, broker=0, dir=log_dir) == "altered"  # already there
    with pytest.raises(JavaError) as not_found:
        java.call("alter_replica_log_dirs", tp=tp, broker=0, dir="/no/such/dir")
    assert not_found.value.kind == "LogDirNotFoundException"
    # the move to the other log dir: the replica is there, with the same size, once it is done
    assert java.call("alter_replica_log_dirs", tp=tp, broker=0, dir=other) == "altered"
    eventually(lambda: java.call("describe_replica_log_dirs", tp=tp, broker=0) == {"current": other, "future": "null"},
               what="the replica moved to the other log dir")
    moved = java.call("describe_log_dirs", brokers=0)["0"]
    assert tp not in moved[log_dir]["replicas"]
    assert moved[other]["replicas"][tp] == [size, 0, False]


def test_consumer_group_errors(java):
    topic = name(java, "admin-group-errors")
    group = name(java, "busy-group")
    java.call("create_topic", name=topic)
    missing = name(java, "no-such-group")
    with pytest.raises(JavaError) as unknown:
        java.call("describe_groups", ids=missing)
    assert unknown.value.kind == "GroupIdNotFoundException"
    assert java.call("list_group_offsets", id=missing) == {}
    java.call("consumer", "busy", **{"group.id": group, "auto.offset.reset": "earliest"})
    java.call("subscribe", "busy", topics=topic)
    java.call("poll_group", names="busy", partitions=1)
    java.call("commit_sync", "busy", tp=f"{topic}:0", offset=0)
    with pytest.raises(JavaError) as not_empty:
        java.call("delete_groups", ids=group)
    assert not_empty.value.kind == "GroupNotEmptyException"
    with pytest.raises(JavaError) as active:
        java.call("alter_group_offsets", id=group, tp=f"{topic}:0", offset=0)
    assert active.value.kind == "UnknownMemberIdException"  # offsets of an active group are its members'
    with pytest.raises(JavaError) as subscribed:
        java.call("delete_group_offsets", id=group, tps=f"{topic}:0")
    assert subscribed.value.kind == "GroupSubscribedToTopicException"
    java.call("close_consumer", "busy")
