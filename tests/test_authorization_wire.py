"""Kafka's authorization answers over raw sockets, from a broker whose AclAuthorizer
(allow.everyone.if.no.acl.found=false) grants User:ANONYMOUS nothing but DESCRIBE on topics named
auto*: the ACL APIs, the inter-broker APIs, Metadata, FindCoordinator, InitProducerId, Produce,
CreateTopics, DescribeConfigs, the SCRAM credential APIs, the log dir APIs and the KIP-848 group APIs each
answer with the error KafkaApis gives."""

from __future__ import annotations

import json
import uuid

import pytest

from kbroker.metadata.znode_store import EmbeddedZNodeStore
from kbroker.testing.batches import producer_batch
from kbroker.testing.raw_client import RawClient

TOPIC_AUTHORIZATION_FAILED, GROUP_AUTHORIZATION_FAILED, CLUSTER_AUTHORIZATION_FAILED = 29, 30, 31
TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53
ZERO = uuid.UUID(int=0)


@pytest.fixture(scope="module")
def kbroker(module_broker_factory):
    broker = module_broker_factory.start("authorizer.class.name=kafka.security.authorizer.AclAuthorizer",
                                         "allow.everyone.if.no.acl.found=false", start=False)
    store = EmbeddedZNodeStore(str(broker.log_dir))
    store.create("/kafka-acl-extended/prefixed/Topic/auto", json.dumps({"version": 1, "acls": [
        {"principal": "User:ANONYMOUS", "permissionType": "Allow", "operation": "Describe", "host": "*"}]}).encode(),
        makepath=True)
    store.close()
    return broker.start()


def call(broker, api_key: int, version: int, body: dict) -> dict:
    with RawClient(broker.port) as client:
        return client.call(api_key, version, body)


def acl_filter() -> dict:
    return {"resource_type_filter": 1, "resource_name_filter": None, "pattern_type_filter": 1,
            "principal_filter": None, "host_filter": None, "operation": 1, "permission_type": 1}


def test_acl_apis_need_the_cluster(kbroker):
    assert call(kbroker, 29, 3, acl_filter())["error_code"] == CLUSTER_AUTHORIZATION_FAILED
    creation = {"resource_type": 2, "resource_name": "t", "resource_pattern_type": 3, "principal": "User:x",
                "host": "*", "operation": 3, "permission_type": 3}
    [result] = call(kbroker, 30, 3, {"creations": [creation]})["results"]
    assert result["error_code"] == CLUSTER_AUTHORIZATION_FAILED
    [result] = call(kbroker, 31, 3, {"filters": [acl_filter()]})["filter_results"]
    assert result["error_code"] == CLUSTER_AUTHORIZATION_FAILED


def test_scram_credential_apis_need_the_cluster(kbroker):
    described = call(kbroker, 50, 0, {"users": [{"name": "carol"}, {"name": "dave"}]})
    assert (described["error_code"], described["error_message"]) == (CLUSTER_AUTHORIZATION_FAILED, None)
    # one result per user named, without the name: Kafka's getErrorResponse sets only the code
    assert [(r["user"], r["error_code"]) for r in described["results"]] == [("", CLUSTER_AUTHORIZATION_FAILED)] * 2
    upsertion = {"name": "dave", "mechanism": 1, "iterations": 4096, "salt": b"s" * 16, "salted_password": b"p" * 32}
    altered = call(kbroker, 51, 0, {"deletions": [{"name": "carol", "mechanism": 2}, {"name": "dave", "mechanism": 2}],
                                    "upsertions": [upsertion]})
    assert [(r["user"], r["error_code"], r["error_message"]) for r in altered["results"]] == [  # each once, sorted
        ("carol", CLUSTER_AUTHORIZATION_FAILED, None), ("dave", CLUSTER_AUTHORIZATION_FAILED, None)]
    every = call(kbroker, 50, 0, {"users": None})
    assert every["error_code"] == CLUSTER_AUTHORIZATION_FAILED and every["results"] == []


def test_inter_broker_apis_need_cluster_action(kbroker):
    answer = call(kbroker, 6, 7, {"controller_id": 5, "controller_epoch": 1, "broker_epoch": 1,
                                  "topic_states": [], "live_brokers": []})
    assert answer["error_code"] == CLUSTER_AUTHORIZATION_FAILED
    answer = call(kbroker, 7, 3, {"broker_id": 0, "broker_epoch": 1})
    assert answer["error_code"] == CLUSTER_AUTHORIZATION_FAILED


def test_metadata_hides_undescribable_topics_and_refuses_auto_creation_without_create(kbroker):
    everything = call(kbroker, 3, 12, {"topics": None, "allow_auto_topic_creation": False,
                                       "include_topic_authorized_operations": False})
    assert everything["topics"] == []
    answer = call(kbroker, 3, 12, {"topics": [{"name": "secret", "topic_id": ZERO},
                                              {"name": "auto-orders", "topic_id": ZERO}],
                                   "allow_auto_topic_creation": True, "include_topic_authorized_operations": False})
    assert [(t["name"], t["error_code"]) for t in answer["topics"]] == [
        ("secret", TOPIC_AUTHORIZATION_FAILED), ("auto-orders", TOPIC_AUTHORIZATION_FAILED)]
    answer = call(kbroker, 3, 12, {"topics": [{"name": "auto-orders", "topic_id": ZERO}],
                                   "allow_auto_topic_creation": False, "include_topic_authorized_operations": False})
    assert answer["topics"][0]["error_code"] == 3  # described, not created: UNKNOWN_TOPIC_OR_PARTITION


