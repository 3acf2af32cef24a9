"""AdminZkClient: topic administration as Kafka's AdminZkClient does it, on the znode tree.

Creating a topic writes its config and assignment znodes (the controller's watch then brings its
partitions online); adding partitions rewrites the assignment; deleting writes the marker under
/admin/delete_topics; config changes write /config/topics/<t> and a change notification.
Replica assignment is Kafka's rack-unaware algorithm (AdminUtils.assignReplicasToBrokers): a
random start, round robin for the first replica, a shifting offset for the others; with
broker.rack set on every broker, the rack-aware variant alternates racks.
Validation returns Kafka's error codes; nothing here touches logs or requests. No request may
ask for more than MAX_PARTITIONS_PER_REQUEST new partitions: placing replicas is a loop on the
event loop, and a count of 2,147,483,647 would run it until memory ran out.
"""

from __future__ import annotations

from dataclasses import dataclass

from kbroker.metadata import zk_data as zk
from kbroker.metadata.kafka_zk_client import KafkaZkClient
from kbroker.metadata.topic_names import collision_key, topic_name_error
from kbroker.metadata.znode_store import NodeExistsError
from kbroker.protocol.errors import Errors
from kbroker.protocol.uuids import random_kafka_uuid, uuid_to_base64

# Kafka 4's controller refuses a CreateTopics request adding up to more partitions than this
# (ReplicationControlManager.MAX_PARTITIONS_PER_BATCH; 3.9's controller bounds every operation at
# the same number of records), before it places any replica.
MAX_PARTITIONS_PER_REQUEST = 10_000
EXCESSIVE_PARTITIONS = "Excessively large number of partitions per request."


@dataclass(slots=True)
class AdminError(Exception):
    code: Errors
    message: str


def excessive_partitions() -> AdminError:
    """Kafka's answer to a request over MAX_PARTITIONS_PER_REQUEST (a PolicyViolationException)."""
    return AdminError(Errors.POLICY_VIOLATION, EXCESSIVE_PARTITIONS)


def assign_replicas_to_brokers(num_partitions: int, replication_factor: int, brokers: list[int],
                               racks: dict[int, str | None] | None = None,
                               start_index: int | None = None, start_partition: int = 0,
                               first_shift: int | None = None) -> dict[int, list[int]]:
    """Kafka's replica placement (AdminUtils). Raises AdminError for impossible requests."""
    if num_partitions <= 0:
        raise AdminError(Errors.INVALID_PARTITIONS, "Number of partitions must be larger than 0.")
    if replication_factor <= 0:
        raise AdminError(Errors.INVALID_REPLICATION_FACTOR, "Replication factor must be larger than 0.")
    if replication_factor > len(brokers):
        raise AdminError(Errors.INVALID_REPLICATION_FACTOR,
                         f"Replication factor: {replication_factor} larger than available brokers: "
                         f"{len(brokers)}.")
    if num_partitions > MAX_PARTITIONS_PER_REQUEST:  # the callers check first; this keeps the loop bounded
        raise excessive_partitions()
    brokers = sorted(brokers)
    if racks and all(racks.get(b) for b in brokers):
        brokers = _rack_alternated(brokers, racks)
    n = len(brokers)
    import random  # here, not at the top: a broker that creates no topic never needs it (~2 ms of start-up)

    start = random.randrange(n) if start_index is None else start_index
    shift = random.randrange(n) if first_shift is None else first_shift
    current = start_partition
    assignment: dict[int, list[int]] = {}
    for _ in range(num_partitions):
        if current > 0 and current % n == 0:
            shift += 1
        first = (current + start) % n
        replicas = [brokers[first]]
        for j in range(replication_factor - 1):
            replicas.append(brokers[_replica_index(first, shift, j, n)])
        assignment[current] = replicas
        current += 1
    return assignment


def _replica_index(first: int, shift: int, j: int, n: int) -> int:
    offset = 1 + (shift + j) % (n - 1)
    return (first + offset) % n


def _rack_alternated(brokers: list[int], racks: dict[int, str | None]) -> list[int]:
    """Brokers ordered so consecutive ones sit on different racks (AdminUtils.getRackAlternatedBrokerList)."""
    by_rack: dict[str, list[int]] = {}
    for b in brokers:
        by_rack.setdefault(racks[b] or "", []).append(b)
    ordered_racks = sorted(by_rack)
    out: list[int] = []
    while len(out) < len(brokers):
        for rack in ordered_racks:
            if by_rack[rack]:
                out.append(by_rack[rack].pop(0))
    return out


