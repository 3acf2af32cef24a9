"""Kafka's Uuid: the one ZERO_UUID, its base64 string form and random ids Kafka would accept.

Uuids are Python `uuid.UUID` values on both sides of the codec; Kafka prints them as url-safe
base64 without padding (22 characters), as topic ids in ZooKeeper and in tools. Plain functions,
no I/O.
"""

from __future__ import annotations

import base64
import uuid

# Kafka's Uuid.ZERO_UUID: "no id" on the wire (a topic named only by its name, for example).
ZERO_UUID = uuid.UUID(int=0)


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