def test_find_coordinator_needs_describe(kbroker):
    groups = call(kbroker, 10, 4, {"key_type": 0, "coordinator_keys": ["g"]})["coordinators"]
    txns = call(kbroker, 10, 4, {"key_type": 1, "coordinator_keys": ["tx"]})["coordinators"]
    assert [groups[0]["error_code"], txns[0]["error_code"]] == [GROUP_AUTHORIZATION_FAILED,
                                                                 TRANSACTIONAL_ID_AUTHORIZATION_FAILED]


def test_init_producer_id_and_transactional_produce(kbroker):
    body = {"transactional_id": None, "transaction_timeout_ms": 60000, "producer_id": -1, "producer_epoch": -1}
    assert call(kbroker, 22, 4, body)["error_code"] == CLUSTER_AUTHORIZATION_FAILED
    assert call(kbroker, 22, 4, {**body, "transactional_id": "tx"})["error_code"] == \
        TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    answer = call(kbroker, 0, 9, {"transactional_id": "tx", "acks": 1, "timeout_ms": 1000, "topic_data": [
        {"name": "auto-x", "partition_data": [{"index": 0, "records": None}]}]})
    assert answer["responses"][0]["partition_responses"][0]["error_code"] == TRANSACTIONAL_ID_AUTHORIZATION_FAILED


def test_transactional_batches_without_a_transactional_id_are_refused(kbroker):
    batch = producer_batch([b"v"], producer_id=7, producer_epoch=0, base_sequence=0, transactional=True)
    answer = call(kbroker, 0, 9, {"transactional_id": None, "acks": 1, "timeout_ms": 1000, "topic_data": [
        {"name": "auto-x", "partition_data": [{"index": 0, "records": bytes(batch)}]}]})
    assert answer["responses"][0]["partition_responses"][0]["error_code"] == TRANSACTIONAL_ID_AUTHORIZATION_FAILED


def test_create_topics_and_describe_configs(kbroker):
    [result] = call(kbroker, 19, 7, {"topics": [{"name": "auto-new", "num_partitions": 1, "replication_factor": 1,
                                                 "assignments": [], "configs": []}],
                                     "timeout_ms": 5000, "validate_only": False})["topics"]
    assert (result["error_code"], result["error_message"]) == (TOPIC_AUTHORIZATION_FAILED, "Authorization failed.")
    answer = call(kbroker, 32, 4, {"resources": [{"resource_type": 4, "resource_name": "0", "configuration_keys": None},
                                                 {"resource_type": 2, "resource_name": "auto-x",
                                                  "configuration_keys": None}],
                                   "include_synonyms": False, "include_documentation": False})
    assert [r["error_code"] for r in answer["results"]] == [CLUSTER_AUTHORIZATION_FAILED, TOPIC_AUTHORIZATION_FAILED]


def test_elect_leaders_names_each_partition_refused(kbroker):
    answer = call(kbroker, 43, 2, {"election_type": 0, "topic_partitions": [{"topic": "t", "partitions": [0, 1]}],
                                   "timeout_ms": 1000})
    assert answer["error_code"] == CLUSTER_AUTHORIZATION_FAILED
    [result] = answer["replica_election_results"]
    assert [p["error_code"] for p in result["partition_result"]] == [CLUSTER_AUTHORIZATION_FAILED] * 2


def test_log_dir_apis_need_the_cluster(kbroker):
    """AlterReplicaLogDirs needs ALTER (each partition refused, no top-level code), DescribeLogDirs
    DESCRIBE (a top-level refusal, no dirs)."""
    answer = call(kbroker, 34, 2, {"dirs": [{"path": str(kbroker.log_dir), "topics": [
        {"name": "t", "partitions": [0, 1]}]}]})
    assert [(r["topic_name"], [p["error_code"] for p in r["partitions"]]) for r in answer["results"]] == \
        [("t", [CLUSTER_AUTHORIZATION_FAILED] * 2)]
    described = call(kbroker, 35, 4, {"topics": None})
    assert (described["error_code"], described["results"]) == (CLUSTER_AUTHORIZATION_FAILED, [])


def test_kip848_group_apis_need_the_group(kbroker):
    beat = call(kbroker, 68, 1, {"group_id": "g", "member_id": "m", "member_epoch": 0, "instance_id": None,
                                 "rack_id": None, "rebalance_timeout_ms": 30000, "subscribed_topic_names": ["t"],
                                 "subscribed_topic_regex": None, "server_assignor": None, "topic_partitions": []})
    assert beat["error_code"] == GROUP_AUTHORIZATION_FAILED
    [described] = call(kbroker, 69, 1, {"group_ids": ["g"], "include_authorized_operations": True})["groups"]
    assert described["error_code"] == GROUP_AUTHORIZATION_FAILED
