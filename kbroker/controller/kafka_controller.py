"""KafkaController: elects itself through /controller, then drives partition state.

Like Kafka's controller (KAFKA-FACTS.md §2), every change arrives as an event (a znode watch)
that runs to completion on the event loop: new topics and partitions get their leader and ISR
written to their state znodes (fenced by the controller epoch), and brokers are told through
LeaderAndIsr, UpdateMetadata and StopReplica requests (plain dicts in the codec's field names)
handed to the ControllerChannelManager. Deleted topics are stopped and removed. In single-node
mode the same code runs against the embedded store and a channel that delivers locally.
It must not touch logs or sockets directly: brokers act on the requests it sends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from kbroker.api.protocol.api_keys import ApiKey
from kbroker.metadata import zk_data as zk
from kbroker.metadata.kafka_zk_client import ControllerMovedError, KafkaZkClient
from kbroker.metadata.metadata_cache import uuid_from_base64

log = logging.getLogger("kbroker.controller")

LEADER_AND_ISR_VERSION = 7
UPDATE_METADATA_VERSION = 8
STOP_REPLICA_VERSION = 4
NO_LEADER = -1


class ControllerChannel(Protocol):
    def send(self, broker_id: int, api_key: int, version: int, request: dict) -> None: ...


class KafkaController:
    def __init__(self, broker_id: int, zk_client: KafkaZkClient, channel: ControllerChannel,
                 broker_epoch: Callable[[], int]) -> None:
        self.broker_id = broker_id
        self.zk = zk_client
        self.channel = channel
        self.broker_epoch = broker_epoch
        self.epoch = 0
        self.epoch_zk_version = -1
        self.is_active = False
        self.live_brokers: dict[int, zk.BrokerRegistration] = {}
        self.assignments: dict[str, zk.TopicAssignment] = {}
        self.states: dict[tuple[str, int], zk.LeaderIsrAndControllerEpoch] = {}

    # -- election and failover ------------------------------------------------------------------
    def elect(self) -> bool:
        won = self.zk.try_elect_controller(self.broker_id)
        if won is None:
            return False
        self.epoch, self.epoch_zk_version = won
        self.is_active = True
        log.info("broker %d is the controller (epoch %d)", self.broker_id, self.epoch)
        self.on_controller_failover()
        return True

    def on_controller_failover(self) -> None:
        store = self.zk.store
        store.watch_children(zk.TOPICS, self._on_topics_changed)
        store.watch_children(zk.DELETE_TOPICS, self._on_delete_topics)
        store.watch_children(zk.BROKER_IDS, self._on_brokers_changed)
        self.live_brokers = {b.broker_id: b for b in self.zk.get_all_brokers()}
        for topic in self.zk.get_all_topics():
            self._load_topic(topic)
        self._send_update_metadata(list(self.live_brokers), self._all_partitions())
        self._initialize_partitions(self._all_partitions())
        self._send_leader_and_isr(self._all_partitions())
        self._on_delete_topics()

    def _load_topic(self, topic: str) -> None:
        assignment = self.zk.get_topic_assignment(topic)
        if assignment is None:
            return
        self.assignments[topic] = assignment
        self.zk.store.watch_data(zk.topic_path(topic), lambda: self._on_topic_changed(topic))
        for partition in assignment.partitions:
            state = self.zk.get_partition_state(topic, partition)
            if state is not None:
                self.states[(topic, partition)] = state

    def _all_partitions(self) -> list[tuple[str, int]]:
        return [(t, p) for t, a in self.assignments.items() for p in sorted(a.partitions)]

    # -- events -----------------------------------------------------------------------------
    def _guard(self, event: Callable[[], None]) -> None:
        if not self.is_active:
            return
        try:
            event()
        except ControllerMovedError:
            log.warning("controller moved: resigning")
            self.is_active = False

    def _on_topics_changed(self) -> None:
        def event() -> None:
            new = [t for t in self.zk.get_all_topics() if t not in self.assignments]
            partitions = []
            for topic in new:
                self._load_topic(topic)
                partitions += [(topic, p) for p in sorted(self.assignments.get(topic, zk.TopicAssignment(
                    None, {}, {}, {})).partitions)]
            self._online_new_partitions(partitions)
        self._guard(event)

    def _on_topic_changed(self, topic: str) -> None:
        """Partitions added to an existing topic (CreatePartitions)."""
        def event() -> None:
            assignment = self.zk.get_topic_assignment(topic)
            if assignment is None or topic not in self.assignments:
                return
            known = self.assignments[topic].partitions
            added = [(topic, p) for p in sorted(assignment.partitions) if p not in known]
            self.assignments[topic] = assignment
            self._online_new_partitions(added)
        self._guard(event)

    def _on_brokers_changed(self) -> None:
        def event() -> None:
            current = {b.broker_id: b for b in self.zk.get_all_brokers()}
            joined = [b for b in current if b not in self.live_brokers]
            self.live_brokers = current
            if joined:
                self._send_update_metadata(list(current), self._all_partitions())
                self._send_leader_and_isr(self._all_partitions(), only_brokers=set(joined))
        self._guard(event)

    def _on_delete_topics(self) -> None:
        def event() -> None:
            for topic in self.zk.topics_to_delete():
                self._delete_topic(topic)
        self._guard(event)

    # -- partition state machine ----------------------------------------------------------------
    def _online_new_partitions(self, partitions: list[tuple[str, int]]) -> None:
        if not partitions:
            return
        self._initialize_partitions(partitions)
        self._send_leader_and_isr(partitions, is_new=True)
        self._send_update_metadata(list(self.live_brokers), partitions)

    def _initialize_partitions(self, partitions: list[tuple[str, int]]) -> None:
        """NewPartition -> OnlinePartition: leader = first live replica, ISR = live replicas."""
        for topic, partition in partitions:
            if (topic, partition) in self.states:
                continue
            replicas = self.assignments[topic].partitions[partition]
            live = [r for r in replicas if r in self.live_brokers]
            if not live:
                log.warning("partition %s-%d has no live replica: it stays offline", topic, partition)
                continue
            state = zk.LeaderIsrAndControllerEpoch(live[0], 0, live, self.epoch)
            if self.zk.get_partition_state(topic, partition) is None:
                self.zk.create_partition_state(topic, partition, state, self.epoch_zk_version)
            else:
                state = self.zk.get_partition_state(topic, partition)
            self.states[(topic, partition)] = state

    def _delete_topic(self, topic: str) -> None:
        assignment = self.assignments.pop(topic, None) or self.zk.get_topic_assignment(topic)
        if assignment is not None:
            for broker_id in sorted({r for rs in assignment.partitions.values() for r in rs}):
                if broker_id in self.live_brokers:
                    self._send_stop_replica(broker_id, topic, sorted(assignment.partitions))
            for partition in assignment.partitions:
                self.states.pop((topic, partition), None)
        self.zk.delete_topic_znodes(topic, self.epoch_zk_version)
        log.info("deleted topic %s", topic)
        self._send_update_metadata(list(self.live_brokers), [], deleted_topics=[topic])

    # -- requests to brokers ------------------------------------------------------------------
    def _partition_state(self, topic: str, partition: int, is_new: bool = False) -> dict | None:
        state = self.states.get((topic, partition))
        if state is None:
            return None
        return {
            "topic_name": topic, "partition_index": partition, "controller_epoch": state.controller_epoch,
            "leader": state.leader, "leader_epoch": state.leader_epoch, "isr": list(state.isr),
            "partition_epoch": state.zk_version, "zk_version": state.zk_version,
            "replicas": list(self.assignments[topic].partitions[partition]),
            "adding_replicas": [], "removing_replicas": [], "is_new": is_new,
            "offline_replicas": [r for r in self.assignments[topic].partitions[partition]
                                 if r not in self.live_brokers],
            "leader_recovery_state": state.leader_recovery_state,
        }

    def _topic_id(self, topic: str):
        text = self.assignments[topic].topic_id
        return uuid_from_base64(text) if text else None

    def _group_by_topic(self, partitions: list[tuple[str, int]], is_new: bool = False) -> list[dict]:
        topics: dict[str, dict] = {}
        for topic, partition in partitions:
            state = self._partition_state(topic, partition, is_new)
            if state is None:
                continue
            entry = topics.setdefault(topic, {"topic_name": topic, "topic_id": self._topic_id(topic),
                                              "partition_states": []})
            entry["partition_states"].append(state)
        return list(topics.values())

    def _send_leader_and_isr(self, partitions: list[tuple[str, int]], is_new: bool = False,
                             only_brokers: set[int] | None = None) -> None:
        by_broker: dict[int, list[tuple[str, int]]] = {}
        for topic, partition in partitions:
            for replica in self.assignments[topic].partitions[partition]:
                if replica in self.live_brokers and (only_brokers is None or replica in only_brokers):
                    by_broker.setdefault(replica, []).append((topic, partition))
        for broker_id, parts in by_broker.items():
            topic_states = self._group_by_topic(parts, is_new)
            leaders = {ps["leader"] for t in topic_states for ps in t["partition_states"]}
            request = {
                "controller_id": self.broker_id, "controller_epoch": self.epoch,
                "broker_epoch": self.live_brokers[broker_id].epoch, "type": 0,
                "topic_states": topic_states,
                "live_leaders": [self._live_leader(b) for b in sorted(leaders) if b in self.live_brokers],
            }
            self.channel.send(broker_id, ApiKey.LEADER_AND_ISR, LEADER_AND_ISR_VERSION, request)

    def _live_leader(self, broker_id: int) -> dict:
        name, host, port, _ = self.live_brokers[broker_id].endpoints[0]
        return {"broker_id": broker_id, "host_name": host, "port": port}

    def _send_update_metadata(self, broker_ids: list[int], partitions: list[tuple[str, int]],
                              deleted_topics: list[str] = ()) -> None:
        topic_states = self._group_by_topic(partitions)
        for topic in deleted_topics:
            # A deleted topic travels as partitions whose leader is LeaderDuringDelete (-2).
            topic_states.append({"topic_name": topic, "topic_id": None, "partition_states": [
                {"topic_name": topic, "partition_index": -1, "leader": -2, "leader_epoch": 0, "isr": [],
                 "replicas": [], "offline_replicas": [], "controller_epoch": self.epoch, "zk_version": 0}]})
        live = [{"id": b.broker_id, "rack": b.rack,
                 "endpoints": [{"port": port, "host": host, "listener": name, "security_protocol": _protocol_id(proto)}
                               for name, host, port, proto in b.endpoints]}
                for b in self.live_brokers.values()]
        for broker_id in broker_ids:
            request = {"controller_id": self.broker_id, "controller_epoch": self.epoch,
                       "broker_epoch": self.live_brokers[broker_id].epoch, "topic_states": topic_states,
                       "live_brokers": live}
            self.channel.send(broker_id, ApiKey.UPDATE_METADATA, UPDATE_METADATA_VERSION, request)

    def _send_stop_replica(self, broker_id: int, topic: str, partitions: list[int]) -> None:
        request = {"controller_id": self.broker_id, "controller_epoch": self.epoch,
                   "broker_epoch": self.live_brokers[broker_id].epoch,
                   "topic_states": [{"topic_name": topic, "partition_states": [
                       {"partition_index": p, "leader_epoch": -2, "delete_partition": True}
                       for p in partitions]}]}
        self.channel.send(broker_id, ApiKey.STOP_REPLICA, STOP_REPLICA_VERSION, request)


_SECURITY_PROTOCOLS = {"PLAINTEXT": 0, "SSL": 1, "SASL_PLAINTEXT": 2, "SASL_SSL": 3}


def _protocol_id(name: str) -> int:
    return _SECURITY_PROTOCOLS.get(name, 0)
