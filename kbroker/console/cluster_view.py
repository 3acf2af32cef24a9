"""ClusterView: what the web console shows, read from any Kafka cluster as a client would.

Blocking calls of confluent-kafka's AdminClient, Consumer and Producer (the web layer runs them in
worker threads), each returning plain JSON-able data. It knows nothing of HTTP and nothing of the
broker's internals: the console in the broker process is a client of its own listener, so the
broker's event loop never waits for a page.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
import uuid
from typing import Any

from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Producer,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource, OffsetSpec

from kbroker.console.client_log import LastClientError

TIMEOUT_S = 15.0
MAX_MESSAGES = 500
THROUGHPUT_MIN_INTERVAL_S = 0.5


class NotFound(Exception):
    """The topic or group asked for does not exist (any more)."""


class BadRequest(Exception):
    """A request the console cannot carry out as asked (bad offset, non-empty group, ...)."""


def _encoded(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def _decoded(text: str | None) -> bytes | None:
    return None if text is None else text.encode()


class ClusterView:
    def __init__(self, client_config: dict[str, Any]) -> None:
        self.client_config = dict(client_config)
        self._client_errors = LastClientError()
        logger = logging.getLogger(f"kbroker.console.librdkafka.{id(self)}")
        logger.addHandler(self._client_errors)
        logger.propagate = False
        admin_config: dict[str, Any] = {**self.client_config, "log_level": 3, "logger": logger}
        self.admin = AdminClient(admin_config)
        self._producer: Producer | None = None
        self._producer_lock = threading.Lock()
        self._last_offsets: tuple[float, dict[tuple[str, int], int]] | None = None
        self._throughput_lock = threading.Lock()

    def last_client_error(self) -> str | None:
        """What the admin client last logged as an error (its log is handed over on poll)."""
        self.admin.poll(0)
        return self._client_errors.message

    def close(self) -> None:
        """Hand over what the page's producer still holds (each produce waits for its answer, so
        this is for a page's request cut short by a stop)."""
        with self._producer_lock:
            if self._producer is not None:
                self._producer.flush(5)
                self._producer = None

    # -- cluster and topics ------------------------------------------------------------------------
    def cluster(self) -> dict[str, Any]:
        metadata = self.admin.list_topics(timeout=TIMEOUT_S)
        return {
            "cluster_id": metadata.cluster_id,
            "controller_id": metadata.controller_id,
            "brokers": sorted(({"id": b.id, "host": b.host, "port": b.port} for b in metadata.brokers.values()),
                              key=lambda b: b["id"]),
        }

    def topics(self) -> list[dict[str, Any]]:
        metadata = self.admin.list_topics(timeout=TIMEOUT_S)
        rows = []
        for name, topic in sorted(metadata.topics.items()):
            partitions = list(topic.partitions.values())
            rows.append({
                "name": name,
                "partitions": len(partitions),
                "replication_factor": max((len(p.replicas) for p in partitions), default=0),
                "under_replicated": sum(1 for p in partitions if len(p.isrs) < len(p.replicas)),
                "internal": name.startswith("__"),
            })
        return rows

    def topic(self, name: str) -> dict[str, Any]:
        partitions = self._describe_partitions(name)
        keys = [(name, p["partition"]) for p in partitions]
        start = self._offsets(keys, OffsetSpec.earliest())
        end = self._offsets(keys, OffsetSpec.latest())
        for p in partitions:
            p["start_offset"] = start.get((name, p["partition"]))
            p["end_offset"] = end.get((name, p["partition"]))
        return {"name": name, "partitions": partitions, "configs": self._topic_configs(name)}

    def _describe_partitions(self, name: str) -> list[dict[str, Any]]:
        """Leader, replicas and ISR per partition. DescribeTopics, not a Metadata request naming the
        topic: that one may auto-create it (auto.create.topics.enable), and a page looking at a
        deleted topic must not bring it back."""
        future = self.admin.describe_topics(TopicCollection([name]))[name]
        try:
            description = future.result(TIMEOUT_S)
        except KafkaException as exc:
            if exc.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise NotFound(f"topic {name!r} does not exist") from None
            raise
        return [{"partition": p.id, "leader": None if p.leader is None else p.leader.id,
                 "replicas": [r.id for r in p.replicas], "isr": [r.id for r in p.isr]}
                for p in sorted(description.partitions, key=lambda p: p.id)]

    def _topic_configs(self, name: str) -> list[dict[str, Any]]:
        resource = ConfigResource(ConfigResource.Type.TOPIC, name)
        try:
            entries = self.admin.describe_configs([resource])[resource].result(TIMEOUT_S)
        except KafkaException:
            return []
        return [{"name": e.name, "value": None if e.is_sensitive else e.value, "default": e.is_default,
                 "source": _source_name(e.source)} for e in sorted(entries.values(), key=lambda e: e.name)]

    def _offsets(self, keys: list[tuple[str, int]], spec: Any) -> dict[tuple[str, int], int]:
        if not keys:
            return {}
        futures = self.admin.list_offsets({TopicPartition(t, p): spec for t, p in keys})
        found = {}
        for tp, future in futures.items():
            try:
                found[(tp.topic, tp.partition)] = future.result(TIMEOUT_S).offset
            except KafkaException:
                pass  # a partition without a leader right now: shown without offsets
        return found

    # -- messages ----------------------------------------------------------------------------------
    def messages(self, name: str, partition: int, *, offset: int | None = None, timestamp_ms: int | None = None,
                 limit: int = 50, search: str | None = None) -> dict[str, Any]:
        """The window of up to `limit` records of one partition from an offset (default: the last
        `limit`) or from the first at or after a timestamp; `search` keeps the window's records
        whose key, value or a header value contains it."""
        if partition not in {p["partition"] for p in self._describe_partitions(name)}:
            raise NotFound(f"topic {name!r} has no partition {partition}")
        limit = max(1, min(limit, MAX_MESSAGES))
        bounds = {"earliest": OffsetSpec.earliest(), "latest": OffsetSpec.latest()}
        start, end = (self._offsets([(name, partition)], spec).get((name, partition), 0) for spec in bounds.values())
        if timestamp_ms is not None:
            offset = self._offset_for_time(name, partition, timestamp_ms, end)
        elif offset is None:
            offset = max(start, end - limit)
        if offset < 0:
            raise BadRequest("offset must be 0 or more")
        offset = max(offset, start)
        found = self._read(name, partition, offset, end, limit, search.encode() if search else None)
        return {"topic": name, "partition": partition, "start_offset": start, "end_offset": end,
                "from_offset": offset, "messages": found}

    def _offset_for_time(self, name: str, partition: int, timestamp_ms: int, end: int) -> int:
        [future] = self.admin.list_offsets({TopicPartition(name, partition): OffsetSpec.for_timestamp(timestamp_ms)}
                                           ).values()
        found = future.result(TIMEOUT_S).offset
        return end if found < 0 else found

    def _read(self, name: str, partition: int, offset: int, end: int, limit: int,
              search: bytes | None) -> list[dict[str, Any]]:
        if offset >= end:
            return []
        consumer = Consumer({**self.client_config, "group.id": f"kbroker-console-{uuid.uuid4().hex[:8]}",
                             "enable.auto.commit": False, "enable.partition.eof": True, "log_level": 3})
        found: list[dict[str, Any]] = []
        last = min(end, offset + limit) - 1  # the window's last offset
        try:
            consumer.assign([TopicPartition(name, partition, offset)])
            deadline = time.monotonic() + TIMEOUT_S
            while time.monotonic() < deadline:
                message = consumer.poll(1.0)
                if message is None:
                    continue
                if message.error() is not None:
                    break  # end of the partition (or an error): show what was read
                at = message.offset()
                if at is None or at > last:
                    break
                if search is None or _matches(message, search):
                    found.append(_message_row(message))
                if at >= last:
                    break
        finally:
            consumer.close()
        return found

    def produce(self, name: str, *, key: str | None, value: str | None, headers: dict[str, str],
                partition: int | None) -> dict[str, Any]:
        self.topic(name)  # NotFound before a producer would auto-create the topic
        delivered: list[Any] = []
        with self._producer_lock:
            if self._producer is None:
                self._producer = Producer({**self.client_config, "log_level": 3})
            kwargs: dict[str, Any] = {"key": _decoded(key), "value": _decoded(value),
                                      "headers": [(k, v.encode()) for k, v in headers.items()],
                                      "on_delivery": lambda err, msg: delivered.append((err, msg))}
            if partition is not None:
                kwargs["partition"] = partition
            self._producer.produce(name, **kwargs)
            self._producer.flush(TIMEOUT_S)
        if not delivered:
            raise BadRequest("the record was not delivered in time")
        error, message = delivered[0]
        if error is not None:
            raise BadRequest(f"{error.name()}: {error.str()}")
        return {"topic": name, "partition": message.partition(), "offset": message.offset()}

    # -- consumer groups ---------------------------------------------------------------------------
    def groups(self) -> list[dict[str, Any]]:
        listing = self.admin.list_consumer_groups().result(TIMEOUT_S)
        return sorted(({"group": g.group_id, "state": _state_name(g.state)} for g in listing.valid),
                      key=lambda g: g["group"])

    def group(self, group_id: str) -> dict[str, Any]:
        description = self.admin.describe_consumer_groups([group_id])[group_id].result(TIMEOUT_S)
        state = _state_name(description.state)
        if state == "Dead":
            raise NotFound(f"consumer group {group_id!r} does not exist")
        owners: dict[tuple[str, int], str] = {}
        members = []
        for m in description.members:
            assigned = sorted((tp.topic, tp.partition) for tp in m.assignment.topic_partitions)
            owners.update(dict.fromkeys(assigned, m.client_id))
            members.append({"member_id": m.member_id, "client_id": m.client_id, "host": m.host,
                            "assignment": [f"{t}-{p}" for t, p in assigned]})
        committed = self._committed(group_id)
        keys = sorted(set(committed) | set(owners))
        end = self._offsets(keys, OffsetSpec.latest())
        offsets = [{"topic": t, "partition": p, "committed": committed.get((t, p)), "end_offset": end.get((t, p)),
                    "lag": _lag(committed.get((t, p)), end.get((t, p))), "owner": owners.get((t, p))}
                   for t, p in keys]
        return {"group": group_id, "state": state, "protocol": description.partition_assignor,
                "members": members, "offsets": offsets}

    def _committed(self, group_id: str) -> dict[tuple[str, int], int]:
        answer = self.admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group_id)])[group_id]
        return {(tp.topic, tp.partition): tp.offset for tp in answer.result(TIMEOUT_S).topic_partitions
                if tp.offset >= 0}

    def reset_group(self, group_id: str, topic: str, to: str, offset: int | None = None) -> dict[str, Any]:
        """Kafka's --reset-offsets for one topic: to earliest, latest or an offset (clamped to the
        partition's range, as Kafka's tool does); the group must be empty, as Kafka requires."""
        if to not in ("earliest", "latest", "offset") or (to == "offset") != (offset is not None):
            raise BadRequest("reset to earliest, latest or offset (with an offset)")
        if offset is not None and offset < 0:
            raise BadRequest("offset must be 0 or more")
        detail = self.group(group_id)
        if detail["members"]:
            raise BadRequest(f"group {group_id!r} has {len(detail['members'])} active member(s): offsets can "
                             f"be reset only while it is empty (stop its consumers first)")
        targets = {}
        for p in self.topic(topic)["partitions"]:
            start, end = p["start_offset"], p["end_offset"]
            if start is None or end is None:
                raise BadRequest(f"partition {p['partition']} of {topic!r} has no leader now: try again")
            targets[p["partition"]] = {"earliest": start, "latest": end}.get(to, min(max(offset or 0, start), end))
        request = ConsumerGroupTopicPartitions(group_id, [TopicPartition(topic, p, o) for p, o in targets.items()])
        self.admin.alter_consumer_group_offsets([request])[group_id].result(TIMEOUT_S)
        return {"group": group_id, "topic": topic, "offsets": targets}

    # -- throughput ------------------------------------------------------------------------------
    def throughput(self) -> dict[str, Any]:
        """Records per second per topic since the previous call (end offsets, differenced)."""
        metadata = self.admin.list_topics(timeout=TIMEOUT_S)
        keys = [(name, p) for name, t in metadata.topics.items() for p in t.partitions]
        with self._throughput_lock:
            now = time.monotonic()
            previous = self._last_offsets
            if previous is not None and now - previous[0] < THROUGHPUT_MIN_INTERVAL_S:
                now, current = previous  # asked again at once: no new sample
            else:
                current = self._offsets(keys, OffsetSpec.latest())
                self._last_offsets = (now, current)
        rates: dict[str, float] = {}
        if previous is not None and now > previous[0]:
            elapsed = now - previous[0]
            for (name, partition), end in current.items():
                before = previous[1].get((name, partition))
                if before is not None:
                    rates[name] = rates.get(name, 0.0) + max(end - before, 0) / elapsed
        return {"records_per_s": dict(sorted(rates.items())), "total_records": sum(current.values())}


def _source_name(source: Any) -> str:
    """Kafka's name of a config's source (DEFAULT_CONFIG, DYNAMIC_TOPIC_CONFIG, ...); confluent-kafka gives its number."""
    try:
        return ConfigSource(source).name
    except ValueError:
        return str(source)


def _lag(committed: int | None, end: int | None) -> int | None:
    """Kafka's LAG column: unknown ("-") without a committed offset or an end offset."""
    return None if committed is None or end is None else max(end - committed, 0)


def _state_name(state: Any) -> str:
    name = str(getattr(state, "name", state)).upper()
    return {"PREPARING_REBALANCING": "PreparingRebalance", "COMPLETING_REBALANCING": "CompletingRebalance"}.get(
        name, name.title())


def _matches(message: Any, needle: bytes) -> bool:
    return any(needle in (part or b"") for part in (message.key(), message.value())) or any(
        needle in (value or b"") for _, value in (message.headers() or []))


def _message_row(message: Any) -> dict[str, Any]:
    _, timestamp = message.timestamp()
    return {"partition": message.partition(), "offset": message.offset(), "timestamp": timestamp,
            "key": _encoded(message.key()), "value": _encoded(message.value()),
            "headers": [[name, _encoded(value)] for name, value in (message.headers() or [])]}
