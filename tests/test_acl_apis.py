"""DescribeAcls, CreateAcls and DeleteAcls over raw sockets against a kbroker subprocess without
`authorizer.class.name`: they answer as Kafka 3.9 does without one (AclApis): SECURITY_DISABLED,
at the top of a DescribeAcls answer and once per creation or filter in the others, with Kafka's
messages. They are advertised in ApiVersions from 3.9's minimum (0) to 4.x's maximum (3); v2 and
v3 are flexible versions.
"""

from __future__ import annotations

import pytest

from kbroker.testing.raw_client import RawClient, advertised_api_keys

DESCRIBE_ACLS, CREATE_ACLS, DELETE_ACLS = 29, 30, 31
SECURITY_DISABLED = 54
TOPIC, GROUP = 2, 3
ANY, LITERAL, PREFIXED = 1, 3, 4
OP_ANY, OP_READ, OP_WRITE = 1, 3, 4
PERMISSION_ANY, ALLOW = 1, 3


@pytest.fixture(scope="module")
def kbroker(module_broker_factory):
    return module_broker_factory()


def acl_filter(pattern_type: int = ANY, resource_type: int = TOPIC, operation: int = OP_ANY) -> dict:
    return {"resource_type_filter": resource_type, "resource_name_filter": None, "pattern_type_filter": pattern_type,
            "principal_filter": None, "host_filter": None, "operation": operation,
            "permission_type": PERMISSION_ANY}


def acl_creation(name: str, pattern_type: int = LITERAL, operation: int = OP_WRITE) -> dict:
    return {"resource_type": TOPIC, "resource_name": name, "resource_pattern_type": pattern_type,
            "principal": "User:alice", "host": "*", "operation": operation, "permission_type": ALLOW}


def test_the_acl_apis_are_advertised_from_0_to_3(kbroker):
    advertised = advertised_api_keys(kbroker.port)

    assert [advertised.get(k) for k in (DESCRIBE_ACLS, CREATE_ACLS, DELETE_ACLS)] == [(0, 3)] * 3


@pytest.mark.parametrize("version", [0, 1, 2, 3])
def test_describe_acls_is_security_disabled(kbroker, version):
    with RawClient(kbroker.port) as client:
        answer = client.call(DESCRIBE_ACLS, version, acl_filter(pattern_type=LITERAL if version == 0 else ANY))

    assert answer == {"throttle_time_ms": 0, "error_code": SECURITY_DISABLED,
                      "error_message": "No Authorizer is configured on the broker", "resources": []}


@pytest.mark.parametrize("version", [0, 1, 2, 3])
def test_create_acls_answers_every_creation_security_disabled(kbroker, version):
    creations = [acl_creation("orders"), acl_creation("payments", operation=OP_READ)]
    if version >= 1:
        creations.append(acl_creation("pay", pattern_type=PREFIXED))
    with RawClient(kbroker.port) as client:
        answer = client.call(CREATE_ACLS, version, {"creations": creations})

    assert answer["results"] == [
        {"error_code": SECURITY_DISABLED, "error_message": "No Authorizer is configured."}] * len(creations)


@pytest.mark.parametrize("version", [0, 1, 2, 3])
def test_delete_acls_answers_every_filter_security_disabled(kbroker, version):
    filters = [acl_filter(pattern_type=LITERAL), acl_filter(pattern_type=LITERAL, resource_type=GROUP)]
    with RawClient(kbroker.port) as client:
        answer = client.call(DELETE_ACLS, version, {"filters": filters})

    assert answer["filter_results"] == [
        {"error_code": SECURITY_DISABLED, "error_message": "No Authorizer is configured.", "matching_acls": []}
    ] * len(filters)


def test_an_empty_create_or_delete_gets_an_empty_answer(kbroker):
    with RawClient(kbroker.port) as client:
        assert client.call(CREATE_ACLS, 3, {"creations": []})["results"] == []
        assert client.call(DELETE_ACLS, 3, {"filters": []})["filter_results"] == []


@pytest.mark.parametrize(
    ("api_key", "body"),
    [
        (DESCRIBE_ACLS, acl_filter(operation=0)),
        (CREATE_ACLS, {"creations": [acl_creation("orders", pattern_type=0)]}),
        (DELETE_ACLS, {"filters": [acl_filter(resource_type=0)]}),
    ],
    ids=["describe-unknown-operation", "create-unknown-pattern", "delete-unknown-resource"],
)
def test_an_unknown_code_closes_the_connection_as_kafka_does(kbroker, api_key, body):
    """Kafka cannot build such a request (IllegalArgumentException) and closes the connection."""
    with RawClient(kbroker.port) as client:
        client.send(api_key, 2, body)
        assert client.sock.recv(1) == b""

    with RawClient(kbroker.port) as client:  # the broker itself goes on serving
        assert client.call(DESCRIBE_ACLS, 3, acl_filter())["error_code"] == SECURITY_DISABLED

