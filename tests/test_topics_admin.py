"""Topic administration over raw sockets against a kbroker subprocess: CreateTopics (every
version), DeleteTopics (by name and by id), CreatePartitions, DescribeConfigs, AlterConfigs,
IncrementalAlterConfigs and Metadata auto-creation, with the error codes Apache Kafka 3.x answers
and the effect each change has on the data path (a new partition takes writes, a lowered
max.message.bytes refuses a batch, a deleted topic is gone from disk and can be made again).
"""

from __future__ import annotations

import uuid

import pytest

from kbroker.protocol.uuids import ZERO_UUID
from kbroker.testing.raw_client import (
    CREATE_TOPICS,
    METADATA,
    NONE,
    RawClient,
    create_topic,
    produce,
    raw_call,
    read_partition,
    topic_id_of,
)
from kbroker.testing.records import build_batch, partition_dir
from kbroker.testing.waiting import eventually

DELETE_TOPICS = 20
DESCRIBE_CONFIGS = 32
ALTER_CONFIGS = 33
CREATE_PARTITIONS = 37
INCREMENTAL_ALTER_CONFIGS = 44

UNKNOWN_TOPIC_OR_PARTITION = 3
MESSAGE_TOO_LARGE = 10
INVALID_TOPIC_EXCEPTION = 17
TOPIC_ALREADY_EXISTS = 36
INVALID_PARTITIONS = 37
INVALID_REPLICATION_FACTOR = 38
INVALID_REPLICA_ASSIGNMENT = 39
INVALID_CONFIG = 40
INVALID_REQUEST = 42
TOPIC_DELETION_DISABLED = 73
UNKNOWN_TOPIC_ID = 100

TOPIC_RESOURCE = 2
DYNAMIC_TOPIC_CONFIG = 1
DEFAULT_CONFIG = 5
SET, DELETE = 0, 1
NUM_PARTITIONS = 2


@pytest.fixture(scope="module")
def kbroker(module_broker_factory):
    return module_broker_factory(f"num.partitions={NUM_PARTITIONS}")


def creatable(name: str, partitions: int = 1, replication_factor: int = 1, **extra) -> dict:
    return {"name": name, "num_partitions": partitions, "replication_factor": replication_factor, **extra}


def create_topics(
    port: int, topics: list[dict], version: int = 7, validate_only: bool = False
) -> dict[str, dict]:
    answer = raw_call(
        port, CREATE_TOPICS, version, {"topics": topics, "timeout_ms": 10000, "validate_only": validate_only}
    )
    return {t["name"]: t for t in answer["topics"]}


def metadata_topic(port: int, name: str, auto_create: bool = False) -> dict:
    answer = raw_call(
        port, METADATA, 12, {"topics": [{"name": name}], "allow_auto_topic_creation": auto_create}
    )
    [topic] = answer["topics"]
    return topic


def topic_exists(port: int, name: str) -> bool:
    return metadata_topic(port, name)["error_code"] == NONE


def delete_topics(port: int, names: list[str], version: int = 6) -> dict[str, int]:
    body = {"timeout_ms": 10000}
    if version >= 6:
        body["topics"] = [{"name": n} for n in names]
    else:
        body["topic_names"] = names
    answer = raw_call(port, DELETE_TOPICS, version, body)
    return {r["name"]: r["error_code"] for r in answer["responses"]}


def create_partitions(
    port: int, name: str, count: int, assignments=None, validate_only: bool = False
) -> dict:
    answer = raw_call(
        port,
        CREATE_PARTITIONS,
        3,
        {
            "topics": [{"name": name, "count": count, "assignments": assignments}],
            "timeout_ms": 10000,
            "validate_only": validate_only,
        },
    )
    [result] = answer["results"]
    return result


def describe_topic_configs(port: int, name: str, keys: list[str] | None = None) -> dict:
    answer = raw_call(
        port,
        DESCRIBE_CONFIGS,
        4,
        {"resources": [{"resource_type": TOPIC_RESOURCE, "resource_name": name, "configuration_keys": keys}]},
    )
    [result] = answer["results"]
    return result


