"""Differential tests: the same raw requests (encoded with kbroker's codec, from Kafka's schemas)
sent to Apache Kafka 4.4 (single-node KRaft, from the Maven jars, started once for the module)
and to kbroker, the answers compared field by field.

Masked, because they must differ between any two brokers: ids (node, topic, producer, cluster),
hosts and ports, throttle times, timestamps the broker assigns. Every other difference is either
fixed in kbroker or listed in ALLOWED with the reason it must stay: a test fails on a difference
not listed, and on a listed one that no longer occurs (so the list cannot go stale), except the
APIs not built yet (UNTIL_BUILT), which other work is adding.
"""

from __future__ import annotations

import fnmatch
import uuid
from typing import Any

import pytest

from kbroker.testing import wire
from kbroker.testing.apache_kafka import apache_kafka_unavailable_reason
from kbroker.testing.processes import BrokerProcess
from kbroker.testing.raw_client import RawClient, fetch_body, produce_body
from kbroker.testing.records import build_batch
from kbroker.testing.waiting import eventually

pytestmark = pytest.mark.skipif(apache_kafka_unavailable_reason() is not None,
                                reason=apache_kafka_unavailable_reason() or "")

PRODUCE, FETCH, LIST_OFFSETS, METADATA = 0, 1, 2, 3
OFFSET_COMMIT, OFFSET_FETCH, FIND_COORDINATOR = 8, 9, 10
API_VERSIONS, CREATE_TOPICS, DESCRIBE_CONFIGS = 18, 19, 32
MASKED = "<masked>"

# Field names whose values differ between any two brokers, wherever they appear.
MASKED_FIELDS = frozenset({
    "throttle_time_ms", "cluster_id", "controller_id", "node_id", "host", "port", "rack", "topic_id",
    "leader_id", "replica_nodes", "isr_nodes", "offline_replicas", "leader_epoch", "log_append_time_ms",
    "topic_authorized_operations", "cluster_authorized_operations", "broker_id",
})  # fmt: skip

# Differences that must stay, as fnmatch patterns over "<scenario> <path>", with their reasons.
KRAFT = "KRaft vs ZooKeeper mode: kbroker is a ZooKeeper-mode broker (Kafka 3.9's API set and answers)"
OLD_VERSIONS = ("Kafka 4.0 dropped old request versions (KIP-896); kbroker keeps Kafka 3.9's minimums for "
                "the old clients it serves")
NOT_BUILT = "not served by kbroker yet: an API not served is not advertised"
NOT_BUILT_KEYS = {
    38: "CreateDelegationToken", 39: "RenewDelegationToken", 40: "ExpireDelegationToken",
    41: "DescribeDelegationToken",
    74: "ListClientMetricsResources (KIP-714)",
    **{key: "share groups (KIP-932) and streams groups (KIP-1071), Kafka 4.x only"
       for key in (76, 77, 78, 79, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92, 93, 94)},
}  # fmt: skip
# APIs not built: their entries may stop occurring (or become a version difference) when they
# land, without failing the check that the list is current.
UNTIL_BUILT = frozenset(f"api_versions .api_keys.{key}*" for key in NOT_BUILT_KEYS)
KRAFT_ONLY_KEYS = {55: "DescribeQuorum", 64: "UnregisterBroker", 80: "AddRaftVoter", 81: "RemoveRaftVoter"}
ZK_ONLY_KEYS = {4: "LeaderAndIsr", 5: "StopReplica", 6: "UpdateMetadata", 7: "ControlledShutdown",
                56: "AlterPartition (served to ZooKeeper-mode controllers' brokers)"}
NEWER_MAX = ("a version newer than kbroker's vendored schemas (Kafka 4.x after kbroker's snapshot): "
             "ApiVersions v5 (KIP-1242), DeleteGroups v3")
