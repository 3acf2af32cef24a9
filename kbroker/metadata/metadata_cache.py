"""MetadataCache: this broker's view of the cluster, as Kafka's UpdateMetadata keeps it.

Plain data: live brokers with their endpoints per listener, the controller id, the cluster id
and every topic's partitions (leader, leader epoch, ISR, replicas, offline replicas). The
controller fills it (in single-node mode directly, in cluster mode through UpdateMetadata);
handlers read it. It knows nothing of ZooKeeper, sockets or Kafka requests.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field

ZERO_UUID = uuid.UUID(int=0)

# Kafka's internal topics: reported with is_internal in Metadata.
INTERNAL_TOPICS = frozenset({"__consumer_offsets", "__transaction_state"})


def uuid_to_base64(value: uuid.UUID) -> str:
    """Kafka's string form of a Uuid: url-safe base64 without padding (22 chars)."""
    return base64.urlsafe_b64encode(value.bytes).rstrip(b"=").decode()


def uuid_from_base64(text: str) -> uuid.UUID:
    return uuid.UUID(bytes=base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))


def random_kafka_uuid() -> uuid.UUID:
    """A random Uuid that Kafka would accept: not zero and whose string does not start with '-'."""
    while True:
        value = uuid.uuid4()
        if value != ZERO_UUID and not uuid_to_base64(value).startswith("-"):
            return value


@dataclass(slots=True)
class BrokerEndpoint:
    listener_name: str
    host: str
    port: int
    security_protocol: str = "PLAINTEXT"


@dataclass(slots=True)
class BrokerInfo:
    broker_id: int
    endpoints: dict[str, BrokerEndpoint]
    rack: str | None = None
    epoch: int = -1

    def endpoint(self, listener_name: str) -> BrokerEndpoint | None:
        return self.endpoints.get(listener_name)


@dataclass(slots=True)
class PartitionState:
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

    def is_alive(self, broker_id: int) -> bool:
        return broker_id in self.brokers

    def topic(self, name: str) -> TopicMetadata | None:
        return self.topics.get(name)

    def topic_by_id(self, topic_id: uuid.UUID) -> TopicMetadata | None:
        return self.topics_by_id.get(topic_id)

    def partition(self, topic: str, partition: int) -> PartitionState | None:
        t = self.topics.get(topic)
        return None if t is None else t.partitions.get(partition)