class AdminZkClient:
    def __init__(self, zk_client: KafkaZkClient) -> None:
        self.zk = zk_client

    def validate_new_topic(self, topic: str, existing: list[str]) -> None:
        error = topic_name_error(topic)
        if error is not None:
            raise AdminError(Errors.INVALID_TOPIC_EXCEPTION, error)
        if topic in existing:
            raise AdminError(Errors.TOPIC_ALREADY_EXISTS, f"Topic '{topic}' already exists.")
        key = collision_key(topic)
        clash = next((t for t in existing if collision_key(t) == key), None)
        if clash is not None:
            raise AdminError(Errors.INVALID_TOPIC_EXCEPTION,
                             f"Topic '{topic}' collides with existing topic: {clash}")

    def create_topic(self, topic: str, assignment: dict[int, list[int]], config: dict[str, str],
                     validate_only: bool = False) -> str:
        """Writes the topic's znodes; returns its topic id (Kafka's base64 form)."""
        self.validate_new_topic(topic, self.zk.get_all_topics())
        self.validate_assignment(assignment)
        topic_id = uuid_to_base64(random_kafka_uuid())
        if not validate_only:
            try:
                self.zk.create_topic(topic, zk.TopicAssignment(topic_id, assignment, {}, {}), config)
            except NodeExistsError:  # another broker created it between our check and our write
                raise AdminError(Errors.TOPIC_ALREADY_EXISTS, f"Topic '{topic}' already exists.") from None
        return topic_id

    @staticmethod
    def validate_assignment(assignment: dict[int, list[int]]) -> None:
        if sorted(assignment) != list(range(len(assignment))):
            raise AdminError(Errors.INVALID_REPLICA_ASSIGNMENT,
                             "Partitions should be a consecutive 0-based integer sequence")
        sizes = {len(r) for r in assignment.values()}
        if len(sizes) > 1:
            raise AdminError(Errors.INVALID_REPLICA_ASSIGNMENT,
                             "All partitions should have the same number of replicas")
        for partition, replicas in assignment.items():
            if not replicas:
                raise AdminError(Errors.INVALID_REPLICA_ASSIGNMENT,
                                 f"Partition {partition} has no replicas")
            if len(set(replicas)) != len(replicas):
                raise AdminError(Errors.INVALID_REPLICA_ASSIGNMENT,
                                 f"Duplicate replica assignment found: {replicas}")

    def add_partitions(self, topic: str, new_total: int, brokers: list[int],
                       explicit: list[list[int]] | None, validate_only: bool = False) -> None:
        current = self.zk.get_topic_assignment(topic)
        if current is None:
            raise AdminError(Errors.UNKNOWN_TOPIC_OR_PARTITION, f"The topic '{topic}' does not exist.")
        existing = len(current.partitions)
        if new_total < existing:
            raise AdminError(Errors.INVALID_PARTITIONS,
                             f"Topic currently has {existing} partitions, which is higher than the "
                             f"requested {new_total}.")
        if new_total == existing:
            raise AdminError(Errors.INVALID_PARTITIONS, f"Topic already has {existing} partitions.")
        rf = len(current.partitions[0])
        added = new_total - existing
        if added > MAX_PARTITIONS_PER_REQUEST:
            raise excessive_partitions()
        if explicit is not None:
            if len(explicit) != added:
                raise AdminError(Errors.INVALID_REPLICA_ASSIGNMENT,
                                 f"Increasing the number of partitions by {added} but {len(explicit)} "
                                 "assignments provided.")
            unknown = sorted({b for rs in explicit for b in rs} - set(brokers))
            if unknown:
                raise AdminError(Errors.INVALID_REPLICA_ASSIGNMENT,
                                 f"Unknown broker(s) in replica assignment: {unknown}.")
            new = {existing + i: list(rs) for i, rs in enumerate(explicit)}
        else:
            start = sorted(brokers).index(current.partitions[0][0]) if current.partitions[0][0] in brokers else None
            new = assign_replicas_to_brokers(added, rf, brokers, start_index=start, start_partition=existing)
        merged = dict(current.partitions)
        merged.update(new)
        self.validate_assignment(merged)
        if not validate_only:
            self.zk.set_topic_assignment(topic, zk.TopicAssignment(current.topic_id, merged, current.adding,
                                                                   current.removing))

    def delete_topic(self, topic: str) -> None:
        if self.zk.get_topic_assignment(topic) is None:
            raise AdminError(Errors.UNKNOWN_TOPIC_OR_PARTITION, f"Topic '{topic}' does not exist.")
        self.zk.mark_topic_for_deletion(topic)

    def change_topic_config(self, topic: str, config: dict[str, str]) -> None:
        if self.zk.get_topic_assignment(topic) is None:
            raise AdminError(Errors.UNKNOWN_TOPIC_OR_PARTITION, f"Topic {topic} does not exist.")
        self.zk.set_topic_config(topic, config)
