"""scripts/chaos's nemeses: each applies one fault to the cluster, holds it, heals it, and returns
the Fault (when it began, when it was healed) for the unavailability windows. The runner waits
for the cluster to be whole again before the next one. Targets and hold times come from the
run's seeded random.Random, so a seed replays the same schedule.

- kill-broker / kill-controller / kill-leader: kill -9 of a random broker, of the controller,
  of the leader of a random partition; restarted at once (within its ZooKeeper session: it must
  wait for its old registration to go) or once ZooKeeper has dropped the session, at random.
- pause-broker: SIGSTOP past zookeeper.session.timeout.ms, then SIGCONT.
- kill-zookeeper: ZooKeeper itself killed -9 and restarted on the same data.
- partition-brokers: one broker cut off from the other two (not from ZooKeeper) for longer than
  replica.lag.time.max.ms.
- partition-zookeeper: one broker cut off from ZooKeeper past its session timeout.
- isolate-broker: the leader of a random partition cut off from the other brokers and ZooKeeper past
  its session, while the clients on the host still reach it: a deposed leader that must not
  acknowledge an acks=all write it cannot replicate.
- packet-loss: 30-50 % of the packets between the leader of a random partition and the other
  brokers dropped at random (iptables' statistic match) for longer than replica.lag.time.max.ms:
  fetches and acks=all writes retried, ISR shrinking and growing again. Delay is not injected:
  it needs `tc netem`, which this kernel lacks.
- io-error: the first log dir of broker EIO_BROKER (a FUSE passthrough, chaos_fuse.py) answers
  EIO to every read and write: the dir goes offline as on a dying disk, leadership of its
  partitions moves; healed like disk-full, by a clean restart once the disk answers again.
- disk-full: the tmpfs log dir of broker DISK_BROKER filled up: its log dir goes offline (Kafka's
  LogDirFailureChannel), leadership of its partitions there moves; healed by freeing the space
  and restarting the broker (SIGTERM, which must exit 0), as Kafka needs a restart to bring a
  failed log dir back.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from chaos_checker import Fault
from chaos_cluster import (
    BROKER_IDS,
    DISK_BROKER,
    EIO_BROKER,
    FILLER,
    REPLICA_LAG_MS,
    SESSION_TIMEOUT_MS,
    ChaosCluster,
)

from kbroker.testing.disk_faults import fill

SESSION_S = SESSION_TIMEOUT_MS / 1000
EXPIRY_TIMEOUT_S = SESSION_S + 20


@dataclass(frozen=True)
class Nemesis:
    name: str
    run: Callable[[ChaosCluster, random.Random], Fault]
    needs_network: bool = False
    needs_disk: bool = False
    needs_loss: bool = False
    needs_failing_fs: bool = False


def _kill_and_restart(cluster: ChaosCluster, broker_id: int, name: str, rng: random.Random, role: str = "") -> Fault:
    at_once = rng.random() < 0.5
    epoch = cluster.epoch(broker_id)
    started = time.monotonic()
    cluster.kafka.kill(broker_id)
    time.sleep(rng.uniform(0, 2))
    if at_once:
        cluster.restart(broker_id)
        cluster.wait(lambda: cluster.epoch(broker_id) > epoch, f"broker {broker_id} to register with a new epoch",
                     timeout=EXPIRY_TIMEOUT_S)
    else:
        cluster.restart_after_expiry(broker_id)
    when = "at once" if at_once else "after its session"
    return Fault(name, f"broker {broker_id} ({role}restarted {when})", started, time.monotonic())


def kill_broker(cluster: ChaosCluster, rng: random.Random) -> Fault:
    return _kill_and_restart(cluster, rng.choice(BROKER_IDS), "kill-broker", rng)


def kill_controller(cluster: ChaosCluster, rng: random.Random) -> Fault:
    controller = cluster.controller()
    return _kill_and_restart(cluster, controller if controller in BROKER_IDS else rng.choice(BROKER_IDS),
                             "kill-controller", rng)


def _leader_of_random_partition(cluster: ChaosCluster, rng: random.Random) -> tuple[int, int]:
    partition = rng.randrange(cluster.partitions)
    leader = cluster.leader(partition)
    return partition, leader if leader in BROKER_IDS else rng.choice(BROKER_IDS)


def kill_leader(cluster: ChaosCluster, rng: random.Random) -> Fault:
    partition, leader = _leader_of_random_partition(cluster, rng)
    return _kill_and_restart(cluster, leader, "kill-leader", rng, role=f"leader of {cluster.topic}-{partition}, ")


def pause_broker(cluster: ChaosCluster, rng: random.Random) -> Fault:
    broker_id = rng.choice(BROKER_IDS)
    epoch = cluster.epoch(broker_id)
    started = time.monotonic()
    cluster.kafka.pause(broker_id)  # KafkaCluster.stop() continues it whatever happens
    try:
        cluster.wait(lambda: broker_id not in cluster.live(), f"paused broker {broker_id}'s session to expire",
                     timeout=EXPIRY_TIMEOUT_S)
        time.sleep(rng.uniform(0, 3))
    finally:
        cluster.kafka.resume(broker_id)
    healed = time.monotonic()
    cluster.wait(lambda: cluster.epoch(broker_id) > epoch, f"broker {broker_id} to register with a new epoch")
    return Fault("pause-broker", f"broker {broker_id}", started, healed)


def kill_zookeeper(cluster: ChaosCluster, rng: random.Random) -> Fault:
    started = time.monotonic()
    cluster.kill_zookeeper()
    time.sleep(rng.uniform(2, 5))
    cluster.zookeeper.start()
    return Fault("kill-zookeeper", "zookeeper", started, time.monotonic())


def partition_brokers(cluster: ChaosCluster, rng: random.Random) -> Fault:
    """Cut one broker (the controller, a leader or any, at random) off from the other two."""
    kind = rng.choice(["controller", "leader", "broker"])
    if kind == "controller":
        broker_id = cluster.controller() or rng.choice(BROKER_IDS)
    elif kind == "leader":
        broker_id = _leader_of_random_partition(cluster, rng)[1]
    else:
        broker_id = rng.choice(BROKER_IDS)
    others = [b for b in BROKER_IDS if b != broker_id]
    started = time.monotonic()
    try:
        for other in others:
            cluster.network.partition(f"b{broker_id}", f"b{other}")
        time.sleep(REPLICA_LAG_MS / 1000 + rng.uniform(2, 6))
    finally:
        for other in others:
            cluster.network.heal(f"b{broker_id}", f"b{other}")
    return Fault("partition-brokers", f"broker {broker_id} ({kind}) | brokers {others}", started, time.monotonic())


def _cut_past_session(cluster: ChaosCluster, rng: random.Random, broker_id: int, peers: list[str],
                      name: str, target: str) -> Fault:
    """Cut `broker_id` off from `peers` until ZooKeeper has expired its session, then heal and
    wait for it to register again."""
    epoch = cluster.epoch(broker_id)
    started = time.monotonic()
    try:
        for peer in peers:
            cluster.network.partition(f"b{broker_id}", peer)
        cluster.wait(lambda: broker_id not in cluster.live(), f"broker {broker_id}'s session to expire",
                     timeout=EXPIRY_TIMEOUT_S)
        time.sleep(rng.uniform(1, 4))
    finally:
        for peer in peers:
            cluster.network.heal(f"b{broker_id}", peer)
    healed = time.monotonic()
    cluster.wait(lambda: cluster.epoch(broker_id) > epoch, f"broker {broker_id} to register with a new epoch",
                 timeout=EXPIRY_TIMEOUT_S + 10)
    return Fault(name, target, started, healed)


def partition_zookeeper(cluster: ChaosCluster, rng: random.Random) -> Fault:
    broker_id = rng.choice(BROKER_IDS)
    return _cut_past_session(cluster, rng, broker_id, ["zk"], "partition-zookeeper", f"broker {broker_id} | zookeeper")


def isolate_broker(cluster: ChaosCluster, rng: random.Random) -> Fault:
    partition, broker_id = _leader_of_random_partition(cluster, rng)
    peers = ["zk", *(f"b{b}" for b in BROKER_IDS if b != broker_id)]
    return _cut_past_session(cluster, rng, broker_id, peers, "isolate-broker",
                             f"broker {broker_id} (leader of {cluster.topic}-{partition}) | all")


def packet_loss(cluster: ChaosCluster, rng: random.Random) -> Fault:
    partition, broker_id = _leader_of_random_partition(cluster, rng)
    percent = rng.randint(30, 50)
    peers = [f"b{b}" for b in BROKER_IDS if b != broker_id]
    started = time.monotonic()
    try:
        for peer in peers:
            cluster.network.lose(f"b{broker_id}", peer, percent)
        time.sleep(REPLICA_LAG_MS / 1000 + rng.uniform(2, 6))
    finally:
        for peer in peers:
            cluster.network.stop_losing(f"b{broker_id}", peer)
    return Fault("packet-loss", f"broker {broker_id} (leader of {cluster.topic}-{partition}) | brokers, {percent}%",
                 started, time.monotonic())


def _restart_after_disk_fault(cluster: ChaosCluster, broker_id: int, what: str) -> None:
    """Kafka brings a failed log dir back with a restart: SIGTERM must exit 0, the start recover it."""
    broker = cluster.kafka.brokers[broker_id]
    code = broker.stop(timeout=60)
    if code != 0:
        raise AssertionError(f"broker {broker_id} exited {code} on SIGTERM after {what}")
    cluster.restart(broker_id)
    cluster.wait(lambda: broker_id in cluster.live(), f"broker {broker_id} to register again")


def disk_full(cluster: ChaosCluster, rng: random.Random) -> Fault:
    started = time.monotonic()
    try:
        fill(cluster.disk.mount_point, FILLER)
        time.sleep(rng.uniform(4, 8))  # followers' and producers' writes hit the full dir meanwhile
    finally:
        cluster.free_disk()
    _restart_after_disk_fault(cluster, DISK_BROKER, "its log dir filled up")
    return Fault("disk-full", f"broker {DISK_BROKER} (tmpfs log dir)", started, time.monotonic())


def io_error(cluster: ChaosCluster, rng: random.Random) -> Fault:
    started = time.monotonic()
    try:
        cluster.failing_fs.fail(True)
        time.sleep(rng.uniform(4, 8))
    finally:
        cluster.failing_fs.fail(False)
    _restart_after_disk_fault(cluster, EIO_BROKER, "its log dir failed with EIO")
    return Fault("io-error", f"broker {EIO_BROKER} (FUSE log dir, EIO)", started, time.monotonic())


NEMESES = (
    Nemesis("kill-broker", kill_broker),
    Nemesis("kill-controller", kill_controller),
    Nemesis("kill-leader", kill_leader),
    Nemesis("pause-broker", pause_broker),
    Nemesis("kill-zookeeper", kill_zookeeper),
    Nemesis("partition-brokers", partition_brokers, needs_network=True),
    Nemesis("partition-zookeeper", partition_zookeeper, needs_network=True),
    Nemesis("isolate-broker", isolate_broker, needs_network=True),
    Nemesis("packet-loss", packet_loss, needs_network=True, needs_loss=True),
    Nemesis("disk-full", disk_full, needs_disk=True),
    Nemesis("io-error", io_error, needs_failing_fs=True),
)


def skipped(cluster: ChaosCluster) -> dict[str, str]:
    """Nemeses that cannot run in this setting, with the reason."""
    reasons = {}
    for nemesis in NEMESES:
        if nemesis.needs_network and cluster.network.partition_unavailable:
            reasons[nemesis.name] = cluster.network.partition_unavailable
        elif nemesis.needs_loss and cluster.network.loss_unavailable:
            reasons[nemesis.name] = cluster.network.loss_unavailable
        elif nemesis.needs_failing_fs and cluster.failing_fs_unavailable:
            reasons[nemesis.name] = f"no FUSE log dir: {cluster.failing_fs_unavailable}"
        elif nemesis.needs_disk and cluster.disk_unavailable:
            reasons[nemesis.name] = f"no tmpfs log dir: {cluster.disk_unavailable}"
    return reasons
