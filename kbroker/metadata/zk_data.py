"""Kafka's znode paths and JSON shapes (ZkData.scala), so tools reading Kafka's znodes work.

Plain functions: path builders, and encode/decode of each znode's JSON exactly as Kafka 3.x
writes it (KAFKA-FACTS.md §1). Nothing here talks to a store.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

CLUSTER_ID = "/cluster/id"
CONTROLLER = "/controller"
CONTROLLER_EPOCH = "/controller_epoch"
BROKER_IDS = "/brokers/ids"
BROKER_SEQID = "/brokers/seqid"
TOPICS = "/brokers/topics"
CONFIG_TOPICS = "/config/topics"
CONFIG_CHANGES = "/config/changes"
CONFIG_USERS = "/config/users"
DELETE_TOPICS = "/admin/delete_topics"
PRODUCER_ID_BLOCK = "/latest_producer_id_block"
ISR_CHANGE_NOTIFICATION = "/isr_change_notification"
LOG_DIR_EVENT_NOTIFICATION = "/log_dir_event_notification"
LOG_DIR_EVENT_PREFIX = "log_dir_event_"  # sequential children: log_dir_event_0000000000, ...
LOG_DIR_FAILURE_EVENT = 1  # LogDirEventNotificationHandler.LogDirFailureEvent

# The persistent paths a Kafka broker creates at start (KafkaZkClient.createTopLevelPaths).
PERSISTENT_PATHS = (
    "/consumers", "/admin/delete_topics", "/brokers/ids", "/brokers/topics", "/brokers/seqid",
    "/config/changes", "/config/topics", "/config/clients", "/config/users", "/config/brokers",
    "/config/ips", "/isr_change_notification", "/latest_producer_id_block",
    "/log_dir_event_notification",
)


def _dump(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def now_ms_string() -> str:
    return str(int(time.time() * 1000))


def broker_path(broker_id: int) -> str:
    return f"{BROKER_IDS}/{broker_id}"


def topic_path(topic: str) -> str:
    return f"{TOPICS}/{topic}"


def partitions_path(topic: str) -> str:
    return f"{TOPICS}/{topic}/partitions"


def partition_path(topic: str, partition: int) -> str:
    return f"{TOPICS}/{topic}/partitions/{partition}"


def partition_state_path(topic: str, partition: int) -> str:
    return f"{TOPICS}/{topic}/partitions/{partition}/state"


def topic_config_path(topic: str) -> str:
    return f"{CONFIG_TOPICS}/{topic}"


def delete_topic_path(topic: str) -> str:
    return f"{DELETE_TOPICS}/{topic}"


# -- /cluster/id ------------------------------------------------------------------------------
def encode_cluster_id(cluster_id: str) -> bytes:
    return _dump({"version": "1", "id": cluster_id})


def decode_cluster_id(data: bytes) -> str:
    return json.loads(data)["id"]


# -- /brokers/ids/<id> ----------------------------------------------------------------------------
@dataclass(slots=True)
class BrokerRegistration:
    """A broker's registration znode, /brokers/ids/<id>."""

    broker_id: int
    endpoints: list[tuple[str, str, int, str]]  # (listener name, host, port, security protocol)
    rack: str | None = None
    epoch: int = -1  # the znode's czxid

    def encode(self) -> bytes:
        plaintext = next((e for e in self.endpoints if e[3] == "PLAINTEXT"), None)
        obj: dict = {
            "features": {},
            "listener_security_protocol_map": {name: proto for name, _, _, proto in self.endpoints},
            # Kafka's EndPoint.connectionString: an IPv6 host in brackets (Utils.formatAddress).
            "endpoints": [f"{name}://[{host}]:{port}" if ":" in host else f"{name}://{host}:{port}"
                          for name, host, port, _ in self.endpoints],
            "jmx_port": -1,
            "port": plaintext[2] if plaintext else -1,
            "host": plaintext[1] if plaintext else None,
            "version": 5,
            "timestamp": now_ms_string(),
        }
        if self.rack is not None:
            obj["rack"] = self.rack
        return _dump(obj)

    @classmethod
    def decode(cls, broker_id: int, data: bytes, czxid: int = -1) -> BrokerRegistration:
        obj = json.loads(data)
        protocols = obj.get("listener_security_protocol_map") or {}
        endpoints = []
        for text in obj.get("endpoints", []):
            name, _, address = text.partition("://")
            host, _, port = address.rpartition(":")
            endpoints.append((name, host.strip("[]"), int(port), protocols.get(name, name)))
        return cls(broker_id, endpoints, obj.get("rack"), czxid)


# -- /controller, /controller_epoch ---------------------------------------------------------------
def encode_controller(broker_id: int) -> bytes:
    return _dump({"version": 2, "brokerid": broker_id, "timestamp": now_ms_string(),
                  "kraftControllerEpoch": -1})