def config_values(port: int, name: str) -> dict[str, tuple[str, int]]:
    """setting -> (value, source) for a topic."""
    result = describe_topic_configs(port, name)
    assert result["error_code"] == NONE, result
    return {c["name"]: (c["value"], c["config_source"]) for c in result["configs"]}


# --- CreateTopics -----------------------------------------------------------------------------


@pytest.mark.parametrize("version", range(8))
def test_create_topics_at_every_version(kbroker, version):
    name = f"admin-create-v{version}"
    answer = create_topics(kbroker.port, [creatable(name, partitions=3)], version=version)[name]

    assert answer["error_code"] == NONE
    metadata = metadata_topic(kbroker.port, name)
    assert sorted(p["partition_index"] for p in metadata["partitions"]) == [0, 1, 2]
    assert all(p["leader_id"] == 0 and p["error_code"] == NONE for p in metadata["partitions"])
    if version >= 5:
        assert (answer["num_partitions"], answer["replication_factor"]) == (3, 1)
        assert {c["name"] for c in answer["configs"]} >= {"retention.ms", "cleanup.policy"}
    if version >= 7:
        assert answer["topic_id"] == metadata["topic_id"] != ZERO_UUID


def test_create_with_configs_and_defaults(kbroker):
    name = "admin-configs"
    answer = create_topics(
        kbroker.port,
        [
            creatable(
                name,
                partitions=-1,
                replication_factor=-1,
                configs=[{"name": "retention.ms", "value": "123456"}],
            )
        ],
    )[name]

    assert (answer["error_code"], answer["num_partitions"], answer["replication_factor"]) == (
        NONE,
        NUM_PARTITIONS,
        1,
    )
    assert {c["name"]: c["value"] for c in answer["configs"]}["retention.ms"] == "123456"
    configs = config_values(kbroker.port, name)
    assert configs["retention.ms"] == ("123456", DYNAMIC_TOPIC_CONFIG)
    assert configs["cleanup.policy"] == ("delete", DEFAULT_CONFIG)


def test_create_with_a_null_config_value_is_invalid_config(kbroker):
    # Kafka's ZkAdminManager refuses null values (naming them all) right after the topic's
    # existence check, before the partition count or any other setting is looked at.
    nulls = [
        {"name": "retention.ms", "value": None},
        {"name": "cleanup.policy", "value": "delete"},
        {"name": "segment.ms", "value": None},
    ]
    answer = create_topics(kbroker.port, [creatable("admin-null-config", configs=nulls)])["admin-null-config"]
    no_partitions = create_topics(kbroker.port, [creatable("admin-null-config-p0", partitions=0, configs=nulls)])[
        "admin-null-config-p0"
    ]
    create_topic(kbroker.port, "admin-null-config-exists")
    existing = create_topics(kbroker.port, [creatable("admin-null-config-exists", configs=nulls)])[
        "admin-null-config-exists"
    ]

    refused = (INVALID_CONFIG, "Null value not supported for topic configs: retention.ms,segment.ms")
    assert (answer["error_code"], answer["error_message"]) == refused
    assert (no_partitions["error_code"], no_partitions["error_message"]) == refused
    assert not topic_exists(kbroker.port, "admin-null-config")
    assert existing["error_code"] == TOPIC_ALREADY_EXISTS


def test_create_with_an_explicit_assignment(kbroker):
    name = "admin-assigned"
    assignments = [{"partition_index": 0, "broker_ids": [0]}, {"partition_index": 1, "broker_ids": [0]}]
    answer = create_topics(
        kbroker.port, [creatable(name, partitions=-1, replication_factor=-1, assignments=assignments)]
    )[name]
    wrong_broker = create_topics(
        kbroker.port,
        [creatable("admin-assigned-9", -1, -1, assignments=[{"partition_index": 0, "broker_ids": [9]}])],
    )["admin-assigned-9"]
    both = create_topics(kbroker.port, [creatable("admin-assigned-both", 2, 1, assignments=assignments)])[
        "admin-assigned-both"
    ]

    assert answer["error_code"] == NONE
    assert len(metadata_topic(kbroker.port, name)["partitions"]) == 2
    assert wrong_broker["error_code"] == INVALID_REPLICA_ASSIGNMENT
    assert both["error_code"] == INVALID_REQUEST


