"""DescribeLogDirs (35), AlterReplicaLogDirs (34) and UpdateFeatures (57) over raw sockets against
a kbroker with two log dirs, and kafka-python's describe_log_dirs, alter_replica_log_dirs,
describe_features, update_features, describe_metadata_quorum and describe_topic_partitions.

- ApiVersions advertises 34 v1-2, 35 v1-5, 57 v0-2 and DescribeTopicPartitions (75) v0 (served as
  a KRaft broker serves it, for Kafka 4.x's Admin and tools), but not DescribeQuorum (55): a
  ZooKeeper-mode Kafka has no quorum to describe.
- DescribeLogDirs lists both dirs (absolute paths) with their volume sizes; each partition in
  the dir holding it, with its size growing with the data and an offset lag of 0; a topics
  filter keeps the asked partitions only; v1 has no volume sizes; a dir taken offline answers
  KAFKA_STORAGE_ERROR alone (in-process, through the LogDirFailureChannel).
- AlterReplicaLogDirs: the current dir NONE; the other dir NONE, and the replica moves there
  with its records (read back by Fetch) and takes produce after the move; a path not in
  log.dirs LOG_DIR_NOT_FOUND, a partition not hosted REPLICA_NOT_AVAILABLE. (The move itself
  is tested in-process in tests/test_replica_alter_log_dirs.py.) A DescribeLogDirs pipelined
  behind it shows the future replica in the destination while the move is in flight; a
  broker stopped mid-move (its `-future` dir) resumes the move at its next start; an
  idempotent producer's records acknowledged during a move are all there after it.
- UpdateFeatures: each of Kafka's per-feature refusals with its message in v0 and v1, the first
  one as the top-level error in v2, an empty request INVALID_REQUEST.
"""

from __future__ import annotations

import os

import pytest

from kbroker.testing.raw_client import (
    NONE,
    RawClient,
    advertised_api_keys,
    create_topic,
    produce,
    read_partition,
)
from kbroker.testing.records import build_batch
from kbroker.testing.waiting import eventually

ALTER_REPLICA_LOG_DIRS, DESCRIBE_LOG_DIRS, DESCRIBE_QUORUM, UPDATE_FEATURES = 34, 35, 55, 57
DESCRIBE_TOPIC_PARTITIONS = 75
REPLICA_NOT_AVAILABLE, INVALID_REQUEST, KAFKA_STORAGE_ERROR, LOG_DIR_NOT_FOUND = 9, 42, 56, 57
NOT_SUPPORTED = "Could not apply finalized feature update because the provided feature is not supported."


@pytest.fixture(scope="module")
def kbroker(module_broker_factory, tmp_path_factory):
    second = tmp_path_factory.mktemp("second-log-dir")
    broker = module_broker_factory()
    broker.stop()
    broker.overrides.append(f"log.dirs={broker.log_dir},{second}")
    broker.restart()
    return broker


@pytest.fixture(scope="module")
def log_dirs(kbroker) -> list[str]:
    return [str(kbroker.log_dir), kbroker.overrides[-1].split(",")[1]]


def describe(port: int, topics: list[dict] | None = None, version: int = 5) -> list[dict]:
    with RawClient(port) as client:
        answer = client.call(DESCRIBE_LOG_DIRS, version, {"topics": topics})
    assert answer["error_code"] == NONE
    return answer["results"]


def partitions_by_dir(results: list[dict]) -> dict[str, dict[tuple[str, int], tuple[int, int, bool]]]:
    return {r["log_dir"]: {(t["name"], p["partition_index"]): (p["partition_size"], p["offset_lag"], p["is_future_key"])
                           for t in r["topics"] for p in t["partitions"]} for r in results}


def test_advertised_versions(kbroker):
    advertised = advertised_api_keys(kbroker.port)
    assert advertised[ALTER_REPLICA_LOG_DIRS] == (1, 2)
    assert advertised[DESCRIBE_LOG_DIRS] == (1, 5)
    assert advertised[UPDATE_FEATURES] == (0, 2)
    assert DESCRIBE_QUORUM not in advertised
    assert advertised[DESCRIBE_TOPIC_PARTITIONS] == (0, 0)


