"""Client quotas through the Java Admin client (kafka-clients 4.4.0 and 4.0.1), the one client
library with a quota API: alterClientQuotas and describeClientQuotas for a user, a client id,
both, the defaults and IPs (connection_creation_rate); Kafka's filters (exact, default, any; strict or not); validateOnly; the
client's exception for Kafka's INVALID_REQUEST; and a quota the Java producer then feels
(its throttle metrics report the broker's throttle_time_ms).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from java_driver import JAVA_CLIENT_VERSIONS, JavaDriver, JavaError, driver_for

from kbroker.testing.raw_client import create_topic

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def kbroker(module_broker_factory):
    return module_broker_factory("quota.window.num=2", "quota.window.size.seconds=1")


@pytest.fixture(scope="module", params=JAVA_CLIENT_VERSIONS)
def java(request, kbroker, tmp_path_factory) -> Iterator[JavaDriver]:
    yield from driver_for(request, kbroker.bootstrap, tmp_path_factory)


def test_alter_and_describe_quotas(java):
    user = f"java-{java.version.replace('.', '_')}"
    java.call("alter_client_quotas", entity=f"user:{user}", ops="producer_byte_rate:1048576;consumer_byte_rate:2048")
    java.call("alter_client_quotas", entity=f"user:{user};client-id:app", ops="request_percentage:25.5")
    java.call("alter_client_quotas", entity="client-id:<default>", ops="controller_mutation_rate:10")

    assert java.call("describe_client_quotas", components=f"user:{user}", strict="true") == {
        f"{{user={user}}}": {"consumer_byte_rate": 2048.0, "producer_byte_rate": 1048576.0}}
    assert java.call("describe_client_quotas", components=f"user:{user}") == {
        f"{{user={user}}}": {"consumer_byte_rate": 2048.0, "producer_byte_rate": 1048576.0},
        f"{{client-id=app, user={user}}}": {"request_percentage": 25.5}}
    assert java.call("describe_client_quotas", components="client-id:<default>", strict="true") == {
        "{client-id=null}": {"controller_mutation_rate": 10.0}}

    java.call("alter_client_quotas", entity=f"user:{user}", ops="producer_byte_rate:;consumer_byte_rate:")
    java.call("alter_client_quotas", entity=f"user:{user}", ops="producer_byte_rate:5", validate_only="true")
    assert java.call("describe_client_quotas", components=f"user:{user}", strict="true") == {}


def test_bad_alterations_are_the_clients_exceptions(java):
    with pytest.raises(JavaError) as fractional:
        java.call("alter_client_quotas", entity="user:x", ops="producer_byte_rate:1.5")
    assert fractional.value.kind == "InvalidRequestException"
    assert "must be a LONG value" in fractional.value.message
    with pytest.raises(JavaError) as unknown:
        java.call("alter_client_quotas", entity="user:x", ops="bogus_rate:1")
    assert unknown.value.kind == "InvalidRequestException"


def test_a_java_producer_feels_its_quota(java, kbroker):
    topic = f"java-quota-{java.version.replace('.', '_')}"
    create_topic(kbroker.port, topic)
    client_id = f"java-producer-{java.version.replace('.', '_')}"
    java.call("alter_client_quotas", entity=f"client-id:{client_id}", ops="producer_byte_rate:100000")
    java.call("producer", name="p", **{"client.id": client_id})
    java.call("send", name="p", topic=topic, count=60, size=10_000)  # 600 kB against 100 kB/s
    metrics = java.call("producer_metrics", name="p", group="producer-metrics", names="produce-throttle-time-max")
    assert metrics["produce-throttle-time-max"] > 0
    java.call("close_producer", name="p")


def test_ip_connection_rate_quotas(java):
    ip = "10.7.0.1" if java.version.startswith("4.4") else "10.7.0.2"
    java.call("alter_client_quotas", entity=f"ip:{ip}", ops="connection_creation_rate:50")

    assert java.call("describe_client_quotas", components=f"ip:{ip}", strict="true") == {
        f"{{ip={ip}}}": {"connection_creation_rate": 50.0}}
    with pytest.raises(JavaError) as mixed:
        java.call("alter_client_quotas", entity=f"ip:{ip};user:x", ops="connection_creation_rate:5")
    assert mixed.value.kind == "InvalidRequestException"
    assert "IP entity should not be used with user/client ID entity" in mixed.value.message
    with pytest.raises(JavaError) as wrong_key:
        java.call("alter_client_quotas", entity=f"ip:{ip}", ops="producer_byte_rate:5")
    assert wrong_key.value.kind == "InvalidRequestException"

    java.call("alter_client_quotas", entity=f"ip:{ip}", ops="connection_creation_rate:")
    assert java.call("describe_client_quotas", components=f"ip:{ip}", strict="true") == {}
