"""AdminManager: topic creation, deletion, partition and config changes on behalf of requests.

Kafka's ZkAdminManager plus AutoTopicCreationManager: fills in defaults (num.partitions,
default.replication.factor), validates names, counts, assignments and configs with Kafka's error
codes, writes through AdminZkClient, then waits (up to the request's timeout) until the
controller has brought the change into this broker's metadata cache. A topic's config overrides
are read and replaced here too (AlterConfigs and IncrementalAlterConfigs check them first, in
kbroker/api/config_helper.py). Results are plain tuples
for the handlers to shape; nothing here knows the wire format.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from kbroker.config import KafkaConfig, validate_topic_config
from kbroker.metadata.admin_zk_client import (
    MAX_PARTITIONS_PER_REQUEST,
    AdminError,
    AdminZkClient,
    assign_replicas_to_brokers,
    excessive_partitions,
)
from kbroker.metadata.metadata_cache import MetadataCache
from kbroker.protocol.errors import Errors
from kbroker.protocol.uuids import uuid_from_base64

log = logging.getLogger("kbroker.admin")

INTERNAL_TOPIC_PREFIX = "__"


@dataclass(slots=True)
class TopicRequest:
    name: str
    num_partitions: int = -1
    replication_factor: int = -1
    assignments: dict[int, list[int]] = field(default_factory=dict)
    configs: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class TopicResult:
    name: str
    error: Errors = Errors.NONE
    message: str | None = None
    topic_id: object = None
    num_partitions: int = -1
    replication_factor: int = -1
    configs: dict[str, str] = field(default_factory=dict)


class AdminManager:
    def __init__(self, config: KafkaConfig, admin_zk: AdminZkClient, cache: MetadataCache) -> None:
        self.config = config
        self.admin_zk = admin_zk
        self.cache = cache

    # -- create -----------------------------------------------------------------------------
    def check_partitions_requested(self, requests: list[TopicRequest]) -> AdminError | None:
        """POLICY_VIOLATION when the topics of one CreateTopics request add up to more than
        MAX_PARTITIONS_PER_REQUEST partitions, checked before anything else, as Kafka 4's
        ReplicationControlManager.validateTotalNumberOfPartitions does (its answer goes to every
        topic of the request). Counts that are invalid anyway (0, below -1) count as none."""
        total = sum(self._partitions_requested(r) for r in requests)
        return excessive_partitions() if total > MAX_PARTITIONS_PER_REQUEST else None

    def _partitions_requested(self, req: TopicRequest) -> int:
        if req.assignments:
            return len(req.assignments)
        if req.num_partitions == -1:
            return int(self.config.get("num.partitions"))
        return max(req.num_partitions, 0)

    def _prepare(self, req: TopicRequest) -> tuple[dict[int, list[int]], int, int]:
        if req.assignments:
            if req.num_partitions != -1 or req.replication_factor != -1:
                raise AdminError(Errors.INVALID_REQUEST,
                                 "Both numPartitions or replicationFactor and replicasAssignments were set. "
                                 "Both cannot be used at the same time.")
            assignment = {p: list(r) for p, r in req.assignments.items()}
            AdminZkClient.validate_assignment(assignment)
            unknown = sorted({b for rs in assignment.values() for b in rs} - set(self.cache.brokers))
            if unknown:
                raise AdminError(Errors.INVALID_REPLICA_ASSIGNMENT,
                                 f"Unknown broker(s) in replica assignment: {unknown}.")
            return assignment, len(assignment), len(next(iter(assignment.values())))
        partitions = req.num_partitions if req.num_partitions != -1 else self.config.get("num.partitions")
        replication = (req.replication_factor if req.replication_factor != -1
                       else self.config.get("default.replication.factor"))
        if partitions <= 0:
            raise AdminError(Errors.INVALID_PARTITIONS, "Number of partitions must be larger than 0.")
        if replication <= 0:
            raise AdminError(Errors.INVALID_REPLICATION_FACTOR, "Replication factor must be larger than 0.")
        brokers = self.cache.brokers
        racks = {b.broker_id: b.rack for b in brokers.values()}
        return assign_replicas_to_brokers(partitions, replication, list(brokers), racks), partitions, replication

    def _validate_configs(self, configs: dict[str, str]) -> None:
        for name, value in configs.items():
            if value is None:
                raise AdminError(Errors.INVALID_CONFIG, f"Null value not supported for topic configs: {name}")
            reason = validate_topic_config(name, value)
            if reason is not None:
                raise AdminError(Errors.INVALID_CONFIG, reason)
        reason = self.config.unwritable_topic_message_format(configs)
        if reason is not None:
            raise AdminError(Errors.INVALID_CONFIG, reason)

    def create_topic_now(self, req: TopicRequest, validate_only: bool = False) -> TopicResult:
        """Validates and (unless validate_only) writes one topic; errors come back in the result."""
        try:
            assignment, partitions, replication = self._prepare(req)
            self._validate_configs(req.configs)
            topic_id = self.admin_zk.create_topic(req.name, assignment, req.configs, validate_only)
        except AdminError as exc:
            return TopicResult(req.name, exc.code, exc.message)
        if not validate_only:
            log.info("created topic %s with %d partitions, replication factor %d", req.name, partitions,
                     replication)
        return TopicResult(req.name, Errors.NONE, None, uuid_from_base64(topic_id), partitions, replication,
                           dict(req.configs))

    async def create_topics(self, requests: list[TopicRequest], timeout_ms: int,
                            validate_only: bool) -> list[TopicResult]:
        results = [self.create_topic_now(r, validate_only) for r in requests]
        created = [r for r in results if r.error == Errors.NONE]
        if validate_only or timeout_ms <= 0 or not created:
            return results
        ready = await self.wait_until(lambda: all(self._online(r.name, r.num_partitions) for r in created),
                                      timeout_ms)
        if not ready:
            for r in created:
                if not self._online(r.name, r.num_partitions):
                    r.error, r.message = Errors.REQUEST_TIMED_OUT, "Timed out waiting for the topic to be created"
        return results

    async def auto_create_topic(self, name: str) -> Errors:
        """Metadata's auto-creation: LEADER_NOT_AVAILABLE while it comes up, as Kafka answers."""
        result = self.create_topic_now(TopicRequest(name))
        if result.error in (Errors.NONE, Errors.TOPIC_ALREADY_EXISTS):
            # Give the controller's event a moment: a topic that comes up at once is answered at once.
            await self.wait_until(lambda: self._online(name, None), 200)
            return Errors.LEADER_NOT_AVAILABLE
        return result.error

    def _online(self, topic: str, partitions: int | None) -> bool:
        t = self.cache.topic(topic)
        if t is None or (partitions is not None and len(t.partitions) < partitions):
            return False
        return all(p.leader >= 0 for p in t.partitions.values())

    async def wait_until(self, predicate, timeout_ms: int) -> bool:
        deadline = time.monotonic() + timeout_ms / 1000
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            await self.cache.wait_for_change(remaining)
        return True

    # -- delete -----------------------------------------------------------------------------------
    async def delete_topics(self, names: list[str], timeout_ms: int) -> dict[str, tuple[Errors, str | None]]:
        results: dict[str, tuple[Errors, str | None]] = {}
        for name in names:
            if not self.config.get("delete.topic.enable"):
                results[name] = (Errors.TOPIC_DELETION_DISABLED, "Topic deletion is disabled.")
                continue
            try:
                self.admin_zk.delete_topic(name)
                results[name] = (Errors.NONE, None)
            except AdminError as exc:
                results[name] = (exc.code, exc.message)
        pending = [n for n, (e, _) in results.items() if e == Errors.NONE]
        if pending and timeout_ms > 0:
            done = await self.wait_until(lambda: all(self.cache.topic(n) is None for n in pending), timeout_ms)
            if not done:
                for n in pending:
                    if self.cache.topic(n) is not None:
                        results[n] = (Errors.REQUEST_TIMED_OUT, "Timed out waiting for the topic to be deleted")
        return results

    # -- partitions ---------------------------------------------------------------------------
    def check_partitions_added(self, counts: list[tuple[str, int]]) -> AdminError | None:
        """POLICY_VIOLATION when one CreatePartitions request would add more than
        MAX_PARTITIONS_PER_REQUEST partitions over all its topics: the bound Kafka 4 puts on
        CreateTopics, applied to what CreatePartitions adds (Kafka's controller bounds every
        operation at that many records). Unknown topics and counts that are no increase add none."""
        added = 0
        for name, count in counts:
            topic = self.cache.topic(name)
            if topic is not None:
                added += max(count - len(topic.partitions), 0)
        return excessive_partitions() if added > MAX_PARTITIONS_PER_REQUEST else None

    async def create_partitions(self, changes: list[tuple[str, int, list[list[int]] | None]], timeout_ms: int,
                                validate_only: bool) -> dict[str, tuple[Errors, str | None]]:
        results: dict[str, tuple[Errors, str | None]] = {}
        for name, count, explicit in changes:
            if self.cache.topic(name) is None:
                results[name] = (Errors.UNKNOWN_TOPIC_OR_PARTITION, f"The topic '{name}' does not exist.")
                continue
            try:
                self.admin_zk.add_partitions(name, count, list(self.cache.brokers), explicit, validate_only)
                results[name] = (Errors.NONE, None)
            except AdminError as exc:
                results[name] = (exc.code, exc.message)
        grown = {n: c for n, c, _ in changes if results[n][0] == Errors.NONE}
        if grown and not validate_only and timeout_ms > 0:
            await self.wait_until(lambda: all(self._online(n, c) for n, c in grown.items()), timeout_ms)
        return results


    # -- topic configs ----------------------------------------------------------------------
    def topic_config(self, topic: str) -> dict[str, str]:
        """The topic's overrides as stored under /config/topics (empty when it has none)."""
        return self.admin_zk.zk.get_topic_config(topic)

    def alter_topic_config(self, topic: str, config: dict[str, str]) -> None:
        """Replaces the topic's overrides and notifies every broker (AdminError if the topic is gone)."""
        self.admin_zk.change_topic_config(topic, config)
        log.info("updated topic %s with new configuration: %s", topic, config)
