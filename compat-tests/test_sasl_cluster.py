"""SASL in a 3-broker cluster with a real ZooKeeper (issue 12, SASL): every broker has a PLAINTEXT
listener (the harness's) and a SASL_PLAINTEXT one, and the brokers talk to each other over SASL
(security.inter.broker.protocol=SASL_PLAINTEXT, sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512).
The kill -9 test runs again on a cluster whose brokers talk SASL_SSL (TLS with host names checked
against the test CA's certificates, then SCRAM) among themselves and to the clients, with the ACL
authorizer on (allow.everyone.if.no.acl.found=false): the brokers' own SCRAM principal is in
super.users, so replication, the controller's requests and AlterPartition pass only through it.

- The brokers' own SCRAM credential is written straight into ZooKeeper before any broker starts,
  as `kafka-configs --zookeeper` does: replication (fetchers, AlterPartition, the controller's
  requests) only works if it is honoured.
- A SCRAM user created through one broker logs in on the others (the /config/changes notification).
- A broker killed with kill -9 loses no acknowledged record; restarted, it authenticates again and
  rejoins the ISR with identical logs.
- Sessions last connections.max.reauth.ms=4s: the brokers' own connections are replaced and the
  clients re-authenticate before theirs end, so no broker ever has to close an expired session.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    NewTopic,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)
from kazoo.client import KazooClient

from kbroker.security.scram import SCRAM_SHA_512, credential_from_password
from kbroker.testing.cluster import KafkaCluster
from kbroker.testing.processes import free_port
from kbroker.testing.raw_client import RawClient
from kbroker.testing.sasl import ADMIN, client_config, sasl_listener_overrides, sasl_login
from kbroker.testing.tls import STORE_PASSWORD, CertificateAuthority

pytestmark = pytest.mark.timeout(300)
REAUTH_MS = 4000  # many session lifetimes pass while the module runs
CLUSTER_OVERRIDES = (
    "zookeeper.session.timeout.ms=6000",
    "replica.fetch.backoff.ms=200",
    "controlled.shutdown.retry.backoff.ms=200",
    "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
    f"connections.max.reauth.ms={REAUTH_MS}",
)

# The brokers log in to each other as ADMIN's user, the one super user: nothing else is allowed.
STRICT_AUTHORIZER = ("authorizer.class.name=kafka.security.authorizer.AclAuthorizer",
                     "allow.everyone.if.no.acl.found=false", f"super.users=User:{ADMIN[0]}")


def write_credential_before_start(zookeeper: str, chroot: str, user: str, password: str) -> None:
    """/config/users/<user> as Kafka's tools write it, with no broker running."""
    credential = credential_from_password(SCRAM_SHA_512, password, 4096).to_config_value()
    zk = KazooClient(hosts=zookeeper, timeout=10)
    zk.start(timeout=10)
    try:
        zk.create(f"{chroot}/config/users/{user}",
                  json.dumps({"version": 1, "config": {"SCRAM-SHA-512": credential}}).encode(), makepath=True)
    finally:
        zk.stop()
        zk.close()


def start_cluster(zookeeper, launcher, protocol: str, tls_dir=None):
    """Three brokers whose SASL listener (named after `protocol`) is also their inter-broker one."""
    ports = {b: (free_port(), free_port()) for b in (1, 2, 3)}
    overrides = {b: tuple(sasl_listener_overrides(*p)) for b, p in ports.items()}
    client_tls: dict[str, str] = {}
    if protocol == "SASL_SSL":
        ca = CertificateAuthority(tls_dir)
        # The SASL settings of a listener named SASL_SSL (the default protocol map gives it that
        # protocol): the mechanisms and their JAAS entries, without the map sasl_listener_overrides
        # would add for a listener of another name.
        overrides = {b: tuple(o for o in sasl_listener_overrides(*p, listener="SASL_SSL")
                              if not o.startswith("listener.security.protocol.map="))
                     + tls_listener_overrides(ca, f"broker{b}") for b, p in ports.items()}
        client_tls = {"security.protocol": "SASL_SSL", "ssl.ca.location": str(ca.cert_pem)}
    common = (*CLUSTER_OVERRIDES, f"security.inter.broker.protocol={protocol}")
    if protocol == "SASL_SSL":
        common += STRICT_AUTHORIZER
    cluster = KafkaCluster(launcher, zookeeper, overrides=common,
                           broker_overrides=overrides, broker_ports={b: p[0] for b, p in ports.items()})
    write_credential_before_start(zookeeper, cluster.chroot, *ADMIN)
    cluster.sasl_ports = {b: p[1] for b, p in ports.items()}
    cluster.client_tls = client_tls
    return cluster


def tls_listener_overrides(ca: CertificateAuthority, name: str) -> tuple[str, ...]:
    identity = ca.issue(name)
    return ("listener.name.sasl_ssl.ssl.keystore.type=PKCS12",
            f"listener.name.sasl_ssl.ssl.keystore.location={identity.pkcs12}",
            f"listener.name.sasl_ssl.ssl.keystore.password={STORE_PASSWORD}",
            "listener.name.sasl_ssl.ssl.truststore.type=PEM",
            f"listener.name.sasl_ssl.ssl.truststore.location={ca.cert_pem}")


@pytest.fixture(scope="module")
def cluster(zookeeper, module_broker_factory):
    with start_cluster(zookeeper, module_broker_factory, "SASL_PLAINTEXT") as cluster:
        yield cluster


