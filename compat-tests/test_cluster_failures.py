"""Brokers stopping and losing their ZooKeeper session in a three-broker cluster (real ZooKeeper,
kbroker/testing/cluster.py) while an idempotent acks=all confluent-kafka producer writes to an RF=3,
min.insync.replicas=2 topic (test_cluster_replication.BackgroundProducer).

- SIGTERM of the partition leader runs a controlled shutdown: another broker's Metadata names a
  new leader while the stopping broker is still running and still registered in ZooKeeper (an
  unclean stop moves leadership only once its registration is gone), the producer sees no
  error, the process exits 0, and every acknowledged record is read back once, in order.
- A follower paused with SIGSTOP past zookeeper.session.timeout.ms loses its session: the
  controller takes it out of the ISR and producing goes on; after SIGCONT it registers again
  (a new /brokers/ids/<id> czxid: a new broker epoch), rejoins the ISR and catches up.
- The same for the controller: another broker takes /controller with a higher epoch, and the
  old controller comes back as an ordinary broker (NOT_CONTROLLER to controller requests).
Expected behaviour is Apache Kafka's (KAFKA-FACTS.md §1-3).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from kafka.admin import KafkaAdminClient, NewTopic
from test_cluster_replication import (
    CLUSTER_OVERRIDES,
    BackgroundProducer,
    assert_exactly_once_in_order,
    create_topic,
)

from kbroker.testing import wire
from kbroker.testing.cluster import KafkaCluster
from kbroker.testing.raw_client import raw_call
from kbroker.testing.records import stored_records

TIMEOUT_S = 30
# Three brokers, ZooKeeper, kills and session expiries: more than pyproject's default per test.
pytestmark = pytest.mark.timeout(300)
SESSION_TIMEOUT_S = 6  # zookeeper.session.timeout.ms in CLUSTER_OVERRIDES
PAUSE_S = 9  # comfortably past the session timeout
LIST_PARTITION_REASSIGNMENTS = 46
NOT_CONTROLLER = 41


@pytest.fixture
def cluster(zookeeper, broker_factory):
    with KafkaCluster(broker_factory, zookeeper, overrides=CLUSTER_OVERRIDES) as cluster:
        yield cluster


def log_end_offset(cluster: KafkaCluster, broker_id: int, topic: str) -> int:
    stored = stored_records(cluster.brokers[broker_id].log_dir, topic, 0)
    return stored[-1][0] + 1 if stored else 0


def assert_caught_up(cluster: KafkaCluster, topic: str, broker_id: int) -> None:
    leader = cluster.leader(topic)
    cluster.wait_for(lambda: log_end_offset(cluster, broker_id, topic) == log_end_offset(cluster, leader, topic),
                     what=f"broker {broker_id}'s log end offset to reach the leader's")


@contextmanager
def paused_past_its_session(cluster: KafkaCluster, broker_id: int) -> Iterator[None]:
    """SIGSTOP the broker until ZooKeeper has expired its session (and PAUSE_S at least), then
    SIGCONT it and wait until it has registered again with a newer broker epoch."""
    epoch = cluster.broker_epoch(broker_id)
    cluster.pause(broker_id)
    paused_at = time.monotonic()
    try:
        cluster.wait_for(lambda: broker_id not in cluster.live_broker_ids(), timeout=SESSION_TIMEOUT_S + 8,
                         what=f"ZooKeeper to expire paused broker {broker_id}'s session")
        yield
        time.sleep(max(0.0, paused_at + PAUSE_S - time.monotonic()))
        assert broker_id not in cluster.live_broker_ids()
    finally:
        cluster.resume(broker_id)
    cluster.wait_for(lambda: (cluster.broker_epoch(broker_id) or -1) > epoch,
                     what=f"broker {broker_id} to register again with a new broker epoch")


def controller_error(cluster: KafkaCluster, broker_id: int) -> int:
    """The error a controller-only request (ListPartitionReassignments) gets from that broker."""
    answer = raw_call(cluster.brokers[broker_id].port, LIST_PARTITION_REASSIGNMENTS, 0,
                      {"timeout_ms": 5000, "topics": None})
    return answer["error_code"]


def test_sigterm_of_the_leader_moves_leadership_before_the_process_exits(cluster):
    topic = "handover"
    create_topic(cluster, topic)
    with BackgroundProducer(cluster, topic) as background:
        background.wait_for_more(300, "acknowledged records before the SIGTERM")
        victim = cluster.leader(topic)
        witness = next(b for b in cluster.brokers if b != victim)
        process = cluster.brokers[victim]
        process.send_signal(signal.SIGTERM)
        # (leader named by another broker, stopping broker still registered in ZooKeeper afterwards)
        samples: list[tuple[int, bool]] = []
        deadline = time.monotonic() + TIMEOUT_S
        while process.alive() and time.monotonic() < deadline:
            try:
                leader = cluster.metadata_leader(witness, topic)
            except (OSError, wire.ConnectionClosed):
                continue
            samples.append((leader, victim in cluster.live_broker_ids()))
            time.sleep(0.005)
        assert process.wait() == 0
        # Leadership moved while the broker still held its session: handed over, not taken on its death.
        assert any(leader not in (victim, -1) and registered for leader, registered in samples), samples
        assert cluster.leader(topic) not in (victim, -1) and victim not in cluster.isr(topic)
        background.wait_for_more(300, "records acknowledged by the new leader")
        cluster.restart(victim)
        cluster.wait_for(lambda: sorted(cluster.isr(topic)) == [1, 2, 3], what="the stopped broker back in the ISR")
        background.wait_for_more(100, "records acknowledged after its return")
    assert_exactly_once_in_order(cluster, topic, background)


def test_a_follower_whose_session_expires_leaves_the_isr_and_catches_up_after_sigcont(cluster):
    topic = "expiring-follower"
    create_topic(cluster, topic)
    with BackgroundProducer(cluster, topic) as background:
        background.wait_for_more(200, "acknowledged records before the pause")
        before = cluster.partition_state(topic)
        follower = next(b for b in cluster.replicas(topic) if b not in (before["leader"], cluster.controller_id()))
        with paused_past_its_session(cluster, follower):
            cluster.wait_for(lambda: follower not in cluster.isr(topic), what="the paused follower to leave the ISR")
            state = cluster.partition_state(topic)
            assert state["leader"] == before["leader"] and len(state["isr"]) == 2
            background.wait_for_more(200, "records acknowledged while the follower is paused")
        cluster.wait_for(lambda: follower in cluster.isr(topic), what="the follower to rejoin the ISR")
        background.wait_for_more(100, "records acknowledged after the rejoin")
    assert_caught_up(cluster, topic, follower)
    assert_exactly_once_in_order(cluster, topic, background)


def create_topic_followed_by(cluster: KafkaCluster, topic: str, last_replica: int) -> None:
    """RF=3, min.insync.replicas=2, with `last_replica` last in the assignment (a follower)."""
    replicas = [b for b in sorted(cluster.brokers) if b != last_replica] + [last_replica]
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap, request_timeout_ms=TIMEOUT_S * 1000)
    try:
        admin.create_topics([NewTopic(topic, replica_assignments={0: replicas},
                                      topic_configs={"min.insync.replicas": "2"})])
    finally:
        admin.close()
    cluster.wait_for(lambda: sorted(cluster.isr(topic)) == [1, 2, 3], what=f"a full ISR for {topic}")


def test_a_controller_whose_session_expires_is_replaced_and_returns_as_a_plain_broker(cluster):
    topic = "expiring-controller"
    controller = cluster.controller_id()
    create_topic_followed_by(cluster, topic, controller)
    epoch_before = int(cluster.zk.get("/controller_epoch")[0])
    with BackgroundProducer(cluster, topic) as background:
        background.wait_for_more(200, "acknowledged records before the pause")
        with paused_past_its_session(cluster, controller):
            cluster.wait_for(lambda: cluster.controller_id() not in (None, controller), what="a new controller")
            successor = cluster.controller_id()
            epoch = int(cluster.zk.get("/controller_epoch")[0])
            assert epoch > epoch_before
            cluster.wait_for(lambda: controller not in cluster.isr(topic), what="the old controller to leave the ISR")
            assert cluster.partition_state(topic)["controller_epoch"] == epoch
            background.wait_for_more(200, "records acknowledged while the old controller is paused")
        assert cluster.controller_id() == successor
        assert int(cluster.zk.get("/controller_epoch")[0]) == epoch
        assert (controller_error(cluster, controller), controller_error(cluster, successor)) == (NOT_CONTROLLER, 0)
        cluster.wait_for(lambda: controller in cluster.isr(topic), what="the old controller to rejoin the ISR")
        background.wait_for_more(100, "records acknowledged after the rejoin")
    assert_caught_up(cluster, topic, controller)
    assert_exactly_once_in_order(cluster, topic, background)