def test_describe_log_dirs(kbroker, log_dirs):
    create_topic(kbroker.port, "logdirs-a", partitions=4)
    create_topic(kbroker.port, "logdirs-b", partitions=1)
    results = describe(kbroker.port)
    assert sorted(r["log_dir"] for r in results) == sorted(log_dirs)
    assert all(r["error_code"] == NONE and r["total_bytes"] >= r["usable_bytes"] > 0 and not r["is_cordoned"]
               for r in results)
    by_dir = partitions_by_dir(results)
    placed = [key for held in by_dir.values() for key in held if key[0].startswith("logdirs-")]
    assert sorted(placed) == [("logdirs-a", p) for p in range(4)] + [("logdirs-b", 0)]
    assert all(held[("logdirs-a", 0)] == (0, 0, False) for held in by_dir.values() if ("logdirs-a", 0) in held)
    assert all(len([k for k in held if k[0] == "logdirs-a"]) > 0 for held in by_dir.values())  # spread over both

    with RawClient(kbroker.port) as client:
        assert produce(client, "logdirs-a", 0, build_batch([b"x" * 1000] * 20))["error_code"] == NONE
    after = partitions_by_dir(describe(kbroker.port))
    [(size, lag, future)] = [held[("logdirs-a", 0)] for held in after.values() if ("logdirs-a", 0) in held]
    assert size > 20_000 and (lag, future) == (0, False)

    filtered = describe(kbroker.port, [{"topic": "logdirs-a", "partitions": [1]}])
    assert sorted(key for held in partitions_by_dir(filtered).values() for key in held) == [("logdirs-a", 1)]
    v1 = describe(kbroker.port, [{"topic": "logdirs-b", "partitions": [0]}], version=1)
    assert [r["total_bytes"] for r in v1] == [-1, -1]  # not in v1: the schema default


def test_alter_replica_log_dirs(kbroker, log_dirs):
    create_topic(kbroker.port, "alterdirs", partitions=1)
    [current] = [d for d, held in partitions_by_dir(describe(kbroker.port)).items() if ("alterdirs", 0) in held]
    [other] = [d for d in log_dirs if d != current]

    def alter(path: str, topic: str = "alterdirs", partition: int = 0, version: int = 2) -> int:
        body = {"dirs": [{"path": path, "topics": [{"name": topic, "partitions": [partition]}]}]}
        with RawClient(kbroker.port) as client:
            [result] = client.call(ALTER_REPLICA_LOG_DIRS, version, body)["results"]
        assert result["topic_name"] == topic
        [answer] = result["partitions"]
        return answer["error_code"]

    with RawClient(kbroker.port) as client:
        assert produce(client, "alterdirs", 0, build_batch([b"before-%d" % i for i in range(50)]))["error_code"] == NONE
    assert alter(current) == NONE
    assert alter(current, version=1) == NONE
    assert alter(other) == NONE
    eventually(lambda: ("alterdirs", 0) in partitions_by_dir(describe(kbroker.port))[other], what="the move")
    assert ("alterdirs", 0) not in partitions_by_dir(describe(kbroker.port))[current]
    with RawClient(kbroker.port) as client:
        assert produce(client, "alterdirs", 0, build_batch([b"after"]))["error_code"] == NONE
    high_watermark, records = read_partition(kbroker.port, "alterdirs", 0)
    assert high_watermark == 51
    assert [value for _offset, _key, value, _ts in records] == [b"before-%d" % i for i in range(50)] + [b"after"]
    assert alter(other) == NONE  # where it is now: nothing to do
    assert alter("/no/such/dir") == LOG_DIR_NOT_FOUND
    assert alter(current, "alterdirs", 7) == REPLICA_NOT_AVAILABLE
    assert alter(current, "no-such-topic") == REPLICA_NOT_AVAILABLE


