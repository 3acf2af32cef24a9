"""scripts/chaos's nemeses: each applies one fault to the cluster, holds it, heals it, and returns
the Fault (when it began, when it was healed) for the unavailability windows. The runner waits
for the cluster to be whole again before the next one. Targets and hold times come from the
run's seeded random.Random, so a seed replays the same schedule.

- kill-broker / kill-controller / kill-leader: kill -9 of a random broker, of the controller,
  of the leader of a random partition; restarted once ZooKeeper has dropped its session.
- pause-broker: SIGSTOP past zookeeper.session.timeout.ms, then SIGCONT.
- kill-zookeeper: ZooKeeper itself killed -9 and restarted on the same data.
- partition-brokers: one broker cut off from the other two (not from ZooKeeper) for longer than
  replica.lag.time.max.ms.
- partition-zookeeper: one broker cut off from ZooKeeper past its session timeout.
- disk-full: not run here (needs the log-dir failure handling of branch `diskfaults`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from chaos_checker import Fault
from chaos_cluster import BROKER_IDS, REPLICA_LAG_MS, SESSION_TIMEOUT_MS, ChaosCluster

SESSION_S = SESSION_TIMEOUT_MS / 1000
EXPIRY_TIMEOUT_S = SESSION_S + 20


@dataclass(frozen=True)
class Nemesis:
    name: str
    run: Callable[[ChaosCluster, random.Random], Fault]
    needs_network: bool = False
    unavailable: str | None = None  # why it never runs here


def _kill_and_restart(cluster: ChaosCluster, broker_id: int, name: str, rng: random.Random) -> Fault:
    started = time.monotonic()
    cluster.kafka.kill(broker_id)
    time.sleep(rng.uniform(0, 2))
    cluster.restart_after_expiry(broker_id)
    return Fault(name, f"broker {broker_id}", started, time.monotonic())


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
    fault = _kill_and_restart(cluster, leader, "kill-leader", rng)
    return Fault(fault.nemesis, f"broker {leader} (leader of {cluster.topic}-{partition})", fault.started, fault.healed)


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


def partition_zookeeper(cluster: ChaosCluster, rng: random.Random) -> Fault:
    """Cut one broker off from ZooKeeper until its session has expired, then heal."""
    broker_id = rng.choice(BROKER_IDS)
    epoch = cluster.epoch(broker_id)
    started = time.monotonic()
    try:
        cluster.network.partition(f"b{broker_id}", "zk")
        cluster.wait(lambda: broker_id not in cluster.live(), f"broker {broker_id}'s session to expire",
                     timeout=EXPIRY_TIMEOUT_S)
        time.sleep(rng.uniform(1, 4))
    finally:
        cluster.network.heal(f"b{broker_id}", "zk")
    healed = time.monotonic()
    cluster.wait(lambda: cluster.epoch(broker_id) > epoch, f"broker {broker_id} to register with a new epoch",
                 timeout=EXPIRY_TIMEOUT_S + 10)
    return Fault("partition-zookeeper", f"broker {broker_id} | zookeeper", started, healed)


def _not_run(_cluster: ChaosCluster, _rng: random.Random) -> Fault:
    raise RuntimeError("this nemesis is not run")


NEMESES = (
    Nemesis("kill-broker", kill_broker),
    Nemesis("kill-controller", kill_controller),
    Nemesis("kill-leader", kill_leader),
    Nemesis("pause-broker", pause_broker),
    Nemesis("kill-zookeeper", kill_zookeeper),
    Nemesis("partition-brokers", partition_brokers, needs_network=True),
    Nemesis("partition-zookeeper", partition_zookeeper, needs_network=True),
    Nemesis("disk-full", _not_run, unavailable="needs log-dir failure handling (branch diskfaults, not merged "
                                                "here) and a tmpfs log dir: not implemented in this runner"),
)


def skipped(cluster: ChaosCluster) -> dict[str, str]:
    """Nemeses that cannot run in this setting, with the reason."""
    reasons = {}
    for nemesis in NEMESES:
        if nemesis.unavailable:
            reasons[nemesis.name] = nemesis.unavailable
        elif nemesis.needs_network and cluster.network.partition_unavailable:
            reasons[nemesis.name] = cluster.network.partition_unavailable
    return reasons