@pytest.mark.parametrize(
    ("topic", "error"),
    [
        (creatable("admin-rf3", replication_factor=3), INVALID_REPLICATION_FACTOR),
        (creatable("admin-rf0", replication_factor=0), INVALID_REPLICATION_FACTOR),
        (creatable("admin-p0", partitions=0), INVALID_PARTITIONS),
        (creatable(""), INVALID_TOPIC_EXCEPTION),
        (creatable("."), INVALID_TOPIC_EXCEPTION),
        (creatable(".."), INVALID_TOPIC_EXCEPTION),
        (creatable("a" * 250), INVALID_TOPIC_EXCEPTION),
        (creatable("admin:colon"), INVALID_TOPIC_EXCEPTION),
        (creatable("admin-bad-key", configs=[{"name": "no.such.setting", "value": "1"}]), INVALID_CONFIG),
        (creatable("admin-bad-value", configs=[{"name": "retention.ms", "value": "soon"}]), INVALID_CONFIG),
        (creatable("admin-bad-enum", configs=[{"name": "cleanup.policy", "value": "shred"}]), INVALID_CONFIG),
    ],
    ids=lambda v: v if isinstance(v, int) else (v["name"][:12] or "empty"),
)
def test_create_errors(kbroker, topic, error):
    answer = create_topics(kbroker.port, [topic])[topic["name"]]

    assert answer["error_code"] == error, answer
    assert answer["error_message"], "Kafka explains every CreateTopics error"
    if topic["name"]:
        assert not topic_exists(kbroker.port, topic["name"])


def test_existing_colliding_and_repeated_names(kbroker):
    create_topic(kbroker.port, "admin.dots")
    answers = create_topics(
        kbroker.port,
        [
            creatable("admin.dots"),
            creatable("admin_dots"),
            creatable("admin-twice"),
            creatable("admin-twice"),
        ],
    )

    assert answers["admin.dots"]["error_code"] == TOPIC_ALREADY_EXISTS
    assert answers["admin_dots"]["error_code"] == INVALID_TOPIC_EXCEPTION
    assert "collides" in answers["admin_dots"]["error_message"]
    assert answers["admin-twice"]["error_code"] == INVALID_REQUEST
    assert not topic_exists(kbroker.port, "admin_dots")
    assert not topic_exists(kbroker.port, "admin-twice")


def test_validate_only_creates_nothing(kbroker):
    answer = create_topics(kbroker.port, [creatable("admin-dry-run", partitions=4)], validate_only=True)

    assert (answer["admin-dry-run"]["error_code"], answer["admin-dry-run"]["num_partitions"]) == (NONE, 4)
    assert not topic_exists(kbroker.port, "admin-dry-run")


def online_topic(port: int, name: str) -> dict | None:
    """The topic's Metadata entry once it answers NONE (its partitions have leaders), else None."""
    answer = metadata_topic(port, name)
    return answer if answer["error_code"] == NONE else None


def test_metadata_auto_creates_with_num_partitions(kbroker):
    first = metadata_topic(kbroker.port, "admin-auto", auto_create=True)
    answer = eventually(lambda: online_topic(kbroker.port, "admin-auto"), what="admin-auto online", timeout=10)

    assert first["error_code"] in (NONE, 5)  # LEADER_NOT_AVAILABLE until the partitions are online
    assert len(answer["partitions"]) == NUM_PARTITIONS
    assert metadata_topic(kbroker.port, "admin-not-auto")["error_code"] == UNKNOWN_TOPIC_OR_PARTITION
    assert metadata_topic(kbroker.port, "bad name", auto_create=True)["error_code"] == INVALID_TOPIC_EXCEPTION


# --- DeleteTopics -----------------------------------------------------------------------------


