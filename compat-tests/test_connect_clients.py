"""Every client connects and sees the same one-broker cluster: kcat, confluent-kafka, kafka-python,
aiokafka and KafkaJS, each through its public API, against a broker started with broker.id=1.

The cluster id they report is checked against the one in a raw Metadata v12 answer.
"""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from confluent_kafka.admin import AdminClient
from kafka.admin import KafkaAdminClient
from kafka.protocol.metadata import MetadataResponse

from kbroker.testing import wire
from kbroker.testing.tools import kcat_metadata, run_kafkajs

BROKER_ID = 1
TIMEOUT_S = 15


@pytest.fixture(scope="module")
def cluster(module_broker_factory):
    return module_broker_factory(f"broker.id={BROKER_ID}")


@pytest.fixture(scope="module")
def cluster_id(cluster) -> str:
    payload = wire.roundtrip(cluster.port, wire.metadata_request(3, 12))
    _, response = wire.decode_with_kafka_python(MetadataResponse, payload, 12)
    assert response.cluster_id, "Metadata v12 carries no cluster id"
    return response.cluster_id


def test_kcat_lists_the_broker(cluster):
    listing = kcat_metadata(cluster.bootstrap, "-m", str(TIMEOUT_S))

    assert [(b["id"], b["name"]) for b in listing["brokers"]] == [(BROKER_ID, cluster.bootstrap)]
    assert listing["controllerid"] == BROKER_ID
    assert listing["originating_broker"]["id"] == BROKER_ID


def confluent_admin(cluster):
    return AdminClient({"bootstrap.servers": cluster.bootstrap, "socket.timeout.ms": TIMEOUT_S * 1000})


def test_confluent_list_topics_returns_broker_and_cluster_id(cluster, cluster_id):
    metadata = confluent_admin(cluster).list_topics(timeout=TIMEOUT_S)

    assert metadata.cluster_id == cluster_id
    assert metadata.controller_id == BROKER_ID
    assert [(b.id, b.host, b.port) for b in metadata.brokers.values()] == [
        (BROKER_ID, "127.0.0.1", cluster.port)
    ]


def test_confluent_describe_cluster(cluster, cluster_id):
    admin = confluent_admin(cluster)  # keep a reference: the future dies with its client
    result = admin.describe_cluster(request_timeout=TIMEOUT_S).result(timeout=TIMEOUT_S)

    assert result.cluster_id == cluster_id
    assert (result.controller.id, result.controller.host, result.controller.port) == (
        BROKER_ID,
        "127.0.0.1",
        cluster.port,
    )
    assert [(n.id, n.host, n.port) for n in result.nodes] == [(BROKER_ID, "127.0.0.1", cluster.port)]


def test_kafka_python_describe_cluster(cluster, cluster_id):
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap, request_timeout_ms=TIMEOUT_S * 1000)
    try:
        description = admin.describe_cluster()
    finally:
        admin.close()

    assert description["cluster_id"] == cluster_id
    assert description["controller_id"] == BROKER_ID
    assert [(b["broker_id"], b["host"], b["port"]) for b in description["brokers"]] == [
        (BROKER_ID, "127.0.0.1", cluster.port)
    ]


def test_aiokafka_describe_cluster(cluster, cluster_id):
    async def describe() -> dict:
        admin = AIOKafkaAdminClient(bootstrap_servers=cluster.bootstrap, request_timeout_ms=TIMEOUT_S * 1000)
        await admin.start()
        try:
            return await admin.describe_cluster()
        finally:
            await admin.close()

    description = asyncio.run(describe())

    assert description["cluster_id"] == cluster_id
    assert description["controller_id"] == BROKER_ID
    assert [(b["node_id"], b["host"], b["port"]) for b in description["brokers"]] == [
        (BROKER_ID, "127.0.0.1", cluster.port)
    ]


def test_kafkajs_describe_cluster(cluster, cluster_id):
    description = run_kafkajs("describe_cluster.js", cluster.bootstrap)

    assert description["clusterId"] == cluster_id
    assert description["controller"] == BROKER_ID
    assert [(b["nodeId"], b["host"], b["port"]) for b in description["brokers"]] == [
        (BROKER_ID, "127.0.0.1", cluster.port)
    ]
