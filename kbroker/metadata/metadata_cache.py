"""MetadataCache: this broker's view of the cluster, as Kafka's UpdateMetadata keeps it.

Plain data: live brokers with their endpoints per listener, the controller id, the cluster id
and every topic's partitions (leader, leader epoch, ISR, replicas, offline replicas). The
controller fills it through UpdateMetadata requests (handed over locally in single-node mode);
handlers read it, and may wait for the next change. It knows nothing of ZooKeeper or sockets.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field

from kbroker.metadata.topic_names import GROUP_METADATA_TOPIC_NAME, TRANSACTION_STATE_TOPIC_NAME
from kbroker.protocol.uuids import ZERO_UUID

LEADER_DURING_DELETE = -2
_PROTOCOL_NAMES = {0: "PLAINTEXT", 1: "SSL", 2: "SASL_PLAINTEXT", 3: "SASL_SSL"}

# Kafka's internal topics: reported with is_internal in Metadata.
INTERNAL_TOPICS = frozenset({GROUP_METADATA_TOPIC_NAME, TRANSACTION_STATE_TOPIC_NAME})


@dataclass(slots=True)
class BrokerEndpoint:
    """One listener of a live broker, as Metadata answers name it."""

    listener_name: str
    host: str
    port: int
    security_protocol: str = "PLAINTEXT"


@dataclass(slots=True)
class BrokerInfo:
    """A live broker: its endpoints by listener name, rack and registration epoch."""

    broker_id: int
    endpoints: dict[str, BrokerEndpoint]
    rack: str | None = None
    epoch: int = -1

    def endpoint(self, listener_name: str) -> BrokerEndpoint | None:
        return self.endpoints.get(listener_name)


@dataclass(slots=True)
class PartitionState:
    """A partition's leader, epochs and replicas, as the controller last sent them."""

    topic: str
    partition: int
    leader: int
    leader_epoch: int
    isr: list[int]
    replicas: list[int]
    offline_replicas: list[int] = field(default_factory=list)
    partition_epoch: int = 0
    controller_epoch: int = 0


@dataclass(slots=True)
class TopicMetadata:
    """A topic's id and partitions."""

    name: str
    topic_id: uuid.UUID
    partitions: dict[int, PartitionState] = field(default_factory=dict)

    @property
    def is_internal(self) -> bool:
        return self.name in INTERNAL_TOPICS


class MetadataCache:
    def __init__(self, broker_id: int) -> None:
        self.broker_id = broker_id
        self.cluster_id: str | None = None
        self.controller_id: int = -1
        self.brokers: dict[int, BrokerInfo] = {}
        self.topics: dict[str, TopicMetadata] = {}
        self.topics_by_id: dict[uuid.UUID, TopicMetadata] = {}
        self._waiters: list[asyncio.Future] = []

    # -- UpdateMetadata ------------------------------------------------------------------
    def update_metadata(self, request: dict) -> list[str]:
        """Applies an UpdateMetadata request (codec dict); returns the names of deleted topics."""
        self.controller_id = request["controller_id"]
        self.set_brokers([
            BrokerInfo(b["id"], {e["listener"]: BrokerEndpoint(e["listener"], e["host"], e["port"],
                                                               _PROTOCOL_NAMES.get(e["security_protocol"], "PLAINTEXT"))
                                 for e in b["endpoints"]}, b["rack"])
            for b in request["live_brokers"]])
        deleted = []
        for topic_state in request["topic_states"]:
            name = topic_state["topic_name"]
            for ps in topic_state["partition_states"]:
                if ps["leader"] == LEADER_DURING_DELETE:
                    deleted.append(name)
                    self.remove_topic(name)
                    break
                topic = self.topics.get(name)
                topic_id = topic_state["topic_id"] or ZERO_UUID
                if topic is None or (topic_id != ZERO_UUID and topic.topic_id != topic_id):
                    topic = TopicMetadata(name, topic_id)
                    self.put_topic(topic)
                topic.partitions[ps["partition_index"]] = PartitionState(
                    name, ps["partition_index"], ps["leader"], ps["leader_epoch"], list(ps["isr"]),
                    list(ps["replicas"]), list(ps["offline_replicas"]), ps["zk_version"],
                    ps["controller_epoch"])
        self._wake()
        return deleted

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    async def wait_for_change(self, timeout: float) -> None:
        """Returns after the next update, or when `timeout` seconds have passed."""
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            pass

    # -- updates (from the controller) --------------------------------------------------
    def set_brokers(self, brokers: list[BrokerInfo]) -> None:
        self.brokers = {b.broker_id: b for b in brokers}

    def put_topic(self, topic: TopicMetadata) -> None:
        old = self.topics.get(topic.name)
        if old is not None and old.topic_id != topic.topic_id:
            self.topics_by_id.pop(old.topic_id, None)
        self.topics[topic.name] = topic
        self.topics_by_id[topic.topic_id] = topic

    def update_partition(self, state: PartitionState) -> None:
        self.topics[state.topic].partitions[state.partition] = state

    def remove_topic(self, name: str) -> TopicMetadata | None:
        topic = self.topics.pop(name, None)
        if topic is not None:
            self.topics_by_id.pop(topic.topic_id, None)
        return topic

    # -- queries --------------------------------------------------------------------------
    def alive_brokers(self) -> list[BrokerInfo]:
        return sorted(self.brokers.values(), key=lambda b: b.broker_id)

    def endpoint_of(self, broker_id: int, listener_name: str) -> BrokerEndpoint | None:
        """A live broker's endpoint on one listener; None if it is not alive or has no such listener."""
        broker = self.brokers.get(broker_id)
        return broker.endpoint(listener_name) if broker is not None else None

    def alive_endpoints(self, listener_name: str) -> list[tuple[BrokerInfo, BrokerEndpoint]]:
        """Live brokers with their endpoint on one listener (clients are told that listener's)."""
        found = ((b, b.endpoint(listener_name)) for b in self.alive_brokers())
        return [(b, e) for b, e in found if e is not None]

    def is_alive(self, broker_id: int) -> bool:
        return broker_id in self.brokers

    def topic(self, name: str) -> TopicMetadata | None:
        return self.topics.get(name)

    def topic_by_id(self, topic_id: uuid.UUID) -> TopicMetadata | None:
        return self.topics_by_id.get(topic_id)

    def partition(self, topic: str, partition: int) -> PartitionState | None:
        t = self.topics.get(topic)
        return None if t is None else t.partitions.get(partition)
