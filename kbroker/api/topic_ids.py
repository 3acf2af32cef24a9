"""Requests that name a topic by name or, in their newer versions, by topic id (OffsetCommit v10,
TxnOffsetCommit v6): the one way handlers resolve both, as Kafka's KafkaApis does."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, NamedTuple

from kbroker.metadata.metadata_cache import MetadataCache, TopicMetadata
from kbroker.protocol.errors import Errors


class ResolvedTopic(NamedTuple):
    name: str | None  # None: an id that names no topic
    topic: TopicMetadata | None
    missing: Errors  # the error for a topic that is not there: UNKNOWN_TOPIC_ID by id
    key: str  # a name to key per-partition results by, unique even for unknown ids


def resolve(cache: MetadataCache, entry: Mapping[str, Any], by_id: bool) -> ResolvedTopic:
    if by_id:
        topic_id: uuid.UUID = entry["topic_id"]
        topic = cache.topic_by_id(topic_id)
        name = topic.name if topic is not None else None
        # NUL cannot occur in a topic name, so an unknown id never collides with a real topic.
        return ResolvedTopic(name, topic, Errors.UNKNOWN_TOPIC_ID, name if name is not None else f"\0id:{topic_id}")
    name = entry["name"]
    return ResolvedTopic(name, cache.topic(name), Errors.UNKNOWN_TOPIC_OR_PARTITION, name)