def test_describe_log_dirs_shows_the_future_replica_of_a_move_in_flight(kbroker, log_dirs):
    """12 MiB take a dozen 1 MiB steps to move, and the steps yield to requests: a
    DescribeLogDirs pipelined behind the AlterReplicaLogDirs sees the future replica in the
    destination (IsFutureKey, part of the size, a lag), and the replica once it has moved."""
    create_topic(kbroker.port, "inflight", partitions=1)
    [current] = [d for d, held in partitions_by_dir(describe(kbroker.port)).items() if ("inflight", 0) in held]
    [other] = [d for d in log_dirs if d != current]
    with RawClient(kbroker.port) as client:
        for i in range(12):
            batch = build_batch([bytes([i]) * 10_000] * 100)
            assert produce(client, "inflight", 0, batch)["error_code"] == NONE
    size = partitions_by_dir(describe(kbroker.port))[current][("inflight", 0)][0]
    alter_body = {"dirs": [{"path": other, "topics": [{"name": "inflight", "partitions": [0]}]}]}
    with RawClient(kbroker.port) as client:
        client.send(ALTER_REPLICA_LOG_DIRS, 2, alter_body)
        client.send(DESCRIBE_LOG_DIRS, 5, {"topics": [{"topic": "inflight", "partitions": [0]}]})
        _, altered = client.receive(ALTER_REPLICA_LOG_DIRS, 2)
        _, described = client.receive(DESCRIBE_LOG_DIRS, 5)
    assert altered["results"][0]["partitions"][0]["error_code"] == NONE
    in_flight = partitions_by_dir(described["results"])
    assert in_flight[current][("inflight", 0)] == (size, 0, False)
    future_size, lag, is_future = in_flight[other][("inflight", 0)]
    assert is_future and future_size < size and 0 < lag <= 1200
    eventually(lambda: ("inflight", 0) not in partitions_by_dir(describe(kbroker.port))[current], what="the move")
    assert partitions_by_dir(describe(kbroker.port))[other][("inflight", 0)] == (size, 0, False)


def test_records_acknowledged_during_a_move_are_all_there_after_it(kbroker, log_dirs):
    """An idempotent producer (acks=all) keeps producing while the replica moves: every record it
    had acknowledged is read back after the move, once, in order."""
    import threading

    from confluent_kafka import Producer

    create_topic(kbroker.port, "busy", partitions=1)
    [current] = [d for d, held in partitions_by_dir(describe(kbroker.port)).items() if ("busy", 0) in held]
    [other] = [d for d in log_dirs if d != current]
    with RawClient(kbroker.port) as client:
        for _ in range(8):
            assert produce(client, "busy", 0, build_batch([b"seed" * 2500] * 100))["error_code"] == NONE
    acked: list[bytes] = []
    stop = threading.Event()

    def keep_producing() -> None:
        producer = Producer({"bootstrap.servers": kbroker.bootstrap, "enable.idempotence": True, "linger.ms": 1})

        def delivered(error, message) -> None:
            if error is None:
                acked.append(message.value())

        sequence = 0
        while not stop.is_set():
            producer.produce("busy", b"during-%06d" % sequence, partition=0, on_delivery=delivered)
            sequence += 1
            producer.poll(0.001)
        assert producer.flush(30) == 0

    producing = threading.Thread(target=keep_producing)
    producing.start()
    try:
        eventually(lambda: len(acked) > 100, what="records acknowledged before the move")
        before_move = len(acked)
        with RawClient(kbroker.port) as client:
            answer = client.call(ALTER_REPLICA_LOG_DIRS, 2, {"dirs": [
                {"path": other, "topics": [{"name": "busy", "partitions": [0]}]}]})
        assert answer["results"][0]["partitions"][0]["error_code"] == NONE
        eventually(lambda: ("busy", 0) in partitions_by_dir(describe(kbroker.port))[other], what="the move")
        eventually(lambda: len(acked) > before_move + 100, what="records acknowledged after the move")
    finally:
        stop.set()
        producing.join(60)
    _, records = read_partition(kbroker.port, "busy", 0)
    values = [value for _offset, _key, value, _ts in records if not value.startswith(b"seed")]
    assert values == acked == [b"during-%06d" % i for i in range(len(acked))]


