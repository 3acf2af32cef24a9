"""Controller requests a client could forge, for the tests of the controller fence (issue 16, bug 12).

Each is harmful if a broker accepted it: an UpdateMetadata with no live broker and the topic
marked deleted (the metadata cache would forget both), a LeaderAndIsr handing the partition to
a broker that does not exist, a StopReplica deleting the partition's log. `send_forged` sends
all three with the given ids and epochs over one RawClient and returns their error codes.

Must not start or stop brokers and must not write to a broker's data dir.
"""

from __future__ import annotations

from typing import Any

from kbroker.testing.raw_client import RawClient

LEADER_AND_ISR = 4
STOP_REPLICA = 5
UPDATE_METADATA = 6
LEADER_AND_ISR_VERSION = 7
STOP_REPLICA_VERSION = 4
UPDATE_METADATA_VERSION = 8
NOBODY = 999  # a broker id no test cluster has
LEADER_DURING_DELETE = -2


def emptying_update_metadata(controller_id: int, controller_epoch: int, broker_epoch: int, topic: str) -> dict:
    """No live broker, and `topic` deleted (its partitions led by -2)."""
    return {"controller_id": controller_id, "controller_epoch": controller_epoch, "broker_epoch": broker_epoch,
            "live_brokers": [], "topic_states": [{"topic_name": topic, "partition_states": [
                {"topic_name": topic, "partition_index": -1, "controller_epoch": controller_epoch,
                 "leader": LEADER_DURING_DELETE, "leader_epoch": 0, "isr": [], "zk_version": 0, "replicas": [],
                 "offline_replicas": []}]}]}


def demoting_leader_and_isr(controller_id: int, controller_epoch: int, broker_epoch: int, topic: str,
                            replicas: list[int]) -> dict:
    """Partition 0 of `topic` led by NOBODY at a far newer leader epoch."""
    return {"controller_id": controller_id, "controller_epoch": controller_epoch, "broker_epoch": broker_epoch,
            "type": 0, "topic_states": [{"topic_name": topic, "partition_states": [
                {"topic_name": topic, "partition_index": 0, "controller_epoch": controller_epoch, "leader": NOBODY,
                 "leader_epoch": 10_000, "isr": [NOBODY], "partition_epoch": 10_000,
                 "replicas": [*replicas, NOBODY], "adding_replicas": [], "removing_replicas": [],
                 "is_new": False, "leader_recovery_state": 0}]}],
            "live_leaders": [{"broker_id": NOBODY, "host_name": "127.0.0.1", "port": 1}]}


def deleting_stop_replica(controller_id: int, controller_epoch: int, broker_epoch: int, topic: str) -> dict:
    """Stop partition 0 of `topic` and delete its log ("being deleted" epoch, which always passes
    the leader-epoch check)."""
    return {"controller_id": controller_id, "controller_epoch": controller_epoch, "broker_epoch": broker_epoch,
            "topic_states": [{"topic_name": topic, "partition_states": [
                {"partition_index": 0, "leader_epoch": LEADER_DURING_DELETE, "delete_partition": True}]}]}


def send_forged(client: RawClient, controller_id: int, controller_epoch: int, broker_epoch: int, topic: str,
                replicas: list[int]) -> dict[str, Any]:
    """The three forged requests; returns each answer by API name."""
    return {
        "UpdateMetadata": client.call(UPDATE_METADATA, UPDATE_METADATA_VERSION, emptying_update_metadata(
            controller_id, controller_epoch, broker_epoch, topic)),
        "LeaderAndIsr": client.call(LEADER_AND_ISR, LEADER_AND_ISR_VERSION, demoting_leader_and_isr(
            controller_id, controller_epoch, broker_epoch, topic, replicas)),
        "StopReplica": client.call(STOP_REPLICA, STOP_REPLICA_VERSION, deleting_stop_replica(
            controller_id, controller_epoch, broker_epoch, topic)),
    }
