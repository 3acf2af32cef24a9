"""DescribeClientQuotas (48) and AlterClientQuotas (49) over raw sockets against a kbroker
subprocess, and the throttling a client sees: throttle_time_ms in Produce answers once the
client id's producer_byte_rate is exceeded, the connection muted for that time (KIP-219: the
answer first), nothing once the quota is removed (no restart), and request_percentage on other
APIs."""

from __future__ import annotations

import time

import pytest

from kbroker.protocol.api_keys import ApiKey
from kbroker.testing.batches import producer_batch
from kbroker.testing.raw_client import RawClient, advertised_api_keys, create_topic, produce_body
from kbroker.testing.waiting import eventually

CLIENT_ID = "data-path-tests"  # RawClient's client id
INVALID_REQUEST, CLUSTER_AUTHORIZATION_FAILED = 42, 31


@pytest.fixture(scope="module")
def kbroker(module_broker_factory):
    # Two one-second samples: a rate is measured over about a second, so tests need little data.
    return module_broker_factory("quota.window.num=2", "quota.window.size.seconds=1", "controller.quota.window.num=2")


def alter(port: int, entity: dict[str, str | None], version: int = 1, validate_only: bool = False,
          **ops: float | None) -> dict:
    body = {"entries": [{"entity": [{"entity_type": t, "entity_name": n} for t, n in entity.items()],
                         "ops": [{"key": k, "value": v or 0.0, "remove": v is None} for k, v in ops.items()]}],
            "validate_only": validate_only}
    with RawClient(port) as client:
        return client.call(ApiKey.ALTER_CLIENT_QUOTAS, version, body)


def describe(port: int, components: list[tuple[str, int, str | None]], strict: bool = True, version: int = 1) -> dict:
    body = {"components": [{"entity_type": t, "match_type": m, "match": n} for t, m, n in components], "strict": strict}
    with RawClient(port) as client:
        return client.call(ApiKey.DESCRIBE_CLIENT_QUOTAS, version, body)


def test_the_quota_apis_are_advertised_from_0_to_1(kbroker):
    advertised = advertised_api_keys(kbroker.port)

    assert advertised.get(48) == (0, 1) and advertised.get(49) == (0, 1)


@pytest.mark.parametrize("version", [0, 1])
def test_alter_then_describe_a_user_and_client_quota(kbroker, version):
    user = f"user-v{version}"
    answer = alter(kbroker.port, {"user": user, "client-id": "app"}, version,
                   producer_byte_rate=1048576.0, request_percentage=50.0)
    assert answer["entries"] == [{"error_code": 0, "error_message": None, "entity": [
        {"entity_type": "user", "entity_name": user}, {"entity_type": "client-id", "entity_name": "app"}]}]

    described = describe(kbroker.port, [("user", 0, user), ("client-id", 0, "app")], version=version)

    assert described["error_code"] == 0
    assert described["entries"] == [{
        "entity": [{"entity_type": "user", "entity_name": user}, {"entity_type": "client-id", "entity_name": "app"}],
        "values": [{"key": "producer_byte_rate", "value": 1048576.0}, {"key": "request_percentage", "value": 50.0}]}]


def test_defaults_are_null_names(kbroker):
    assert alter(kbroker.port, {"user": None}, consumer_byte_rate=4096.0)["entries"][0]["error_code"] == 0

    described = describe(kbroker.port, [("user", 1, None)])

    assert described["entries"] == [{"entity": [{"entity_type": "user", "entity_name": None}],
                                     "values": [{"key": "consumer_byte_rate", "value": 4096.0}]}]
    alter(kbroker.port, {"user": None}, consumer_byte_rate=None)
    assert describe(kbroker.port, [("user", 1, None)])["entries"] == []


def test_validation_errors_are_kafkas(kbroker):
    answer = alter(kbroker.port, {"user": "v"}, producer_byte_rate=10.5)
    assert answer["entries"][0]["error_code"] == INVALID_REQUEST
    assert answer["entries"][0]["error_message"] == "Configuration producer_byte_rate must be a LONG value"
    assert alter(kbroker.port, {"user": "v"}, bogus=1.0)["entries"][0]["error_message"] == \
        "Invalid configuration key bogus"
    assert alter(kbroker.port, {"user": "v"}, validate_only=True, producer_byte_rate=10.0)["entries"][0]["error_code"] == 0
    assert describe(kbroker.port, [("user", 0, "v")])["entries"] == []
    refused = describe(kbroker.port, [("user", 0, "a"), ("user", 0, "b")])
    assert (refused["error_code"], refused["error_message"]) == (
        INVALID_REQUEST, "Duplicate user filter component entity type")


def produce_answer(client: RawClient, topic: str, size: int) -> dict:
    batch = producer_batch([b"x" * size])
    return client.call(ApiKey.PRODUCE, 9, produce_body(topic, 0, bytes(batch)))