@pytest.mark.parametrize("version", range(7))
def test_delete_topics_at_every_version(kbroker, version):
    name = f"admin-delete-v{version}"
    create_topic(kbroker.port, name)

    assert delete_topics(kbroker.port, [name, f"{name}-unknown"], version=version) == {
        name: NONE,
        f"{name}-unknown": UNKNOWN_TOPIC_OR_PARTITION,
    }
    assert not topic_exists(kbroker.port, name)


def test_delete_by_topic_id(kbroker):
    name = "admin-delete-by-id"
    create_topic(kbroker.port, name)
    topic_id = topic_id_of(kbroker.port, name)
    body = {
        "topics": [{"name": None, "topic_id": topic_id}, {"name": None, "topic_id": uuid.uuid4()}],
        "timeout_ms": 10000,
    }

    answer = raw_call(kbroker.port, DELETE_TOPICS, 6, body)

    assert {r["topic_id"]: (r["name"], r["error_code"]) for r in answer["responses"]} == {
        topic_id: (name, NONE),
        body["topics"][1]["topic_id"]: (None, UNKNOWN_TOPIC_ID),
    }
    assert not topic_exists(kbroker.port, name)


def test_deleted_topic_leaves_the_disk_and_can_be_made_again(kbroker):
    name = "admin-recreate"
    create_topic(kbroker.port, name)
    old_id = topic_id_of(kbroker.port, name)
    with RawClient(kbroker.port) as client:
        produce(client, name, 0, build_batch([b"old"] * 5))

    assert delete_topics(kbroker.port, [name]) == {name: NONE}
    eventually(lambda: not partition_dir(kbroker.log_dir, name, 0).exists(), what="the partition directory removed",
               timeout=10)
    create_topic(kbroker.port, name)
    with RawClient(kbroker.port) as client:
        fresh = produce(client, name, 0, build_batch([b"new"]))

    assert topic_id_of(kbroker.port, name) != old_id
    assert fresh["base_offset"] == 0
    assert [v for _, _, v, _ in read_partition(kbroker.port, name, 0)[1]] == [b"new"]


def test_delete_topic_disabled(broker_factory):
    kbroker = broker_factory("delete.topic.enable=false")
    create_topic(kbroker.port, "admin-undeletable")

    assert delete_topics(kbroker.port, ["admin-undeletable"]) == {
        "admin-undeletable": TOPIC_DELETION_DISABLED
    }
    assert topic_exists(kbroker.port, "admin-undeletable")


# --- CreatePartitions -------------------------------------------------------------------------


def test_create_partitions_grows_a_topic_that_then_takes_writes(kbroker):
    name = "admin-grow"
    create_topic(kbroker.port, name)

    dry = create_partitions(kbroker.port, name, 5, validate_only=True)
    assert dry["error_code"] == NONE and len(metadata_topic(kbroker.port, name)["partitions"]) == 1
    assert create_partitions(kbroker.port, name, 3)["error_code"] == NONE
    assert create_partitions(kbroker.port, name, 4, assignments=[{"broker_ids": [0]}])["error_code"] == NONE
    with RawClient(kbroker.port) as client:
        answer = produce(client, name, 3, build_batch([b"in the new partition"]))

    assert sorted(p["partition_index"] for p in metadata_topic(kbroker.port, name)["partitions"]) == [
        0,
        1,
        2,
        3,
    ]
    assert (answer["error_code"], answer["base_offset"]) == (NONE, 0)


def test_create_partitions_errors(kbroker):
    name = "admin-grow-errors"
    create_topic(kbroker.port, name, partitions=2)

    assert create_partitions(kbroker.port, name, 2)["error_code"] == INVALID_PARTITIONS
    assert create_partitions(kbroker.port, name, 1)["error_code"] == INVALID_PARTITIONS
    assert create_partitions(kbroker.port, "admin-no-such", 3)["error_code"] == UNKNOWN_TOPIC_OR_PARTITION
    wrong_count = create_partitions(kbroker.port, name, 4, assignments=[{"broker_ids": [0]}])
    assert wrong_count["error_code"] == INVALID_REPLICA_ASSIGNMENT
    unknown_broker = create_partitions(kbroker.port, name, 3, assignments=[{"broker_ids": [7]}])
    assert unknown_broker["error_code"] == INVALID_REPLICA_ASSIGNMENT
    assert len(metadata_topic(kbroker.port, name)["partitions"]) == 2


