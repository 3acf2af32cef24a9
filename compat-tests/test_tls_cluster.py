"""Brokers talking to each other over TLS (issue 12): three kbroker processes, a real ZooKeeper,
`security.inter.broker.protocol=SSL`.

Each broker listens on PLAINTEXT (the clients and the test harness) and SSL (JKS key and trust
stores written by the JDK's keytool, under Kafka's default store types; PKCS12 ones where no JDK
is installed, which the JKS type reads too; `ssl.client.auth=required`, host names checked: the
default `ssl.endpoint.identification.algorithm=https`). Replica fetchers, AlterPartition, the
controller's requests and controlled shutdown can only reach the other brokers through their
SSL listeners, presenting their own certificates. An RF=3 topic replicates, and a kill -9 of its
leader while an idempotent acks=all producer runs loses and duplicates nothing
(test_cluster_replication's checks), as on PLAINTEXT.
"""

from __future__ import annotations

import json

import pytest
from test_cluster_replication import BackgroundProducer, assert_exactly_once_in_order, create_topic

from kbroker.testing.cluster import KafkaCluster
from kbroker.testing.processes import free_port
from kbroker.testing.tls import (
    STORE_PASSWORD,
    CertificateAuthority,
    jks_truststore,
    keytool_unavailable_reason,
    to_jks,
)

pytestmark = pytest.mark.timeout(300)
BROKERS = range(1, 4)


@pytest.fixture(scope="module")
def tls_cluster(zookeeper, module_broker_factory, tmp_path_factory):
    directory = tmp_path_factory.mktemp("cluster-pki")
    ca = CertificateAuthority(directory)
    jks = keytool_unavailable_reason() is None
    trust_store = jks_truststore(ca.cert_pem, directory / "trust.jks", STORE_PASSWORD) if jks else ca.truststore_pkcs12
    ports = {b: (free_port(), free_port()) for b in BROKERS}
    common = (
        "zookeeper.session.timeout.ms=6000", "replica.fetch.backoff.ms=200",
        "controlled.shutdown.retry.backoff.ms=200", "auto.create.topics.enable=false",
        "security.inter.broker.protocol=SSL", "ssl.client.auth=required",
        f"ssl.truststore.location={trust_store}", f"ssl.truststore.password={STORE_PASSWORD}",
        f"ssl.keystore.password={STORE_PASSWORD}",
    )
    per_broker = {}
    for broker_id, (plain, tls) in ports.items():
        listeners = f"PLAINTEXT://127.0.0.1:{plain},SSL://127.0.0.1:{tls}"
        identity = ca.issue(f"broker{broker_id}")
        key_store = to_jks(identity.pkcs12, directory / f"broker{broker_id}.jks", STORE_PASSWORD) if jks \
            else identity.pkcs12
        per_broker[broker_id] = (f"listeners={listeners}", f"advertised.listeners={listeners}",
                                 f"ssl.keystore.location={key_store}")
    with KafkaCluster(module_broker_factory, zookeeper, overrides=common, broker_overrides=per_broker,
                      broker_ports={b: p for b, (p, _) in ports.items()}) as cluster:
        cluster.tls_ports = {b: tls for b, (_, tls) in ports.items()}
        yield cluster


def test_brokers_register_their_ssl_endpoints(tls_cluster):
    for broker_id, port in tls_cluster.tls_ports.items():
        registration = json.loads(tls_cluster.zk.get(f"/brokers/ids/{broker_id}")[0])
        assert f"SSL://127.0.0.1:{port}" in registration["endpoints"]
        assert registration["listener_security_protocol_map"]["SSL"] == "SSL"


def test_replication_over_tls_survives_a_leader_kill(tls_cluster):
    topic = "tls-failover"
    create_topic(tls_cluster, topic)
    with BackgroundProducer(tls_cluster, topic) as background:
        background.wait_for_more(300, "acknowledged records before the kill")
        tls_cluster.wait_for(lambda: sorted(tls_cluster.isr(topic)) == [1, 2, 3],
                             what="both followers in the ISR: they fetch over TLS")
        victim = tls_cluster.leader(topic)
        tls_cluster.kill(victim)
        tls_cluster.wait_for(lambda: tls_cluster.leader(topic) not in (victim, -1), what="a new leader")
        background.wait_for_more(300, "records acknowledged by the new leader")
        tls_cluster.restart(victim)
        tls_cluster.wait_for(lambda: victim in tls_cluster.isr(topic), what="the killed broker to rejoin the ISR")
        background.wait_for_more(100, "records acknowledged after the rejoin")
    assert_exactly_once_in_order(tls_cluster, topic, background)
    for broker in tls_cluster.brokers.values():
        output = broker.output()
        assert "TLS handshake failed" not in output and "Traceback" not in output
