"""ACL calls through real clients: confluent-kafka's AdminClient and kafka-python's KafkaAdminClient
against a broker without an authorizer. Before kbroker advertised DescribeAcls/CreateAcls/DeleteAcls
the clients refused with "requires broker version >= 0.11"; now each call reaches the broker and
gets Kafka's answer for a broker without an authorizer, SECURITY_DISABLED (which librdkafka drops
for DescribeAcls, as it does against Kafka).
"""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

TIMEOUT_S = 15


@pytest.fixture(scope="module")
def kbroker(module_broker_factory):
    return module_broker_factory()


@pytest.fixture
def admin(kbroker):
    return AdminClient({"bootstrap.servers": kbroker.bootstrap})


def any_topic_acl() -> AclBindingFilter:
    return AclBindingFilter(ResourceType.TOPIC, None, ResourcePatternType.ANY, None, None, AclOperation.ANY,
                            AclPermissionType.ANY)


def write_orders_acl() -> AclBinding:
    return AclBinding(ResourceType.TOPIC, "orders", ResourcePatternType.LITERAL, "User:alice", "*",
                      AclOperation.WRITE, AclPermissionType.ALLOW)


def security_disabled(future) -> KafkaError:
    with pytest.raises(KafkaException) as raised:
        future.result(timeout=TIMEOUT_S)
    error = raised.value.args[0]
    assert error.code() == KafkaError.SECURITY_DISABLED, error
    return error


def test_confluent_describe_acls_lists_nothing(admin):
    """librdkafka reads DescribeAcls' top-level error code and drops it
    (rd_kafka_DescribeAclsResponse_parse returns NO_ERROR whatever it read), so against Kafka
    without an authorizer, as here, the call succeeds with no bindings. The SECURITY_DISABLED on
    the wire is checked in tests/test_acl_apis.py; before kbroker served the API, this call failed."""
    assert admin.describe_acls(any_topic_acl(), request_timeout=TIMEOUT_S).result(timeout=TIMEOUT_S) == []


def test_confluent_create_acls_is_security_disabled(admin):
    [future] = admin.create_acls([write_orders_acl()], request_timeout=TIMEOUT_S).values()

    assert "No Authorizer is configured." in security_disabled(future).str()


def test_confluent_delete_acls_is_security_disabled(admin):
    [future] = admin.delete_acls([any_topic_acl()], request_timeout=TIMEOUT_S).values()

    assert "No Authorizer is configured." in security_disabled(future).str()


def test_kafka_python_admin_sees_security_disabled(kbroker):
    from kafka.admin import (
        ACL,
        ACLFilter,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        KafkaAdminClient,
        ResourcePattern,
        ResourcePatternFilter,
    )
    from kafka.admin import ResourceType as KpResourceType
    from kafka.errors import SecurityDisabledError

    topics = ResourcePatternFilter(KpResourceType.TOPIC, None, ACLResourcePatternType.ANY)
    acl_filter = ACLFilter("User:alice", "*", ACLOperation.ANY, ACLPermissionType.ANY, topics)
    acl = ACL("User:alice", "*", ACLOperation.WRITE, ACLPermissionType.ALLOW,
              ResourcePattern(KpResourceType.TOPIC, "orders", ACLResourcePatternType.LITERAL))
    client = KafkaAdminClient(bootstrap_servers=kbroker.bootstrap, request_timeout_ms=TIMEOUT_S * 1000)
    try:
        with pytest.raises(SecurityDisabledError, match="No Authorizer is configured on the broker"):
            client.describe_acls(acl_filter)
        assert client.create_acls([acl]) == {"succeeded": [], "failed": [SecurityDisabledError]}
        [(_, matched, error)] = client.delete_acls([acl_filter])
    finally:
        client.close()

    assert (matched, error) == ([], SecurityDisabledError)