# --- configs ----------------------------------------------------------------------------------


def test_describe_configs_of_unknown_and_illegal_topics(kbroker):
    assert (
        describe_topic_configs(kbroker.port, "admin-nothing-here")["error_code"] == UNKNOWN_TOPIC_OR_PARTITION
    )
    assert describe_topic_configs(kbroker.port, "bad name")["error_code"] == INVALID_TOPIC_EXCEPTION


def test_describe_configs_filters_by_key(kbroker):
    create_topic(kbroker.port, "admin-filter", configs={"segment.bytes": "1048576"})
    result = describe_topic_configs(kbroker.port, "admin-filter", keys=["segment.bytes", "retention.ms"])

    assert {c["name"]: (c["value"], c["config_source"]) for c in result["configs"]} == {
        "segment.bytes": ("1048576", DYNAMIC_TOPIC_CONFIG),
        "retention.ms": ("604800000", DEFAULT_CONFIG),
    }


def test_alter_configs_replaces_overrides_and_reaches_the_log(kbroker):
    name = "admin-alter"
    create_topic(kbroker.port, name, configs={"retention.ms": "1000000"})

    def alter(configs: dict[str, str], validate_only: bool = False) -> int:
        answer = raw_call(
            kbroker.port,
            ALTER_CONFIGS,
            2,
            {
                "resources": [
                    {
                        "resource_type": TOPIC_RESOURCE,
                        "resource_name": name,
                        "configs": [{"name": k, "value": v} for k, v in configs.items()],
                    }
                ],
                "validate_only": validate_only,
            },
        )
        [response] = answer["responses"]
        return response["error_code"]

    assert alter({"max.message.bytes": "200"}, validate_only=True) == NONE
    assert config_values(kbroker.port, name)["max.message.bytes"][1] == DEFAULT_CONFIG
    assert alter({"max.message.bytes": "200"}) == NONE
    configs = config_values(kbroker.port, name)
    assert configs["max.message.bytes"] == ("200", DYNAMIC_TOPIC_CONFIG)
    assert configs["retention.ms"] == ("604800000", DEFAULT_CONFIG)  # not named: back to the default
    assert alter({"no.such.setting": "1"}) == INVALID_CONFIG
    with RawClient(kbroker.port) as client:
        refused = produce(client, name, 0, build_batch([b"x" * 300]))
    assert refused["error_code"] == MESSAGE_TOO_LARGE


def test_incremental_alter_configs_sets_and_deletes(kbroker):
    name = "admin-incremental"
    create_topic(kbroker.port, name, configs={"retention.ms": "1000000"})

    def change(*operations: tuple[str, int, str | None]) -> int:
        answer = raw_call(
            kbroker.port,
            INCREMENTAL_ALTER_CONFIGS,
            1,
            {
                "resources": [
                    {
                        "resource_type": TOPIC_RESOURCE,
                        "resource_name": name,
                        "configs": [
                            {"name": k, "config_operation": op, "value": v} for k, op, v in operations
                        ],
                    }
                ]
            },
        )
        [response] = answer["responses"]
        return response["error_code"]

    assert change(("segment.ms", SET, "3600000")) == NONE
    configs = config_values(kbroker.port, name)
    assert configs["segment.ms"] == ("3600000", DYNAMIC_TOPIC_CONFIG)
    assert configs["retention.ms"] == ("1000000", DYNAMIC_TOPIC_CONFIG)  # left alone
    assert change(("retention.ms", DELETE, None)) == NONE
    assert config_values(kbroker.port, name)["retention.ms"] == ("604800000", DEFAULT_CONFIG)
    assert change(("segment.ms", SET, "not a number")) == INVALID_REQUEST
    assert config_values(kbroker.port, name)["segment.ms"] == ("3600000", DYNAMIC_TOPIC_CONFIG)