TOPIC_CONFIGS_DIFFER = {
    "errors.deadletterqueue.group.enable": "a Kafka 4.x topic config (KIP-1034) kbroker does not have",
    "max.decompressed.message.bytes": "a Kafka 4.x topic config kbroker does not have",
    "remote.copy.lag.bytes": "tiered storage, not built",
    "remote.copy.lag.ms": "tiered storage, not built",
    "remote.log.copy.disable": "tiered storage, not built",
    "remote.log.delete.on.disable": "tiered storage, not built",
    "message.downconversion.enable": "removed in Kafka 4.0 (KIP-724); kbroker keeps Kafka 3.9's topic configs",
    "message.format.version": "removed in Kafka 4.0 (KIP-724); kbroker keeps Kafka 3.9's topic configs",
    "message.timestamp.difference.max.ms": "removed in Kafka 4.0 (KIP-937); kbroker keeps Kafka 3.9's",
    "message.timestamp.after.max.ms.value": "Kafka 4.0's default is one hour (KIP-1030); Kafka 3.9's is Long.MAX",
    "min.insync.replicas.config_source": KRAFT + "; KRaft's format writes a cluster-level min.insync.replicas (ELR)",
}
ALLOWED: dict[str, str] = {
    **{f"api_versions .api_keys.{key}.min_version": OLD_VERSIONS for key in (1, 2, 8, 9, 19, 20, 23, 27, 29, 30,
                                                                               31, 32)},
    **{f"api_versions .api_keys.{key}.max_version": NEWER_MAX for key in (18, 42)},
    **{f"api_versions .api_keys.{key}*": f"{name}: {NOT_BUILT}" for key, name in NOT_BUILT_KEYS.items()},
    **{f"api_versions .api_keys.{key}": f"{name}: {KRAFT}" for key, name in KRAFT_ONLY_KEYS.items()},
    **{f"api_versions .api_keys.{key}": f"{name}: {KRAFT}" for key, name in ZK_ONLY_KEYS.items()},
    "api_versions .supported_features*": KRAFT + ": feature versioning (metadata.version) is KRaft's",
    "api_versions .finalized_features*": KRAFT + ": feature versioning (metadata.version) is KRaft's",
    "metadata_auto_created .topics[[]0[]].error_code": (
        KRAFT + ": ZooKeeper-mode Kafka creates the topic itself and answers LEADER_NOT_AVAILABLE, KRaft asks "
        "the controller and answers UNKNOWN_TOPIC_OR_PARTITION until it exists"),
    **{f"create_topics_{case} .topics[[]0[]].error_message": (
        KRAFT + ": the KRaft controller words these its own way; kbroker answers with ZooKeeper-mode Kafka "
        "3.9's AdminZkClient/Topic.validate messages")
       for case in ("zero_partitions", "zero_replication", "replication_above_brokers", "invalid_name",
                    "dot_dot_name", "too_long_name")},
    **{f"{scenario} *.configs.{name}": reason for name, reason in TOPIC_CONFIGS_DIFFER.items()
       for scenario in ("create_topics_validate_only", "describe_configs_topic")},
    "create_partitions_same_count .results[[]0[]].error_message": (
        KRAFT + ": ZooKeeper-mode Kafka's 'Topic already has 1 partitions.', KRaft's '... 1 partition(s).'"),
    "create_partitions_unknown_topic .results[[]0[]].error_message": (
        KRAFT + ": ZooKeeper-mode Kafka's ZkAdminManager says \"The topic 'x' does not exist.\", KRaft nothing"),
    "delete_topics_unknown .responses[[]0[]].error_message": (
        "kbroker names the topic (its own `kbroker topics` tool prints that); Kafka 3.9 ZooKeeper mode sends no "
        "message here, KRaft the error's default text: left as it is, a message only"),
}  # fmt: skip


@pytest.fixture(scope="module")
def broker(module_broker_factory) -> BrokerProcess:
    return module_broker_factory("num.partitions=1")


@pytest.fixture(scope="module")
def ports(broker, apache_kafka) -> dict[str, int]:
    return {"kbroker": broker.port, "kafka": apache_kafka.port}