def test_a_move_interrupted_by_a_stop_resumes_at_the_next_start(broker_factory, tmp_path):
    """A broker stopped in the middle of a move leaves the `-future` dir (made here by the
    first steps of a move, run in-process on the stopped broker's dirs); the next start loads
    it, resumes the move with the partition's LeaderAndIsr, and the records stay the same."""
    from kbroker.log.log_manager import LogManager, read_meta_properties
    from kbroker.replica.replica_alter_log_dirs_manager import ReplicaAlterLogDirsManager, StepResult

    broker = broker_factory()
    broker.stop()
    broker.overrides.append(f"log.dirs={broker.log_dir},{tmp_path / 'second'}")
    broker.start()
    create_topic(broker.port, "resumed", partitions=1)
    with RawClient(broker.port) as client:
        for i in range(20):
            assert produce(client, "resumed", 0, build_batch([b"%d" % i * 3000] * 10))["error_code"] == NONE
    expected = read_partition(broker.port, "resumed", 0)
    dirs = sorted(partitions_by_dir(describe(broker.port)))
    [current] = [d for d, held in partitions_by_dir(describe(broker.port)).items() if ("resumed", 0) in held]
    [other] = [d for d in dirs if d != current]
    assert broker.stop() == 0

    meta = read_meta_properties(dirs)
    assert meta is not None
    logs = LogManager(dirs, cluster_id=meta["cluster.id"], broker_id=int(meta["broker.id"]))
    future = logs.create_future_log("resumed", 0, other)
    mover = ReplicaAlterLogDirsManager(logs, lambda *_: None, step_bytes=64 * 1024)
    assert [mover.step(("resumed", 0)) for _ in range(3)] == [StepResult.COPIED] * 3
    assert 0 < future.log_end_offset < expected[0]
    logs.close()
    future_dir = future.directory
    assert future_dir.endswith("-future") and os.path.isdir(future_dir)

    broker.start()
    eventually(lambda: ("resumed", 0) in partitions_by_dir(describe(broker.port))[other], what="the resumed move")
    assert ("resumed", 0) not in partitions_by_dir(describe(broker.port))[current]
    assert not os.path.exists(future_dir)
    assert read_partition(broker.port, "resumed", 0) == expected
    assert broker.stop() == 0


def update(port: int, version: int, updates: list[dict]) -> dict:
    with RawClient(port) as client:
        return client.call(UPDATE_FEATURES, version, {"timeout_ms": 10000, "feature_updates": updates,
                                                      "validate_only": False})


def feature(name: str, level: int, upgrade_type: int = 1, allow_downgrade: bool = False) -> dict:
    return {"feature": name, "max_version_level": level, "upgrade_type": upgrade_type,
            "allow_downgrade": allow_downgrade}


def test_update_features_refusals(kbroker):
    answer = update(kbroker.port, 1, [feature("group.version", 1), feature("", 1), feature("f", 1, upgrade_type=7),
                                      feature("f", 0, upgrade_type=2), feature("f", 0)])
    assert answer["error_code"] == NONE
    assert [(r["feature"], r["error_code"], r["error_message"]) for r in answer["results"]] == [
        ("group.version", INVALID_REQUEST, NOT_SUPPORTED),
        ("", INVALID_REQUEST, "Feature name can not be empty."),
        ("f", INVALID_REQUEST, "Received unknown upgrade type."),
        ("f", INVALID_REQUEST, "Can not delete non-existing finalized feature."),
        ("f", INVALID_REQUEST, "Can not provide maxVersionLevel: 0 less than 1 without setting the SAFE "
                               "downgradeType in the request.")]
    v0 = update(kbroker.port, 0, [feature("metadata.version", 0, allow_downgrade=True)])
    assert [r["error_message"] for r in v0["results"]] == ["Can not delete non-existing finalized feature."]
    v2 = update(kbroker.port, 2, [feature("transaction.version", 2), feature("", 1)])
    assert (v2["error_code"], v2["error_message"]) == (INVALID_REQUEST, NOT_SUPPORTED)
    empty = update(kbroker.port, 2, [])
    assert (empty["error_code"], empty["error_message"]) == (INVALID_REQUEST, "No feature updates were provided in the request.")


