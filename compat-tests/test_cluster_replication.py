"""Replication in a real cluster: three kbroker processes on 127.0.0.1, a real ZooKeeper (the
`zookeeper` fixture), confluent-kafka (librdkafka) as producer and consumer, the znodes read
with kazoo and the segment files read from disk (kbroker/testing/cluster.py).

- An RF=3 topic has ISR [1, 2, 3] once records flow, and every broker's log holds the same bytes.
- acks=all with min.insync.replicas=2 returns only once the followers' logs hold the records.
- kill -9 of the partition leader while an idempotent acks=all producer runs: leadership moves,
  the killed broker comes back, catches up and rejoins the ISR; every acknowledged record is
  read back exactly once, in order, at the offset it was acknowledged with.
- A follower paused with SIGSTOP past replica.lag.time.max.ms leaves the ISR (an AlterPartition
  from the leader: same leader epoch) and rejoins after SIGCONT.
- Followers fetch in KIP-227 sessions: idle partitions stay in the ISR while another replicates.
Expected behaviour is Apache Kafka's (KAFKA-FACTS.md §3).
"""

from __future__ import annotations

import threading
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from kbroker.testing.cluster import KafkaCluster
from kbroker.testing.metrics_scrape import scrape
from kbroker.testing.processes import free_port
from kbroker.testing.records import stored_records

TIMEOUT_S = 30
# Three brokers, ZooKeeper, kills and session expiries: more than pyproject's default per test.
pytestmark = pytest.mark.timeout(300)
# Short ZooKeeper sessions keep failover quick; fast fetch backoff and controlled-shutdown
# retries keep leader changes and teardown short.
CLUSTER_OVERRIDES = (
    "zookeeper.session.timeout.ms=6000",
    "replica.fetch.backoff.ms=200",
    "controlled.shutdown.retry.backoff.ms=200",
    "auto.create.topics.enable=false",
)


@pytest.fixture(scope="module")
def cluster(zookeeper, module_broker_factory):
    with KafkaCluster(module_broker_factory, zookeeper, overrides=CLUSTER_OVERRIDES) as cluster:
        yield cluster


def create_topic(cluster: KafkaCluster, name: str, min_isr: int = 2) -> None:
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    futures = admin.create_topics([NewTopic(name, 1, 3, config={"min.insync.replicas": str(min_isr)})],
                                  operation_timeout=TIMEOUT_S)
    futures[name].result(TIMEOUT_S)
    cluster.wait_for(lambda: cluster.leader(name) >= 0, what=f"a leader for {name}")


def producer(cluster: KafkaCluster, **settings) -> Producer:
    return Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "enable.idempotence": True,
                     "linger.ms": 2, "message.timeout.ms": 60000, "retry.backoff.ms": 100, **settings})


def produce_and_flush(cluster: KafkaCluster, topic: str, values: list[bytes]) -> list[int]:
    """acks=all; returns the acknowledged offsets (every record must be acknowledged)."""
    offsets: list[int] = []
    errors: list = []
    p = producer(cluster)
    for value in values:
        p.produce(topic, value, partition=0,
                  on_delivery=lambda err, msg: errors.append(err) if err else offsets.append(msg.offset()))
    assert p.flush(TIMEOUT_S) == 0
    assert errors == []
    return offsets