def test_a_producer_over_its_quota_is_throttled_and_muted_until_it_is_removed(kbroker):
    topic = "quota-produce"
    create_topic(kbroker.port, topic)
    alter(kbroker.port, {"client-id": CLIENT_ID}, producer_byte_rate=100_000.0)
    with RawClient(kbroker.port) as client:
        first = produce_answer(client, topic, 300_000)  # three seconds' worth in one request
        assert first["responses"][0]["partition_responses"][0]["error_code"] == 0  # still written
        throttle_ms = first["throttle_time_ms"]
        assert throttle_ms > 500  # (300 KB/s - 100 KB/s) / 100 KB/s x ~1 s window

        # Muted: the next request is not even read until the throttle time has passed.
        sent = time.monotonic()
        client.call(ApiKey.API_VERSIONS, 0, {})
        assert time.monotonic() - sent >= throttle_ms / 1000 * 0.9

    alter(kbroker.port, {"client-id": CLIENT_ID}, producer_byte_rate=None)  # takes effect at once
    with RawClient(kbroker.port) as client:
        assert produce_answer(client, topic, 300_000)["throttle_time_ms"] == 0


def test_request_percentage_throttles_other_apis(kbroker):
    alter(kbroker.port, {"client-id": CLIENT_ID}, request_percentage=0.01)
    try:
        with RawClient(kbroker.port) as client:
            def throttled() -> int:
                return client.call(ApiKey.METADATA, 12, {"topics": None, "allow_auto_topic_creation": False,
                                                          "include_topic_authorized_operations": False})["throttle_time_ms"]

            assert eventually(throttled, timeout=20) > 0
    finally:
        alter(kbroker.port, {"client-id": CLIENT_ID}, request_percentage=None)


def test_the_cluster_rights_are_kafkas(broker_factory):
    broker = broker_factory("authorizer.class.name=kafka.security.authorizer.AclAuthorizer")
    answer = alter(broker.port, {"user": "x"}, producer_byte_rate=10.0)
    assert answer["entries"] == [{"error_code": CLUSTER_AUTHORIZATION_FAILED, "error_message": None,
                                  "entity": [{"entity_type": "user", "entity_name": "x"}]}]
    assert describe(broker.port, [])["error_code"] == CLUSTER_AUTHORIZATION_FAILED

    # A principal with the rights (here a super user) is served.
    super_broker = broker_factory("authorizer.class.name=kafka.security.authorizer.AclAuthorizer",
                                  "super.users=User:ANONYMOUS")
    assert alter(super_broker.port, {"user": "x"}, producer_byte_rate=10.0)["entries"][0]["error_code"] == 0
    assert describe(super_broker.port, [], strict=False)["entries"] == [{"entity": [{"entity_type": "user", "entity_name": "x"}],
                                                            "values": [{"key": "producer_byte_rate", "value": 10.0}]}]


def create_topics(port: int, names: list[str], version: int, partitions: int = 4) -> dict:
    body = {"topics": [{"name": n, "num_partitions": partitions, "replication_factor": 1, "assignments": [],
                        "configs": []} for n in names], "timeout_ms": 10000, "validate_only": False}
    with RawClient(port) as client:
        return client.call(ApiKey.CREATE_TOPICS, version, body)


def test_controller_mutation_rate_refuses_topics_from_v6_and_throttles_before(kbroker):
    # 1 partition a second with quota.window.num=2: a burst of 1 partition, then 1 a second.
    alter(kbroker.port, {"client-id": CLIENT_ID}, controller_mutation_rate=1.0)
    try:
        answer = create_topics(kbroker.port, ["cm-a", "cm-b"], version=6)
        errors = [t["error_code"] for t in answer["topics"]]
        assert errors == [0, 89]  # the first spends 4 tokens (a debt); the second is refused
        assert answer["topics"][1]["error_message"] == "The throttling quota has been exceeded."
        assert answer["throttle_time_ms"] > 0

        old = create_topics(kbroker.port, ["cm-c"], version=5)  # permissive: created, then throttled
        assert old["topics"][0]["error_code"] == 0 and old["throttle_time_ms"] > 0
    finally:
        alter(kbroker.port, {"client-id": CLIENT_ID}, controller_mutation_rate=None)


def test_a_plaintext_client_is_the_user_anonymous(kbroker):
    topic = "quota-anonymous"
    create_topic(kbroker.port, topic)
    alter(kbroker.port, {"user": "ANONYMOUS"}, producer_byte_rate=100_000.0)
    try:
        with RawClient(kbroker.port) as client:
            assert produce_answer(client, topic, 300_000)["throttle_time_ms"] > 0
    finally:
        alter(kbroker.port, {"user": "ANONYMOUS"}, producer_byte_rate=None)


@pytest.mark.parametrize("version", [0, 1])
def test_ip_entities_alter_and_describe(kbroker, version):
    ip = f"10.9.0.{version + 1}"
    assert alter(kbroker.port, {"ip": ip}, version, connection_creation_rate=30.0)["entries"][0]["error_code"] == 0

    described = describe(kbroker.port, [("ip", 0, ip)], version=version)

    assert described["error_code"] == 0
    assert described["entries"] == [{"entity": [{"entity_type": "ip", "entity_name": ip}],
                                     "values": [{"key": "connection_creation_rate", "value": 30.0}]}]
    mixed = alter(kbroker.port, {"ip": ip, "client-id": "c"}, version, connection_creation_rate=1.0)["entries"][0]
    assert (mixed["error_code"], mixed["error_message"]) == (INVALID_REQUEST, "Invalid quota entity combination, "
                                                             "IP entity should not be used with user/client ID entity.")
    alter(kbroker.port, {"ip": ip}, version, connection_creation_rate=None)
    assert describe(kbroker.port, [("ip", 0, ip)], version=version)["entries"] == []