def test_kafka_python_describe_log_dirs(kbroker, log_dirs):
    from kafka.admin import KafkaAdminClient

    create_topic(kbroker.port, "logdirs-kp", partitions=2)
    admin = KafkaAdminClient(bootstrap_servers=kbroker.bootstrap)
    try:
        response = admin.describe_log_dirs()
    finally:
        admin.close()
    text = repr(response)
    assert all(d in text for d in log_dirs)
    assert "logdirs-kp" in text


def test_an_offline_log_dir_is_described_as_a_storage_error(tmp_path):
    """In-process: a dir the LogDirFailureChannel took offline answers KAFKA_STORAGE_ERROR and
    nothing else, the other dir its partitions (Kafka's describeLogDirs)."""
    from kbroker.api.handlers.describe_log_dirs import _describe_dir
    from kbroker.log.config import LogConfig
    from kbroker.log.log_manager import LogManager

    dirs = [str(tmp_path / "a"), str(tmp_path / "b")]
    manager = LogManager(dirs, cluster_id="describe-log-dirs", broker_id=1, default_config=LogConfig())
    try:
        for partition in range(4):
            manager.get_or_create_log("spread", partition)
        manager.log_dir_failure_channel.maybe_add_offline_log_dir(dirs[0], "test: a failed disk", OSError(5, "EIO"))
        offline, online = (_describe_dir(manager, d, None) for d in dirs)
        assert (offline["error_code"], offline["topics"]) == (KAFKA_STORAGE_ERROR, [])
        assert "total_bytes" not in offline  # the schema default (-1) goes out
        assert online["error_code"] == NONE
        assert [(t["name"], [p["partition_index"] for p in t["partitions"]]) for t in online["topics"]] == \
            [("spread", [p for p in range(4) if manager.log_dir_of("spread", p) == dirs[1]])]
    finally:
        manager.close()


def test_kafka_python_log_dirs_features_and_what_is_not_served(kbroker, log_dirs):
    from kafka import TopicPartitionReplica
    from kafka.admin import KafkaAdminClient
    from kafka.errors import (
        IncompatibleBrokerVersion,
        InvalidRequestError,
        LogDirNotFoundError,
        NoError,
    )

    create_topic(kbroker.port, "kp-alterdirs", partitions=1)
    [current] = [d for d, held in partitions_by_dir(describe(kbroker.port)).items() if ("kp-alterdirs", 0) in held]
    [other] = [d for d in log_dirs if d != current]
    replica = TopicPartitionReplica("kp-alterdirs", 0, 0)
    admin = KafkaAdminClient(bootstrap_servers=kbroker.bootstrap)
    try:
        assert list(admin.alter_replica_log_dirs({replica: current}).values()) == [NoError]
        assert list(admin.alter_replica_log_dirs({replica: other}).values()) == [NoError]
        eventually(lambda: ("kp-alterdirs", 0) in partitions_by_dir(describe(kbroker.port))[other], what="the move")
        assert list(admin.alter_replica_log_dirs({replica: "/nowhere"}).values()) == [LogDirNotFoundError]
        assert admin.describe_features() == {}  # no feature supported nor finalized
        with pytest.raises(InvalidRequestError, match="the provided feature is not supported"):
            admin.update_features({"group.version": 1})  # v2: the refusal is the top-level error
        # DescribeQuorum is not served by a ZooKeeper-mode broker, so not advertised
        with pytest.raises(IncompatibleBrokerVersion):
            admin.describe_metadata_quorum()
        described = admin.describe_topic_partitions(["kp-alterdirs"])
        assert described["next_cursor"] is None
        [topic] = described["topics"]
        assert (topic["name"], topic["error_code"]) == ("kp-alterdirs", NONE)
        assert [(p["partition_index"], p["leader_id"], p["isr_nodes"]) for p in topic["partitions"]] == [(0, 0, [0])]
    finally:
        admin.close()