@pytest.fixture(scope="module")
def tls_cluster(zookeeper, module_broker_factory, tmp_path_factory):
    with start_cluster(zookeeper, module_broker_factory, "SASL_SSL", tmp_path_factory.mktemp("pki")) as cluster:
        yield cluster


def sasl_bootstrap(cluster: KafkaCluster, *broker_ids: int) -> str:
    return ",".join(f"127.0.0.1:{cluster.sasl_ports[b]}" for b in broker_ids or cluster.brokers)


def cluster_client_config(cluster: KafkaCluster, mechanism: str, user: str, password: str) -> dict[str, str]:
    return {**client_config(sasl_bootstrap(cluster), mechanism, user, password), **cluster.client_tls}


def admin(cluster: KafkaCluster, *broker_ids: int) -> AdminClient:
    return AdminClient({**client_config(sasl_bootstrap(cluster, *broker_ids), "PLAIN", *ADMIN), **cluster.client_tls})


def create_topic(cluster: KafkaCluster, topic: str) -> None:
    client = admin(cluster)
    client.create_topics([NewTopic(topic, 1, 3, config={"min.insync.replicas": "2"})])[topic].result(timeout=30)
    cluster.wait_for(lambda: len(cluster.isr(topic)) == 3, what=f"{topic}'s ISR to hold every broker")


def test_brokers_replicate_over_sasl_with_a_credential_written_before_start(cluster):
    topic = f"replicated-{uuid.uuid4().hex[:6]}"
    create_topic(cluster, topic)  # the ISR fills only if the followers' SCRAM logins succeed
    producer = Producer({**client_config(sasl_bootstrap(cluster), "SCRAM-SHA-512", *ADMIN), "acks": "all"})
    for i in range(200):
        producer.produce(topic, f"record-{i}".encode())
    assert producer.flush(30) == 0
    cluster.wait_for(lambda: cluster.logs_identical(topic), what="identical logs on every replica")
    registration = json.loads(cluster.zk.get(f"/brokers/ids/{cluster.leader(topic)}")[0])
    assert registration["listener_security_protocol_map"]["SASL_PLAINTEXT"] == "SASL_PLAINTEXT"


def test_a_user_created_through_one_broker_logs_in_on_the_others(cluster):
    user = f"user-{uuid.uuid4().hex[:6]}"
    client = admin(cluster, 1)
    upsertion = UserScramCredentialUpsertion(user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"pw")
    client.alter_user_scram_credentials([upsertion])[user].result(timeout=15)

    def logs_in(broker_id: int) -> bool:
        with RawClient(cluster.sasl_ports[broker_id]) as raw:
            return sasl_login(raw, "SCRAM-SHA-256", user, "pw")["error_code"] == 0

    for broker_id in (2, 3):
        cluster.wait_for(lambda b=broker_id: logs_in(b), timeout=10, what=f"{user} to log in on broker {broker_id}")


@pytest.mark.parametrize("which", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_a_kill_9_loses_no_acknowledged_record_and_the_broker_rejoins_over_sasl(request, which):
    cluster = request.getfixturevalue("cluster" if which == "SASL_PLAINTEXT" else "tls_cluster")
    topic = f"killed-{uuid.uuid4().hex[:6]}"
    create_topic(cluster, topic)
    config = cluster_client_config(cluster, "SCRAM-SHA-512", *ADMIN)
    producer = Producer({**config, "acks": "all", "enable.idempotence": True, "message.timeout.ms": 60000})
    acknowledged: list[str] = []

    def on_delivery(error, message) -> None:
        if error is None:
            acknowledged.append(message.value().decode())

    victim = cluster.leader(topic)
    for i in range(600):
        producer.produce(topic, f"v{i}".encode(), on_delivery=on_delivery)
        producer.poll(0)
        if i == 200:
            producer.flush(30)
            cluster.kill(victim)
        time.sleep(0.002)
    assert producer.flush(60) == 0
    assert len(acknowledged) == 600

    cluster.restart(victim)
    cluster.wait_for(lambda: victim in cluster.isr(topic), timeout=60, what=f"broker {victim} to rejoin the ISR")
    cluster.wait_for(lambda: cluster.logs_identical(topic), what="identical logs after the restart")

    # Read by assignment: no group, so no __consumer_offsets (RF 3) needed while a broker was down.
    consumer = Consumer({**config, "group.id": f"check-{topic}", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    received: list[str] = []
    deadline = time.monotonic() + 60
    while len(received) < len(acknowledged) and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and not message.error():
            received.append(message.value().decode())
    consumer.close()
    assert sorted(received) == sorted(acknowledged)
    assert not [b for b, broker in cluster.brokers.items() if "its SASL session expired" in broker.output()]
    if which == "SASL_SSL":  # the authorizer is on: a user without ACLs is refused what ADMIN did
        assert produce_error(cluster_client_config(cluster, "PLAIN", "alice", "alice-secret"), topic) == \
            KafkaError.TOPIC_AUTHORIZATION_FAILED


def produce_error(config: dict[str, str], topic: str) -> int | None:
    outcome: list[KafkaError | None] = []
    producer = Producer({**config, "message.timeout.ms": 10000})
    producer.produce(topic, b"v", on_delivery=lambda err, _msg: outcome.append(err))
    producer.flush(30)
    assert outcome, "no delivery report"
    return None if outcome[0] is None else outcome[0].code()
