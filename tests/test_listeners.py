"""Several listeners on one broker: each client is told the addresses of the listener it came in on.

A real single-node broker with a PLAINTEXT listener and a custom-named CLIENTS listener
advertised under another host name. Metadata, DescribeCluster and FindCoordinator over each
listener answer with that listener's advertised endpoint (Kafka's RequestContext.listenerName),
and the broker serves Produce and Fetch on both. The three-broker case, with inter-broker and
control-plane listeners, is compat-tests/test_cluster_listeners.py.
"""

from __future__ import annotations

import pytest

from kbroker.testing.processes import free_port
from kbroker.testing.raw_client import (
    FIND_COORDINATOR,
    METADATA,
    RawClient,
    create_topic,
    produce,
    read_partition,
)
from kbroker.testing.records import build_batch
from kbroker.testing.waiting import eventually

DESCRIBE_CLUSTER = 60
ADVERTISED_HOST = "clients.example"


@pytest.fixture(scope="module")
def two_listeners(module_broker_factory):
    port, clients_port = free_port(), free_port()
    broker = module_broker_factory(
        f"listeners=PLAINTEXT://127.0.0.1:{port},CLIENTS://127.0.0.1:{clients_port}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{port},CLIENTS://{ADVERTISED_HOST}:{clients_port}",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CLIENTS:PLAINTEXT",
        port=port)
    return broker, {"PLAINTEXT": ("127.0.0.1", port), "CLIENTS": (ADVERTISED_HOST, clients_port)}


def bound_port(listeners: dict[str, tuple[str, int]], name: str) -> int:
    return listeners[name][1]


@pytest.mark.parametrize("listener", ["PLAINTEXT", "CLIENTS"])
def test_metadata_and_describe_cluster_name_the_listener_asked(two_listeners, listener):
    _, listeners = two_listeners
    with RawClient(bound_port(listeners, listener)) as client:
        metadata = client.call(METADATA, 12, {"topics": None, "allow_auto_topic_creation": False})
        cluster = client.call(DESCRIBE_CLUSTER, 0, {"include_cluster_authorized_operations": False})
    assert [(b["node_id"], b["host"], b["port"]) for b in metadata["brokers"]] == [(0, *listeners[listener])]
    assert [(b["broker_id"], b["host"], b["port"]) for b in cluster["brokers"]] == [(0, *listeners[listener])]


@pytest.mark.parametrize("listener", ["PLAINTEXT", "CLIENTS"])
def test_find_coordinator_names_the_listener_asked(two_listeners, listener):
    _, listeners = two_listeners

    def coordinator() -> dict | None:
        with RawClient(bound_port(listeners, listener)) as client:
            answer = client.call(FIND_COORDINATOR, 2, {"key": "g", "key_type": 0})
        return answer if answer["error_code"] == 0 else None

    answer = eventually(coordinator, what="a group coordinator")
    assert (answer["node_id"], answer["host"], answer["port"]) == (0, *listeners[listener])


def test_records_produced_on_one_listener_are_read_on_the_other(two_listeners):
    _, listeners = two_listeners
    create_topic(bound_port(listeners, "CLIENTS"), "across")
    with RawClient(bound_port(listeners, "CLIENTS")) as client:
        assert produce(client, "across", 0, build_batch([b"x", b"y"]))["error_code"] == 0
    high_watermark, records = read_partition(bound_port(listeners, "PLAINTEXT"), "across", 0)
    assert high_watermark == 2 and [r[2] for r in records] == [b"x", b"y"]