def decode_controller(data: bytes) -> int:
    return int(json.loads(data)["brokerid"])


# -- /brokers/topics/<t> -----------------------------------------------------------------------
@dataclass(slots=True)
class TopicAssignment:
    """A topic's replica assignment znode, /brokers/topics/<topic>."""

    topic_id: str | None  # Kafka's base64 form
    partitions: dict[int, list[int]]
    adding: dict[int, list[int]]
    removing: dict[int, list[int]]

    def encode(self) -> bytes:
        obj: dict = {
            "removing_replicas": {str(p): r for p, r in sorted(self.removing.items())},
            "partitions": {str(p): r for p, r in sorted(self.partitions.items())},
            "topic_id": self.topic_id,
            "adding_replicas": {str(p): r for p, r in sorted(self.adding.items())},
            "version": 3,
        }
        return _dump(obj)

    @classmethod
    def decode(cls, data: bytes) -> TopicAssignment:
        obj = json.loads(data)

        def ints(d: dict | None) -> dict[int, list[int]]:
            return {int(p): list(r) for p, r in (d or {}).items()}

        return cls(obj.get("topic_id"), ints(obj.get("partitions")), ints(obj.get("adding_replicas")),
                   ints(obj.get("removing_replicas")))


# -- .../partitions/<p>/state --------------------------------------------------------------------
@dataclass(slots=True)
class LeaderIsrAndControllerEpoch:
    """A partition's state znode, /brokers/topics/<topic>/partitions/<p>/state."""

    leader: int
    leader_epoch: int
    isr: list[int]
    controller_epoch: int
    leader_recovery_state: int = 0
    zk_version: int = 0  # the partition epoch

    def encode(self) -> bytes:
        obj: dict = {"controller_epoch": self.controller_epoch, "leader": self.leader, "version": 1,
                     "leader_epoch": self.leader_epoch, "isr": self.isr}
        if self.leader_recovery_state:
            obj["leader_recovery_state"] = self.leader_recovery_state
        return _dump(obj)

    @classmethod
    def decode(cls, data: bytes, zk_version: int) -> LeaderIsrAndControllerEpoch:
        obj = json.loads(data)
        return cls(obj["leader"], obj["leader_epoch"], list(obj["isr"]), obj["controller_epoch"],
                   obj.get("leader_recovery_state", 0), zk_version)


# -- /config/topics/<t>, /config/changes -----------------------------------------------------------
def entity_config_path(entity_type: str, name: str) -> str:
    """/config/<entity_type>/<name>: `topics`, or `users` (names sanitized: sanitize_entity_name)."""
    return f"/config/{entity_type}/{name}"


def sanitize_entity_name(name: str) -> str:
    """Kafka's Sanitizer.sanitize for user and client-id znode names: UTF-8 percent-encoding of
    everything but letters, digits and `-._~` (`*` becomes %2A, a space %20)."""
    from urllib.parse import quote  # only when a user's config is read or written

    return quote(name, safe="")


def desanitize_entity_name(name: str) -> str:
    from urllib.parse import unquote

    return unquote(name)


def encode_entity_config(config: dict[str, str]) -> bytes:
    return _dump({"version": 1, "config": config})


def decode_entity_config(data: bytes) -> dict[str, str]:
    """An empty znode (a parent made on the way to /config/users/<u>/clients/<c>) holds nothing."""
    if not data:
        return {}
    return dict(json.loads(data).get("config") or {})


def encode_config_change(entity_path: str) -> bytes:
    return _dump({"version": 2, "entity_path": entity_path})


def decode_config_change(data: bytes) -> str:
    return json.loads(data)["entity_path"]


# -- /latest_producer_id_block -----------------------------------------------------------------
def encode_producer_id_block(broker_id: int, start: int, end: int) -> bytes:
    return _dump({"version": 1, "broker": broker_id, "block_start": str(start), "block_end": str(end)})


def decode_producer_id_block(data: bytes) -> tuple[int, int]:
    obj = json.loads(data)
    return int(obj["block_start"]), int(obj["block_end"])


# -- /log_dir_event_notification (LogDirEventNotificationSequenceZNode) -------------------------
def encode_log_dir_event(broker_id: int) -> bytes:
    return _dump({"version": 1, "broker": broker_id, "event": LOG_DIR_FAILURE_EVENT})


def decode_log_dir_event(data: bytes) -> int | None:
    """The broker id of a log dir failure notification (None for another or unreadable event)."""
    try:
        obj = json.loads(data)
        return int(obj["broker"]) if obj.get("event", LOG_DIR_FAILURE_EVENT) == LOG_DIR_FAILURE_EVENT else None
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
