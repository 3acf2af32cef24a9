"""Full, failing and read-only log directories under a running broker, with real small tmpfs
mounts (kbroker/testing/disk_faults.py: mounted by the test, always unmounted; skipped with the
reason when mounting is not permitted) and a real confluent-kafka producer (issue 16, bug 4).

- A full tmpfs log dir: the producer gets KAFKA_STORAGE_ERROR, the broker keeps serving the
  partitions of its other log dir, logs no traceback, SIGTERM exits 0; after space is freed the
  next start recovers the partition with every acknowledged record.
- The only log dir full: the broker stops by itself with exit code 1 and Kafka's one line
  "Shutdown broker because all log dirs in ... have failed".
- A log dir made read-only under the running broker (`chattr +i`: root ignores chmod, and the
  kernel refuses `mount -o remount,ro` while segments are open for writing, shown here): its
  next checkpoint fails, the dir goes offline, producing answers KAFKA_STORAGE_ERROR.
- Deleting a topic whose log dir was made read-only: the `-delete` rename fails, the dir goes
  offline, DeleteTopics answers REQUEST_TIMED_OUT (no hang) and the deletion waits, as Kafka's
  does, until the broker restarts with the dir back; then it completes.
- Three brokers with ZooKeeper: the leader's log dir fills up; it writes a log dir event
  notification, the controller moves leadership to another replica, an idempotent acks=all
  producer carries on without an error, Metadata lists the failed replica as offline.
Expected behaviour is Apache Kafka's (ZooKeeper mode).
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient
from kafka.admin import KafkaAdminClient, NewTopic
from test_cluster_replication import (
    CLUSTER_OVERRIDES,
    BackgroundProducer,
    assert_acked_exactly_once_in_order,
    read_all,
)

from kbroker.testing.cluster import KafkaCluster
from kbroker.testing.disk_faults import Tmpfs, fill
from kbroker.testing.processes import BrokerLauncher, BrokerProcess
from kbroker.testing.waiting import eventually

TIMEOUT_S = 30
VALUE = b"v" * 1000
pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Tmpfs]:
    mount = Tmpfs(tmp_path / "small", "2m")
    reason = mount.mount()
    if reason is not None:
        print(f"skipping: {reason}")
        pytest.skip(reason)
    try:
        yield mount
    finally:
        subprocess.run(["chattr", "-R", "-i", str(mount.mount_point)], capture_output=True, check=False)
        mount.unmount()


def create_topic(bootstrap: str, name: str, replicas: list[int] | None = None) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=TIMEOUT_S * 1000)
    try:
        admin.create_topics([NewTopic(name, -1, -1, replica_assignments={0: replicas}) if replicas
                             else NewTopic(name, 1, 1)])
    finally:
        admin.close()


class Sender:
    """acks=all without retries: each delivery report says what the broker answered."""

    def __init__(self, bootstrap: str) -> None:
        self.producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "retries": 0,
                                  "enable.idempotence": False, "linger.ms": 5, "message.timeout.ms": 20000})
        self.acked: list[tuple[int, bytes]] = []
        self.errors: list[KafkaError] = []

    def _delivered(self, err, msg) -> None:
        if err is not None:
            self.errors.append(err)
        else:
            self.acked.append((msg.offset(), msg.value()))

    def send(self, topic: str, values: list[bytes]) -> None:
        for value in values:
            self.producer.produce(topic, value, partition=0, on_delivery=self._delivered)
        assert self.producer.flush(TIMEOUT_S) == 0

    def until_storage_error(self, topic: str, limit: int = 20_000) -> KafkaError:
        """Send batches until one is refused; the broker must refuse with KAFKA_STORAGE_ERROR."""
        sent = 0
        while not self.errors and sent < limit:
            self.send(topic, [VALUE + b"%08d" % (sent + i) for i in range(50)])
            sent += 50
        assert self.errors, f"{sent} records all accepted"
        assert {e.code() for e in self.errors} == {KafkaError.KAFKA_STORAGE_ERROR}, self.errors
        return self.errors[0]


def assert_acked_present(bootstrap: str, topic: str, acked: list[tuple[int, bytes]]) -> None:
    stored = dict(read_all(bootstrap, topic))
    missing = [(o, v[-8:]) for o, v in acked if stored.get(o) != v]
    assert missing == [], f"{len(missing)} acknowledged records lost"


def assert_no_traceback(broker: BrokerProcess) -> None:
    output = broker.output()
    assert "Traceback" not in output and "cannot start" not in output, output[-3000:]


def broker_on(launcher: BrokerLauncher, *log_dirs: Path, extra: tuple[str, ...] = ()) -> BrokerProcess:
    return launcher.start(f"log.dirs={','.join(str(d) for d in log_dirs)}", *extra)


def test_a_full_log_dir_answers_kafka_storage_error_and_the_other_dir_keeps_serving(broker_factory, tmpfs,
                                                                                    tmp_path):
    other_dir = tmp_path / "big"
    broker = broker_on(broker_factory, other_dir, tmpfs.mount_point)
    create_topic(broker.bootstrap, "other")  # the dir holding fewer partitions gets the next one
    create_topic(broker.bootstrap, "full")
    assert (other_dir / "other-0").is_dir() and (tmpfs.mount_point / "full-0").is_dir()
    sender = Sender(broker.bootstrap)
    sender.send("full", [b"first"])
    sender.until_storage_error("full")
    acked = list(sender.acked)
    assert len(acked) > 100
    # The dir is offline (later requests for full-0 are refused: tests/test_log_dir_failure.py);
    # the other dir's partition is served.
    eventually(lambda: "Logs for partitions full-0 are offline" in broker.output(), what="the dir failure handled")
    other = Sender(broker.bootstrap)
    other.send("other", [b"o%03d" % i for i in range(20)])
    assert other.errors == [] and [v for _, v in read_all(broker.bootstrap, "other")] == \
        [b"o%03d" % i for i in range(20)]
    assert broker.alive()
    assert broker.stop() == 0
    assert_no_traceback(broker)
    tmpfs.resize("8m")  # space freed: the next start recovers the partition
    broker.start()
    assert_acked_present(broker.bootstrap, "full", acked)
    after = Sender(broker.bootstrap)
    after.send("full", [b"after"])
    assert after.errors == [] and after.acked[0][0] >= len(acked)
    assert broker.stop() == 0
    assert_no_traceback(broker)


def test_the_only_log_dir_full_stops_the_broker_with_kafkas_line(broker_factory, tmpfs):
    broker = broker_on(broker_factory, tmpfs.mount_point)
    create_topic(broker.bootstrap, "full")
    sender = Sender(broker.bootstrap)
    sender.until_storage_error("full")
    assert broker.wait(timeout=TIMEOUT_S) == 1
    lines = [line for line in broker.output().splitlines() if "Shutdown broker because all log dirs" in line]
    assert len(lines) == 1 and str(tmpfs.mount_point) in lines[0]
    assert_no_traceback(broker)
    tmpfs.resize("8m")
    broker.start()
    assert_acked_present(broker.bootstrap, "full", sender.acked)
    assert broker.stop() == 0


def test_a_log_dir_made_read_only_under_the_broker_goes_offline(broker_factory, tmpfs, tmp_path):
    other_dir = tmp_path / "big"
    broker = broker_on(broker_factory, other_dir, tmpfs.mount_point,
                       extra=("log.flush.offset.checkpoint.interval.ms=300",
                              "replica.high.watermark.checkpoint.interval.ms=300"))
    create_topic(broker.bootstrap, "other")
    create_topic(broker.bootstrap, "ro")
    assert (tmpfs.mount_point / "ro-0").is_dir()
    sender = Sender(broker.bootstrap)
    sender.send("ro", [b"before-%03d" % i for i in range(50)])
    assert sender.errors == []
    refusal = tmpfs.remount_read_only()
    assert refusal is not None and "busy" in refusal  # segments are open for writing
    subprocess.run(["chattr", "+i", str(tmpfs.mount_point)], check=True)

    def refused() -> bool:
        sender.send("ro", [b"probe"])
        return bool(sender.errors)

    eventually(refused, what="a produce to the read-only dir to be refused")
    assert {e.code() for e in sender.errors} == {KafkaError.KAFKA_STORAGE_ERROR}
    other = Sender(broker.bootstrap)
    other.send("other", [b"still"])
    assert other.errors == []
    assert broker.stop() == 0
    assert_no_traceback(broker)
    subprocess.run(["chattr", "-i", str(tmpfs.mount_point)], check=True)
    broker.start()
    assert_acked_present(broker.bootstrap, "ro", sender.acked)
    assert broker.stop() == 0


def test_deleting_a_topic_in_a_failed_dir_waits_for_the_restart(broker_factory, tmpfs, tmp_path):
    broker = broker_on(broker_factory, tmp_path / "big", tmpfs.mount_point)
    create_topic(broker.bootstrap, "other")
    create_topic(broker.bootstrap, "doomed")
    assert (tmpfs.mount_point / "doomed-0").is_dir()
    subprocess.run(["chattr", "+i", str(tmpfs.mount_point)], check=True)  # the rename is refused (EPERM)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    with pytest.raises(KafkaException) as raised:
        admin.delete_topics(["doomed"], operation_timeout=3)["doomed"].result(TIMEOUT_S)
    assert raised.value.args[0].code() == KafkaError.REQUEST_TIMED_OUT
    assert "deletion of topic doomed waits for broker 0 to restart" in broker.output()
    assert "Logs for partitions doomed-0 are offline" in broker.output()
    assert broker.stop() == 0
    assert_no_traceback(broker)
    subprocess.run(["chattr", "-i", str(tmpfs.mount_point)], check=True)
    broker.start()
    eventually(lambda: "doomed" not in admin.list_topics(timeout=TIMEOUT_S).topics, what="the deletion to complete")
    assert not (tmpfs.mount_point / "doomed-0").exists()
    assert "other" in admin.list_topics(timeout=TIMEOUT_S).topics
    assert broker.stop() == 0


def test_a_full_log_dir_on_the_leader_moves_leadership(zookeeper, broker_factory, tmpfs, tmp_path):
    leader_dirs = f"log.dirs={tmpfs.mount_point},{tmp_path / 'broker1-big'}"
    with KafkaCluster(broker_factory, zookeeper, overrides=CLUSTER_OVERRIDES,
                      broker_overrides={1: (leader_dirs,)}) as cluster:
        create_topic(cluster.bootstrap, "moving", replicas=[1, 2, 3])
        cluster.wait_for(lambda: cluster.leader("moving") == 1 and sorted(cluster.isr("moving")) == [1, 2, 3],
                         what="broker 1 leading with a full ISR")
        assert (tmpfs.mount_point / "moving-0").is_dir()
        with BackgroundProducer(cluster, "moving") as producer:
            producer.wait_for_more(200, "records acknowledged by broker 1")
            fill(tmpfs.mount_point)
            cluster.wait_for(lambda: cluster.leader("moving") in (2, 3), what="leadership to move off broker 1")
            producer.wait_for_more(200, "records acknowledged by the new leader")
        assert 1 not in cluster.isr("moving")
        partition = cluster.metadata(cluster.leader("moving"), ["moving"]).topics[0].partitions[0]
        assert partition.offline_replicas == [1]
        assert_acked_exactly_once_in_order(cluster, "moving", producer)
        broker = cluster.brokers[1]
        assert broker.alive() and broker.stop(signal.SIGTERM) == 0
        assert_no_traceback(broker)
        (tmpfs.mount_point / "filler").unlink()  # space freed: broker 1 recovers and catches up
        broker.start()
        cluster.wait_for(lambda: sorted(cluster.isr("moving")) == [1, 2, 3], what="broker 1 back in the ISR")
        assert cluster.metadata(2, ["moving"]).topics[0].partitions[0].offline_replicas == []
        assert broker.stop(signal.SIGTERM) == 0
        assert_no_traceback(broker)