def plain(value: Any) -> Any:
    """Decoded answers with bytes-like fields as bytes, the fields MASKED_FIELDS names masked, and
    configs and api keys keyed by name and key (so one missing entry is one difference, not a shift)."""
    if isinstance(value, dict):
        return {key: MASKED if key in MASKED_FIELDS else plain(keyed(key, item)) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    if isinstance(value, memoryview | bytearray):
        return bytes(value)
    return value


def keyed(field: str, value: Any) -> Any:
    if field == "configs" and isinstance(value, list):
        return {config["name"]: config for config in value}
    if field == "api_keys" and isinstance(value, list):
        return {entry["api_key"]: entry for entry in value}
    return value


def differences(ours: Any, theirs: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """(path, kbroker's value, Kafka's value) for every field that differs."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        found = []
        for key in sorted(set(ours) | set(theirs)):
            found += differences(ours.get(key, "<absent>"), theirs.get(key, "<absent>"), f"{path}.{key}")
        return found
    if isinstance(ours, list) and isinstance(theirs, list) and len(ours) == len(theirs):
        return [d for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) for d in differences(a, b, f"{path}[{i}]")]
    return [] if ours == theirs else [(path, ours, theirs)]


def assert_same(scenario: str, ours: Any, theirs: Any) -> None:
    """No difference but the allowed ones, and every allowed one of this scenario still occurs."""
    found = differences(plain(ours), plain(theirs))
    unexplained = [d for d in found if not any(fnmatch.fnmatchcase(f"{scenario} {d[0]}", p) for p in ALLOWED)]
    assert not unexplained, "\n".join(f"{scenario} {path}: kbroker {a!r} != kafka {b!r}" for path, a, b in unexplained)
    for pattern in ALLOWED:
        if pattern.startswith(f"{scenario} ") and pattern not in UNTIL_BUILT:
            assert any(fnmatch.fnmatchcase(f"{scenario} {d[0]}", pattern) for d in found), \
                f"allowed difference {pattern!r} no longer occurs: drop it from ALLOWED"


def call_both(ports: dict[str, int], api_key: int, version: int, body: dict) -> tuple[dict, dict]:
    answers = []
    for name in ("kbroker", "kafka"):
        with RawClient(ports[name]) as client:
            answers.append(client.call(api_key, version, body))
    return answers[0], answers[1]


def create_topic_body(name: str, partitions: int = 1, replication: int = 1, configs: dict[str, str] | None = None,
                      validate_only: bool = False) -> dict:
    return {"topics": [{"name": name, "num_partitions": partitions, "replication_factor": replication,
                        "assignments": [], "configs": [{"name": k, "value": v} for k, v in (configs or {}).items()]}],
            "timeout_ms": 30000, "validate_only": validate_only}


def create_on_both(ports: dict[str, int], name: str, **configs: str) -> None:
    """Create a topic on both and wait until each broker's metadata has it with a leader: KRaft's
    CreateTopics answers once the controller has it, before the broker has caught up."""
    ours, theirs = call_both(ports, CREATE_TOPICS, 7, create_topic_body(name, configs=configs))
    assert ours["topics"][0]["error_code"] == theirs["topics"][0]["error_code"] == 0, (ours, theirs)
    for port in ports.values():
        eventually(lambda port=port: leader_known(port, name), what=f"{name} in the metadata of :{port}")


def leader_known(port: int, topic: str) -> bool:
    with RawClient(port) as client:
        [answer] = client.call(METADATA, 12, metadata_body(topic))["topics"]
    return answer["error_code"] == 0 and all(p["leader_id"] >= 0 for p in answer["partitions"])


# -- ApiVersions --------------------------------------------------------------------------------


def test_api_versions(ports):
    ours, theirs = call_both(ports, API_VERSIONS, 3, {"client_software_name": "kbroker-diff",
                                                      "client_software_version": "1"})
    assert_same("api_versions", ours, theirs)


def test_api_versions_of_an_unsupported_version(ports):
    """A version the broker does not know gets a v0 answer: UNSUPPORTED_VERSION and ApiVersions' own
    range only (KIP-511), so the client can retry with one it serves."""
    answers = [wire.parse_api_versions(wire.roundtrip(port, wire.api_versions_request(9, version=127)), 0)
               for port in ports.values()]
    assert [(a.error_code, set(a.api_keys)) for a in answers] == [(35, {API_VERSIONS})] * 2


# -- Metadata -------------------------------------------------------------------------------------


def metadata_body(*topics: str, auto_create: bool = False) -> dict:
    return {"topics": [{"name": name} for name in topics], "allow_auto_topic_creation": auto_create,
            "include_cluster_authorized_operations": False, "include_topic_authorized_operations": False}


def test_metadata_for_known_unknown_and_auto_created_topics(ports):
    create_on_both(ports, "diff-known")
    assert_same("metadata_known", *call_both(ports, METADATA, 12, metadata_body("diff-known")))
    assert_same("metadata_unknown", *call_both(ports, METADATA, 12, metadata_body("diff-unknown")))
    assert_same("metadata_auto_created", *call_both(ports, METADATA, 12, metadata_body("diff-auto", auto_create=True)))
    assert_same("metadata_invalid_name", *call_both(ports, METADATA, 12, metadata_body("bad/name", auto_create=True)))


# -- CreateTopics -------------------------------------------------------------------------------


@pytest.mark.parametrize(("case", "body"), [
    ("zero_partitions", create_topic_body("diff-c1", partitions=0)),
    ("zero_replication", create_topic_body("diff-c2", replication=0)),
    ("replication_above_brokers", create_topic_body("diff-c3", replication=3)),
    ("invalid_name", create_topic_body("bad/name")),
    ("dot_dot_name", create_topic_body("..")),
    ("too_long_name", create_topic_body("x" * 250)),
    ("bad_config_value", create_topic_body("diff-c4", configs={"retention.ms": "abc"})),
    ("unknown_config", create_topic_body("diff-c5", configs={"no.such.config": "1"})),
    ("gzip_level_out_of_range", create_topic_body("diff-c7", configs={"compression.gzip.level": "10"})),
    ("lz4_level_out_of_range", create_topic_body("diff-c8", configs={"compression.lz4.level": "0"})),
    ("zstd_level_out_of_range", create_topic_body("diff-c9", configs={"compression.zstd.level": "23"})),
    ("validate_only", create_topic_body("diff-c6", partitions=3, validate_only=True)),
], ids=lambda value: value if isinstance(value, str) else "")
def test_create_topics_with_bad_arguments(ports, case, body):
    assert_same(f"create_topics_{case}", *call_both(ports, CREATE_TOPICS, 7, body))


def test_create_topics_that_exists(ports):
    create_on_both(ports, "diff-exists")
    assert_same("create_topics_exists", *call_both(ports, CREATE_TOPICS, 7, create_topic_body("diff-exists")))


# -- Produce ------------------------------------------------------------------------------------


def produce_both(ports: dict[str, int], body: dict, version: int = 9) -> tuple[dict, dict]:
    return call_both(ports, PRODUCE, version, body)


def test_produce_errors(ports):
    create_on_both(ports, "diff-produce", **{"max.message.bytes": "2000"})
    good = build_batch([b"v1", b"v2"], timestamps=[1_600_000_000_000, 1_600_000_000_001])
    bad_crc = bytearray(good)
    bad_crc[-1] ^= 0xFF  # the CRC covers everything after it, the last record's value included
    too_large = build_batch([b"x" * 3000])
    assert_same("produce_ok", *produce_both(ports, produce_body("diff-produce", 0, good)))
    assert_same("produce_bad_crc", *produce_both(ports, produce_body("diff-produce", 0, bytes(bad_crc))))
    assert_same("produce_too_large", *produce_both(ports, produce_body("diff-produce", 0, too_large)))
    assert_same("produce_bad_acks", *produce_both(ports, produce_body("diff-produce", 0, good, acks=2)))
    assert_same("produce_unknown_partition", *produce_both(ports, produce_body("diff-produce", 7, good)))


# -- Fetch --------------------------------------------------------------------------------------


def test_fetch_edge_cases(ports):
    create_on_both(ports, "diff-fetch")
    create_on_both(ports, "diff-empty")
    for name in ports:
        with RawClient(ports[name]) as client:
            for first in range(3):
                batch = build_batch([b"f%d-%d" % (first, i) * 50 for i in range(4)],
                                    timestamps=[1_600_000_000_000 + 10 * first + i for i in range(4)])
                answer = client.call(PRODUCE, 9, produce_body("diff-fetch", 0, batch))
                assert answer["responses"][0]["partition_responses"][0]["error_code"] == 0
    assert_same("fetch_out_of_range", *call_both(ports, FETCH, 12, fetch_body("diff-fetch", 0, 100)))
    assert_same("fetch_empty", *call_both(ports, FETCH, 12, fetch_body("diff-empty", 0, 0)))
    # A partition limit below one batch still returns that first batch (KIP-74), and no more.
    assert_same("fetch_partition_limit", *call_both(ports, FETCH, 12, fetch_body("diff-fetch", 0, 0,
                                                                                  partition_max_bytes=10)))
    assert_same("fetch_total_limit", *call_both(ports, FETCH, 12, fetch_body("diff-fetch", 0, 4, max_bytes=300)))
    assert_same("fetch_middle_of_batch", *call_both(ports, FETCH, 12, fetch_body("diff-fetch", 0, 5)))
    assert_same("fetch_unknown_topic", *call_both(ports, FETCH, 12, fetch_body("diff-unknown-fetch", 0, 0)))

    # ListOffsets by time: the first offset at or after a timestamp; earliest, latest, max timestamp.
    for case, timestamp in [("time", 1_600_000_000_011), ("after_all", 1_700_000_000_000), ("earliest", -2),
                            ("latest", -1), ("max_timestamp", -3)]:
        body = {"replica_id": -1, "isolation_level": 0,
                "topics": [{"name": "diff-fetch", "partitions": [{"partition_index": 0, "timestamp": timestamp}]}]}
        assert_same(f"list_offsets_{case}", *call_both(ports, LIST_OFFSETS, 7, body))


def test_fetch_sessions(ports):
    """KIP-227 on both: a session opened by a full fetch (epoch 0), an incremental fetch with no
    change and one after an append (only the changed partition), a wrong epoch, an unknown id,
    and epoch -1 closing the session. Session ids are random: compared as "one was given"."""
    for topic in ("diff-sessions-a", "diff-sessions-b"):
        create_on_both(ports, topic)
        for port in ports.values():  # Kafka's metadata may name the leader before its replica leads
            eventually(lambda port=port, topic=topic: _fetchable(port, topic), what=f"{topic}-0 led on :{port}")
    steps = {name: _session_steps(port) for name, port in ports.items()}
    for (step, ours), (_, theirs) in zip(steps["kbroker"], steps["kafka"], strict=True):
        assert_same(step, ours, theirs)


def _fetchable(port: int, topic: str) -> bool:
    """A sessionless fetch (epoch -1: no session is made) of the topic's partition 0 answers without error."""
    with RawClient(port) as client:
        answer = client.call(FETCH, 12, fetch_body(topic, 0, 0))
    return answer["responses"][0]["partitions"][0]["error_code"] == 0


def _session_steps(port: int) -> list[tuple[str, dict]]:
    answers: list[tuple[str, dict]] = []
    with RawClient(port) as client:
        def call(step: str, body: dict) -> dict:
            answer = client.call(FETCH, 12, body)
            answers.append((step, {**answer, "session_id": bool(answer["session_id"])}))
            return answer

        both = fetch_body("diff-sessions-a", 0, 0, session_epoch=0)
        both["topics"] += fetch_body("diff-sessions-b", 0, 0)["topics"]
        session_id = call("fetch_session_opened", both)["session_id"]
        incremental = {**both, "session_id": session_id, "session_epoch": 1, "topics": []}
        call("fetch_session_unchanged", incremental)
        batch = build_batch([b"session"], timestamps=[1_600_000_000_000])
        answer = client.call(PRODUCE, 9, produce_body("diff-sessions-b", 0, batch))
        assert answer["responses"][0]["partition_responses"][0]["error_code"] == 0
        call("fetch_session_changed", {**incremental, "session_epoch": 2})
        call("fetch_session_wrong_epoch", {**incremental, "session_epoch": 7})
        call("fetch_session_unknown_id", {**incremental, "session_id": session_id ^ 0x5A5A5A})
        call("fetch_session_closed", {**both, "session_id": session_id, "session_epoch": -1})
        call("fetch_session_after_close", {**incremental, "session_epoch": 3})
    return answers


# -- OffsetCommit / OffsetFetch for unknown groups -------------------------------------------------


def coordinator_ready(port: int, group: str) -> bool:
    """FindCoordinator creates __consumer_offsets on first use; the group's partition then loads
    (COORDINATOR_LOAD_IN_PROGRESS or NOT_COORDINATOR meanwhile, from Kafka as from kbroker)."""
    with RawClient(port) as client:
        if client.call(FIND_COORDINATOR, 3, {"key": group, "key_type": 0})["error_code"] != 0:
            return False
        return client.call(OFFSET_FETCH, 7, {"group_id": group, "topics": None,
                                             "require_stable": False})["error_code"] == 0


def test_offset_commit_and_fetch_for_unknown_groups(ports):
    create_on_both(ports, "diff-offsets")
    for group in ("diff-unknown-group", "diff-group-generation_5", "diff-group-simple"):
        for port in ports.values():
            eventually(lambda port=port, group=group: coordinator_ready(port, group), what=f"a coordinator for {group}")
    topics = [{"name": "diff-offsets", "partitions": [{"partition_index": 0, "committed_offset": 0,
                                                       "committed_leader_epoch": -1, "committed_metadata": "m"}]}]
    fetch = {"group_id": "diff-unknown-group", "topics": [{"name": "diff-offsets", "partition_indexes": [0]}],
             "require_stable": False}
    assert_same("offset_fetch_unknown_group", *call_both(ports, OFFSET_FETCH, 7, fetch))
    for case, generation, member in [("generation_5", 5, "someone"), ("simple", -1, "")]:
        body = {"group_id": f"diff-group-{case}", "generation_id_or_member_epoch": generation, "member_id": member,
                "group_instance_id": None, "retention_time_ms": -1, "topics": topics}
        assert_same(f"offset_commit_{case}", *call_both(ports, OFFSET_COMMIT, 8, body))
    fetch["group_id"] = "diff-group-simple"
    assert_same("offset_fetch_after_simple_commit", *call_both(ports, OFFSET_FETCH, 7, fetch))


# -- DescribeConfigs ----------------------------------------------------------------------------


def test_describe_configs_defaults_of_a_topic(ports):
    create_on_both(ports, "diff-configs")
    body = {"resources": [{"resource_type": 2, "resource_name": "diff-configs", "configuration_keys": None}],
            "include_synonyms": False, "include_documentation": False}
    assert_same("describe_configs_topic", *call_both(ports, DESCRIBE_CONFIGS, 4, body))


# -- more requests, each answered the same (or as ALLOWED says) ----------------------------------

ZERO_UUID = uuid.UUID(int=0)
MORE_REQUESTS = [
    ("produce_unknown_topic", PRODUCE, 9, produce_body("x-nope", 0, build_batch([b"v"], timestamps=[1]))),
    ("list_offsets_unknown_topic", LIST_OFFSETS, 7, {"replica_id": -1, "isolation_level": 0, "topics": [
        {"name": "x-nope", "partitions": [{"partition_index": 0, "timestamp": -1}]}]}),
    ("list_offsets_unknown_partition", LIST_OFFSETS, 7, {"replica_id": -1, "isolation_level": 0, "topics": [
        {"name": "x-topic", "partitions": [{"partition_index": 5, "timestamp": -1}]}]}),
    ("delete_topics_unknown", 20, 6, {"topics": [{"name": "x-nope", "topic_id": ZERO_UUID}], "timeout_ms": 10000}),
    ("create_partitions_same_count", 37, 3, {"topics": [{"name": "x-topic", "count": 1, "assignments": None}],
                                            "timeout_ms": 10000, "validate_only": False}),
    ("create_partitions_unknown_topic", 37, 3, {"topics": [{"name": "x-nope", "count": 3, "assignments": None}],
                                               "timeout_ms": 10000, "validate_only": False}),
    ("delete_records_beyond_high_watermark", 21, 2, {"topics": [{"name": "x-topic", "partitions": [
        {"partition_index": 0, "offset": 1000}]}], "timeout_ms": 10000}),
    ("delete_records_unknown_topic", 21, 2, {"topics": [{"name": "x-nope", "partitions": [
        {"partition_index": 0, "offset": 0}]}], "timeout_ms": 10000}),
    ("find_coordinator_bad_key_type", FIND_COORDINATOR, 3, {"key": "g", "key_type": 5}),
    ("describe_groups_unknown", 15, 5, {"groups": ["x-nope-group"], "include_authorized_operations": False}),
    ("list_groups_unknown_state", 16, 4, {"states_filter": ["NoSuchState"]}),
    ("delete_groups_unknown", 42, 2, {"groups_names": ["x-nope-group"]}),
    ("describe_cluster", 60, 1, {"include_cluster_authorized_operations": False, "endpoint_type": 1}),
    ("offset_for_leader_epoch", 23, 4, {"replica_id": -1, "topics": [{"topic": "x-topic", "partitions": [
        {"partition": 0, "current_leader_epoch": -1, "leader_epoch": 0}]}]}),
    ("join_group_unknown_member", 11, 7, {"group_id": "x-join", "session_timeout_ms": 10000,
                                          "rebalance_timeout_ms": 10000, "member_id": "bogus",
                                          "group_instance_id": None, "protocol_type": "consumer",
                                          "protocols": [{"name": "range", "metadata": b""}], "reason": None}),
    ("heartbeat_unknown_group", 12, 4, {"group_id": "x-heartbeat", "generation_id": 1, "member_id": "m",
                                        "group_instance_id": None}),
    ("describe_producers", 61, 0, {"topics": [{"name": "x-topic", "partition_indexes": [0, 9]}]}),
    ("list_transactions", 66, 1, {"state_filters": [], "producer_id_filters": [], "duration_filter": -1}),
    ("describe_transactions_unknown", 65, 0, {"transactional_ids": ["x-nope-tx"]}),
    ("incremental_alter_configs_unknown_topic", 44, 1, {"resources": [{"resource_type": 2, "resource_name": "x-nope",
        "configs": [{"name": "retention.ms", "config_operation": 0, "value": "1000"}]}], "validate_only": False}),
    ("txn_offset_commit_v6_unknown_topic_id", 28, 6, {
        "transactional_id": "x-tx", "group_id": "x-txn-group", "producer_id": 1, "producer_epoch": 0,
        "generation_id_or_member_epoch": -1, "member_id": "", "group_instance_id": None, "topics": [
            {"topic_id": uuid.UUID(int=12345), "partitions": [{"partition_index": 0, "committed_offset": 1,
                                                                "committed_leader_epoch": -1, "committed_metadata": ""}]}]}),
    ("describe_topic_partitions", 75, 0, {"topics": [{"name": "x-nope"}, {"name": "x-topic"}],
                                          "response_partition_limit": 2000, "cursor": None}),
    # the limit reached at x-topic's end: the cursor names the next topic, known or not
    ("describe_topic_partitions_limit", 75, 0, {"topics": [{"name": "x-topic"}, {"name": "x-z-nope"}],
                                                "response_partition_limit": 1, "cursor": None}),
    ("describe_topic_partitions_cursor_not_named", 75, 0, {"topics": [{"name": "x-topic"}],
        "response_partition_limit": 2000, "cursor": {"topic_name": "x-nope", "partition_index": 0}}),
    ("describe_configs_unknown_topic", DESCRIBE_CONFIGS, 4, {"resources": [
        {"resource_type": 2, "resource_name": "x-nope", "configuration_keys": None}],
        "include_synonyms": False, "include_documentation": False}),
]  # fmt: skip


@pytest.fixture(scope="module")
def x_topic(ports) -> None:
    """The one-partition topic the requests above name (x-nope is never created)."""
    create_on_both(ports, "x-topic")


@pytest.mark.usefixtures("x_topic")
@pytest.mark.parametrize(("scenario", "api_key", "version", "body"), MORE_REQUESTS, ids=[r[0] for r in MORE_REQUESTS])
def test_more_requests(ports, scenario, api_key, version, body):
    if "group_id" in body:  # a group's coordinator must be loaded on both, or both say NOT_COORDINATOR
        for port in ports.values():
            eventually(lambda port=port: coordinator_ready(port, body["group_id"]), what="the group's coordinator")
    assert_same(scenario, *call_both(ports, api_key, version, body))
