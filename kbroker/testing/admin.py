"""Admin requests a test needs before any client is set up, over one plain socket with kbroker's
codec: no client library, so `kbroker.testing.KafkaBroker` works with only kbroker installed.

Must not start or stop brokers.
"""

from __future__ import annotations

from collections.abc import Mapping

from kbroker.protocol.messages import is_flexible, request_codec, response_codec
from kbroker.protocol.uuids import ZERO_UUID
from kbroker.testing import wire

METADATA = 3
METADATA_VERSION = 12
CREATE_TOPICS = 19
CREATE_TOPICS_VERSION = 7
NONE = 0


class TopicNotCreated(AssertionError):
    """CreateTopics answered an error for the topic."""


def call(port: int, api_key: int, version: int, body: dict, *, host: str = "127.0.0.1",
         timeout: float = 30.0) -> dict:
    """One request on a fresh connection; its decoded answer."""
    flexible = is_flexible(api_key, version)
    header = wire.request_header(api_key, version, 1, "kbroker-testing", flexible)
    with wire.connect(port, timeout, host) as sock:
        sock.sendall(wire.frame(header + request_codec(api_key, version).encode(body)))
        payload = wire.read_frame(sock)
    reader = wire.Reader(payload)
    reader.int32()  # correlation id: one request per connection
    if flexible and api_key != wire.API_VERSIONS:
        reader.tagged_fields()
    answer, _ = response_codec(api_key, version).decode(payload, reader.pos)
    return answer


def create_topic(port: int, name: str, partitions: int = 1, replication_factor: int = 1,
                 configs: Mapping[str, str] | None = None, *, host: str = "127.0.0.1") -> None:
    """Create a topic and wait for the controller's answer; TopicNotCreated on an error."""
    answer = call(port, CREATE_TOPICS, CREATE_TOPICS_VERSION, {
        "topics": [{
            "name": name,
            "num_partitions": partitions,
            "replication_factor": replication_factor,
            "configs": [{"name": key, "value": value} for key, value in (configs or {}).items()],
        }],
        "timeout_ms": 30000,
    }, host=host)
    [result] = answer["topics"]
    if result["error_code"] != NONE:
        raise TopicNotCreated(f"CreateTopics {name!r}: error {result['error_code']} {result.get('error_message')}")


def topic_has_leaders(port: int, name: str, *, host: str = "127.0.0.1") -> bool:
    """Whether that broker's Metadata knows the topic and a leader for each of its partitions."""
    answer = call(port, METADATA, METADATA_VERSION, {"topics": [{"name": name, "topic_id": ZERO_UUID}],
                                                      "allow_auto_topic_creation": False,
                                                      "include_topic_authorized_operations": False}, host=host)
    [topic] = answer["topics"]
    return topic["error_code"] == NONE and bool(topic["partitions"]) and all(
        partition["error_code"] == NONE and partition["leader_id"] >= 0 for partition in topic["partitions"])