def read_all(bootstrap: str, topic: str) -> list[tuple[int, bytes]]:
    """(offset, value) of every record of partition 0 up to the high watermark, read from the leader."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{topic}-{time.time()}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=TIMEOUT_S)
        consumer.assign([TopicPartition(topic, 0, 0)])
        records: list[tuple[int, bytes]] = []
        deadline = time.monotonic() + TIMEOUT_S
        while (not records or records[-1][0] < high - 1) and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                records.append((message.offset(), message.value()))
        return records
    finally:
        consumer.close()


def test_rf3_topic_has_every_broker_in_the_isr_and_the_same_bytes(cluster):
    create_topic(cluster, "replicated")
    offsets = produce_and_flush(cluster, "replicated", [b"r%05d" % i for i in range(500)])
    assert offsets == list(range(500))
    assert sorted(cluster.isr("replicated")) == [1, 2, 3]
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    metadata = admin.list_topics("replicated", timeout=TIMEOUT_S).topics["replicated"].partitions[0]
    assert sorted(metadata.isrs) == [1, 2, 3] and sorted(metadata.replicas) == [1, 2, 3]
    cluster.wait_for(lambda: cluster.logs_identical("replicated"), what="identical logs on every broker")


def test_acks_all_returns_once_the_followers_hold_the_records(cluster):
    create_topic(cluster, "acked")
    leader = cluster.leader("acked")
    followers = [b for b in cluster.replicas("acked") if b != leader]
    for round_ in range(4):
        offsets = produce_and_flush(cluster, "acked", [b"a%d-%03d" % (round_, i) for i in range(100)])
        for follower in followers:
            # Read from the follower's files at the moment the producer was answered.
            stored = stored_records(cluster.brokers[follower].log_dir, "acked", 0)
            assert stored and stored[-1][0] >= offsets[-1], f"broker {follower} lacks acknowledged records"
    assert [v for _, v in read_all(cluster.bootstrap, "acked")] == [b"a%d-%03d" % (r, i) for r in range(4) for i in range(100)]


class BackgroundProducer:
    """An idempotent acks=all producer sending increasing values to partition 0 until stopped."""

    def __init__(self, cluster: KafkaCluster, topic: str) -> None:
        self.cluster = cluster
        self.topic = topic
        self.acked: list[tuple[int, bytes]] = []
        self.errors: list = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> BackgroundProducer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(90)
        assert not self._thread.is_alive(), "the producer did not finish flushing"

    def _delivered(self, err, msg) -> None:
        if err is not None:
            self.errors.append(err)
        else:
            self.acked.append((msg.offset(), msg.value()))

    def _run(self) -> None:
        p = producer(self.cluster)
        i = 0
        while not self._stop.is_set():
            p.produce(self.topic, b"%08d" % i, partition=0, on_delivery=self._delivered)
            p.poll(0)
            i += 1
            time.sleep(0.001)
        p.flush(60)

    def wait_for_more(self, count: int, what: str) -> None:
        target = len(self.acked) + count
        self.cluster.wait_for(lambda: len(self.acked) >= target, what=what)


def assert_exactly_once_in_order(cluster: KafkaCluster, topic: str, producer_: BackgroundProducer) -> None:
    assert_acked_exactly_once_in_order(cluster, topic, producer_)
    cluster.wait_for(lambda: cluster.logs_identical(topic), what="identical logs on every broker")


def assert_acked_exactly_once_in_order(cluster: KafkaCluster, topic: str, producer_: BackgroundProducer) -> None:
    """No producer error; every acknowledged record read back once, in order."""
    assert producer_.errors == []
    records = read_all(cluster.bootstrap, topic)
    values = [v for _, v in records]
    assert len(set(values)) == len(values), "a record was written twice"
    assert values == sorted(values), "records are out of order"
    by_offset = dict(records)
    # librdkafka acknowledges "implicitly", with no offset, records of a request that failed in
    # transit (a broker closing connections as it stops) when a later request of the same
    # idempotent producer succeeded: such records must be in the log, just at no known offset.
    present = set(values)
    missing = [(o, v) for o, v in producer_.acked if (by_offset.get(o) != v if o is not None else v not in present)]
    assert missing == [], f"{len(missing)} acknowledged records are not where they were acknowledged"


def test_killing_the_leader_during_an_idempotent_produce_loses_and_duplicates_nothing(cluster):
    topic = "failover"
    create_topic(cluster, topic)
    with BackgroundProducer(cluster, topic) as background:
        background.wait_for_more(300, "acknowledged records before the kill")
        victim = cluster.leader(topic)
        epoch_before = cluster.partition_state(topic)["leader_epoch"]
        cluster.kill(victim)
        failover_s = cluster.wait_for(lambda: cluster.leader(topic) not in (victim, -1), what="a new leader")
        assert cluster.partition_state(topic)["leader_epoch"] > epoch_before
        assert victim not in cluster.isr(topic)
        background.wait_for_more(300, "records acknowledged by the new leader")
        cluster.restart(victim)
        rejoin_s = cluster.wait_for(lambda: victim in cluster.isr(topic), what="the killed broker to rejoin the ISR")
        background.wait_for_more(100, "records acknowledged after the rejoin")
    assert_exactly_once_in_order(cluster, topic, background)
    print(f"failover {failover_s:.1f}s, rejoin {rejoin_s:.1f}s, {len(background.acked)} records acknowledged")


def test_killing_the_leader_then_the_controller_loses_and_duplicates_nothing(cluster):
    topic = "failover-twice"
    create_topic(cluster, topic)
    with BackgroundProducer(cluster, topic) as background:
        background.wait_for_more(300, "acknowledged records before the kills")
        leader = cluster.leader(topic)
        cluster.kill(leader)
        cluster.wait_for(lambda: cluster.leader(topic) not in (leader, -1), what="a new leader")
        background.wait_for_more(200, "records acknowledged by the new leader")
        cluster.wait_for(lambda: cluster.controller_id() is not None, what="a controller")
        controller = cluster.controller_id()
        cluster.kill(controller)
        cluster.wait_for(lambda: cluster.controller_id() not in (None, controller), what="a new controller")
        for broker_id in {leader, controller}:
            cluster.restart(broker_id)
        cluster.wait_for(lambda: sorted(cluster.isr(topic)) == [1, 2, 3], what="every broker back in the ISR")
        background.wait_for_more(200, "records acknowledged after both returned")
    assert_exactly_once_in_order(cluster, topic, background)


def test_a_paused_follower_leaves_the_isr_and_rejoins_after_sigcont(zookeeper, broker_factory):
    # Sessions outlast the pause: the follower must leave the ISR through the leader's lag check
    # (replica.lag.time.max.ms), not because ZooKeeper declared it dead.
    with KafkaCluster(broker_factory, zookeeper, overrides=(
            *CLUSTER_OVERRIDES, "zookeeper.session.timeout.ms=20000", "replica.lag.time.max.ms=2000")) as cluster:
        topic = "paused"
        create_topic(cluster, topic)
        produce_and_flush(cluster, topic, [b"p%03d" % i for i in range(50)])
        cluster.wait_for(lambda: sorted(cluster.isr(topic)) == [1, 2, 3], what="a full ISR")
        before = cluster.partition_state(topic)
        leader, controller = before["leader"], cluster.controller_id()
        follower = next(b for b in cluster.replicas(topic) if b not in (leader, controller))
        cluster.pause(follower)
        started = time.monotonic()
        # acks=all waits for the paused follower until it leaves the ISR; 2 replicas remain.
        produce_and_flush(cluster, topic, [b"q%03d" % i for i in range(20)])
        waited_s = time.monotonic() - started
        cluster.wait_for(lambda: follower not in cluster.isr(topic), timeout=10, what="the ISR shrink")
        shrunk = cluster.partition_state(topic)
        assert shrunk["leader"] == leader and shrunk["leader_epoch"] == before["leader_epoch"]
        assert shrunk["partition_epoch"] > before["partition_epoch"]
        assert follower in cluster.live_broker_ids()  # its session is alive: the leader shrank the ISR
        cluster.resume(follower)
        rejoin_s = cluster.wait_for(lambda: follower in cluster.isr(topic), what="the follower to rejoin")
        cluster.wait_for(lambda: cluster.logs_identical(topic), what="identical logs after the pause")
        assert len(read_all(cluster.bootstrap, topic)) == 70
        print(f"acks=all waited {waited_s:.1f}s for the shrink; rejoined {rejoin_s:.1f}s after SIGCONT")


def test_idle_partitions_stay_in_the_isr_while_followers_fetch_in_sessions(zookeeper, broker_factory):
    """KIP-227 between real brokers: each follower fetcher opens a fetch session with its leader
    (the leaders' FetchSessionCache metrics count them), so its fetches name only the partitions
    that changed; the leader still records the follower's fetch of every partition of the
    session, so an idle RF=3 topic keeps its full ISR past several replica.lag.time.max.ms while
    another topic replicates, and records produced to it later still arrive everywhere."""
    metric_ports = {broker_id: free_port() for broker_id in (1, 2, 3)}
    per_broker = {b: (f"metrics.listener=http://127.0.0.1:{p}",) for b, p in metric_ports.items()}
    with KafkaCluster(broker_factory, zookeeper, overrides=(*CLUSTER_OVERRIDES, "replica.lag.time.max.ms=1500"),
                      broker_overrides=per_broker) as cluster:
        create_topic(cluster, "busy")
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
        admin.create_topics([NewTopic("idle", 6, 3)], operation_timeout=TIMEOUT_S)["idle"].result(TIMEOUT_S)
        cluster.wait_for(lambda: all(cluster.leader("idle", p) >= 0 for p in range(6)), what="leaders for idle")
        p = producer(cluster)
        for partition in range(6):
            p.produce("idle", b"once", partition=partition)
        assert p.flush(TIMEOUT_S) == 0
        until = time.monotonic() + 3 * 1.5  # three replica.lag.time.max.ms of the busy topic only
        while time.monotonic() < until:
            produce_and_flush(cluster, "busy", [b"b%03d" % i for i in range(20)])
        assert all(sorted(cluster.isr("idle", partition)) == [1, 2, 3] for partition in range(6))

        def sessions(broker_id: int) -> float:
            return scrape(metric_ports[broker_id])[
                ("kafka_server_fetchsessioncache_numincrementalfetchsessions", frozenset())]
        # Every broker leads some of the seven partitions, and both others follow it in a session each.
        cluster.wait_for(lambda: sum(sessions(b) for b in metric_ports) >= 4, what="the followers' fetch sessions")
        for partition in range(6):
            p.produce("idle", b"again", partition=partition)
        assert p.flush(TIMEOUT_S) == 0
        cluster.wait_for(lambda: all(cluster.logs_identical("idle", q) for q in range(6))
                         and cluster.logs_identical("busy"), what="identical logs")
