"""DescribeTopicPartitions (75): topics' partitions a page at a time (KIP-966).

- Versions: 0 served and advertised.
- Behaviour:
  - As Kafka's DescribeTopicPartitionsRequestHandler and KRaftMetadataCache: the named topics,
    or every topic for an empty list, from the cursor's topic on (names sorted), at most
    min(ResponsePartitionLimit, max.request.partition.size.limit) partitions (at least 1).
    When a topic's partitions do not all fit, NextCursor names the topic and the first
    partition left out; when the limit is reached exactly at a topic's end, it names the next
    topic and partition 0. The cursor's partition index applies to the cursor's topic only;
    a cursor on a topic that no longer exists starts at the next topic.
  - Per partition: leader (-1 when its broker is not alive or has no endpoint on the
    request's listener), leader epoch, replicas, ISR, offline replicas (on dead brokers,
    without the listener, or in a failed log dir), and empty eligible and last known ELR
    lists: kbroker has no ELR, as Kafka with it off.
  - A named topic that does not exist gets UNKNOWN_TOPIC_OR_PARTITION (an illegal name
    INVALID_TOPIC_EXCEPTION); listing all topics leaves nothing to miss.
  - A cursor whose topic is not among the named topics, or with a negative partition index,
    is INVALID_REQUEST for every named topic.
  - Needs DESCRIBE on each topic: a named topic without it gets TOPIC_AUTHORIZATION_FAILED
    (after the others, with no topic id), listing all topics leaves it out. Every answered
    topic carries the principal's authorized operations (api/auth_helper.py).
- Gaps: none known (ELR itself is KRaft's and not built).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.api import auth_helper
from kbroker.api.auth_helper import AclOperation, ResourceType
from kbroker.api.request_context import RequestContext
from kbroker.metadata.metadata_cache import INTERNAL_TOPICS, MetadataCache, PartitionState, TopicMetadata
from kbroker.metadata.topic_names import topic_name_error
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors
from kbroker.protocol.uuids import ZERO_UUID

if TYPE_CHECKING:
    from kbroker.protocol.message_types import (
        DescribeTopicPartitionsRequest,
        DescribeTopicPartitionsResponse,
        DescribeTopicPartitionsResponseCursor,
        DescribeTopicPartitionsResponseDescribeTopicPartitionsResponsePartition,
        DescribeTopicPartitionsResponseDescribeTopicPartitionsResponseTopic,
    )

API_KEY = ApiKey.DESCRIBE_TOPIC_PARTITIONS
VERSIONS = (0, 0)
NO_LEADER = -1


async def handle(ctx: RequestContext, request: DescribeTopicPartitionsRequest) -> DescribeTopicPartitionsResponse:
    cache = ctx.services.metadata_cache
    cursor = request["cursor"]
    cursor_topic = cursor["topic_name"] if cursor is not None else ""
    fetch_all = not request["topics"]
    wanted = list(cache.topics) if fetch_all else [t["name"] for t in request["topics"]]
    names = {name for name in wanted if name >= cursor_topic}
    if cursor is not None and ((not fetch_all and cursor_topic not in names) or cursor["partition_index"] < 0):
        return _invalid_request(request)
    visible = auth_helper.authorized_names(ctx, AclOperation.DESCRIBE, ResourceType.TOPIC, names)
    limit = max(1, min(ctx.services.config.get("max.request.partition.size.limit"),
                       request["response_partition_limit"]))
    first_partition = cursor["partition_index"] if cursor is not None else 0
    topics, next_cursor = _page(ctx, cache, sorted(visible), cursor_topic, first_partition, limit, fetch_all)
    if not fetch_all:  # named topics the principal may not see: said so, without their id
        topics += [{"error_code": Errors.TOPIC_AUTHORIZATION_FAILED, "name": name, "topic_id": ZERO_UUID,
                    "is_internal": False, "partitions": []} for name in sorted(names - visible)]
    return {"throttle_time_ms": 0, "topics": topics, "next_cursor": next_cursor}


def _page(ctx: RequestContext, cache: MetadataCache, names: list[str], cursor_topic: str, first_partition: int,
          limit: int, fetch_all: bool
          ) -> tuple[list[DescribeTopicPartitionsResponseDescribeTopicPartitionsResponseTopic],
                     DescribeTopicPartitionsResponseCursor | None]:
    """KRaftMetadataCache.describeTopicResponse: the topics in order until `limit` partitions."""
    topics: list[DescribeTopicPartitionsResponseDescribeTopicPartitionsResponseTopic] = []
    remaining = limit
    for name in names:
        if remaining == 0:  # the previous topic ended the page exactly: the next one starts the next
            return topics, {"topic_name": name, "partition_index": 0}
        topic = cache.topic(name)
        if topic is None:
            if not fetch_all:
                error = Errors.INVALID_TOPIC_EXCEPTION if topic_name_error(name) else Errors.UNKNOWN_TOPIC_OR_PARTITION
                topics.append(_topic_entry(ctx, name, error))
            continue
        start = first_partition if name == cursor_topic else 0
        end = min(len(topic.partitions), start + remaining)
        entry = _topic_entry(ctx, name, Errors.NONE, topic)
        entry["partitions"] = [_partition_entry(cache, state, ctx.listener_name)
                               for index in range(start, end) if (state := topic.partitions.get(index)) is not None]
        topics.append(entry)
        if end < len(topic.partitions):
            return topics, {"topic_name": name, "partition_index": end}
        remaining -= len(entry["partitions"])
    return topics, None


def _topic_entry(ctx: RequestContext, name: str, error: Errors, topic: TopicMetadata | None = None
                 ) -> DescribeTopicPartitionsResponseDescribeTopicPartitionsResponseTopic:
    return {"error_code": error, "name": name, "topic_id": topic.topic_id if topic is not None else ZERO_UUID,
            "is_internal": name in INTERNAL_TOPICS, "partitions": [],
            "topic_authorized_operations": auth_helper.authorized_operations(ctx, ResourceType.TOPIC, name)}


def _partition_entry(cache: MetadataCache, state: PartitionState, listener_name: str
                     ) -> DescribeTopicPartitionsResponseDescribeTopicPartitionsResponsePartition:
    leader = state.leader if state.leader >= 0 and cache.endpoint_of(state.leader, listener_name) else NO_LEADER
    return {
        "error_code": Errors.NONE,
        "partition_index": state.partition,
        "leader_id": leader,
        "leader_epoch": state.leader_epoch,
        "replica_nodes": state.replicas,
        "isr_nodes": state.isr,
        "eligible_leader_replicas": [],
        "last_known_elr": [],
        # KRaft's getOfflineReplicas: not registered, without the listener, or in a failed log dir.
        "offline_replicas": [r for r in state.replicas
                             if cache.endpoint_of(r, listener_name) is None or r in state.offline_replicas],
    }


def _invalid_request(request: DescribeTopicPartitionsRequest) -> DescribeTopicPartitionsResponse:
    """DescribeTopicPartitionsRequest.getErrorResponse: each named topic with the error."""
    return {"throttle_time_ms": 0, "next_cursor": None, "topics": [
        {"error_code": Errors.INVALID_REQUEST, "name": t["name"], "topic_id": ZERO_UUID, "is_internal": False,
         "partitions": []} for t in request["topics"]]}
