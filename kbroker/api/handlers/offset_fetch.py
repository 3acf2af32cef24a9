"""OffsetFetch (9): a group's committed offsets.

- Versions: 0-10 served and advertised.
- Behaviour:
  - Committed offsets per partition from the GroupCoordinator (-1 and "" where nothing is
    committed), whatever the group's state: offsets-only users have no members.
  - v2+ accept a null topic list for every committed offset of the group and carry a
    group-level error; for v0-1, which have no such field, a group error is put on each
    requested partition (as Kafka 2.x did).
  - v5+ return the leader epoch; v7 adds require_stable (UNSTABLE_OFFSET_COMMIT while a commit
    is being written); v8+ ask for several groups at once, each with its own error; v10 names
    topics by id (UNKNOWN_TOPIC_ID for unknown ones).
  - v9+ may carry a KIP-848 member's id and epoch: UNKNOWN_MEMBER_ID / STALE_MEMBER_EPOCH when
    they are not the member's current ones (GROUP_ID_NOT_FOUND, UNKNOWN_MEMBER_ID for a group
    that is not a consumer group).
  - v0 reads what OffsetCommit v0 wrote to ZooKeeper, as Kafka 3.x does
    (UNKNOWN_TOPIC_OR_PARTITION where there is nothing).
  - Needs DESCRIBE on the group (GROUP_AUTHORIZATION_FAILED) and on each topic asked for
    (its partitions TOPIC_AUTHORIZATION_FAILED); a fetch of all the group's offsets leaves out
    the topics the principal may not DESCRIBE, as Kafka (api/auth_helper.py).
- Gaps: none known.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING

from kbroker.api import auth_helper
from kbroker.api.auth_helper import AclOperation, ResourceType
from kbroker.api.request_context import RequestContext
from kbroker.group.offset_and_metadata import NO_LEADER_EPOCH, OffsetAndMetadata
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors

if TYPE_CHECKING:
    from kbroker.protocol.message_types import (
        OffsetFetchRequest,
        OffsetFetchRequestOffsetFetchRequestTopic,
        OffsetFetchRequestOffsetFetchRequestTopics,
        OffsetFetchResponse,
        OffsetFetchResponseOffsetFetchResponseGroup,
        OffsetFetchResponseOffsetFetchResponsePartitions,
        OffsetFetchResponseOffsetFetchResponseTopic,
        OffsetFetchResponseOffsetFetchResponseTopics,
    )

API_KEY = ApiKey.OFFSET_FETCH
VERSIONS = (0, 10)

INVALID_OFFSET = -1
NO_METADATA = ""

PartitionAnswer = tuple[OffsetAndMetadata | None, int]  # the offset, and the error code
# A requested topic: its name (None for an unknown topic id), its id (v10+) and partitions.
RequestedTopic = tuple[str | None, uuid.UUID | None, list[int]]


def _partition(index: int, answer: PartitionAnswer) -> OffsetFetchResponseOffsetFetchResponsePartitions:
    offset, error = answer
    if offset is None:
        return {"partition_index": index, "committed_offset": INVALID_OFFSET, "committed_leader_epoch": NO_LEADER_EPOCH,
                "metadata": NO_METADATA, "error_code": error}
    return {"partition_index": index, "committed_offset": offset.offset, "committed_leader_epoch": offset.leader_epoch,
            "metadata": offset.metadata, "error_code": error}


async def handle(ctx: RequestContext, request: OffsetFetchRequest) -> OffsetFetchResponse:
    version = ctx.api_version
    if version >= 8:
        groups = [_fetch_group(ctx, g["group_id"], _requested(ctx, g["topics"]), request["require_stable"],
                               g.get("member_id"), g.get("member_epoch", -1))
                  for g in request["groups"]]
        return {"throttle_time_ms": 0, "groups": groups}
    if version == 0:
        return {"throttle_time_ms": 0, "topics": _fetch_from_zookeeper(ctx, request)}
    named = request["topics"]
    group = _fetch_group(ctx, request["group_id"], None if named is None else _by_name(named),
                         request["require_stable"])
    error = group["error_code"]
    topics = group["topics"]
    if version < 2 and error != Errors.NONE:
        topics = [{"name": t["name"], "partitions": [_partition(i, (None, error)) for i in t["partition_indexes"]]}
                  for t in request["topics"] or ()]
    # The v8+ topic entries serve v1-7 as they are: v1-7 do not encode their topic_id.
    return {"throttle_time_ms": 0, "error_code": error, "topics": topics}  # type: ignore[typeddict-item]


def _requested(ctx: RequestContext,
               topics: list[OffsetFetchRequestOffsetFetchRequestTopics] | None) -> list[RequestedTopic] | None:
    """A v8+ group's topics (None: all the group has), by name, or by topic id from v10."""
    if topics is None:
        return None
    if ctx.api_version < 10:
        return _by_name(topics)
    cache = ctx.services.metadata_cache
    requested: list[RequestedTopic] = []
    for t in topics:
        known = cache.topic_by_id(t["topic_id"])
        requested.append((known.name if known else None, t["topic_id"], t["partition_indexes"]))
    return requested


def _by_name(topics: list[OffsetFetchRequestOffsetFetchRequestTopics]
             | list[OffsetFetchRequestOffsetFetchRequestTopic]) -> list[RequestedTopic]:
    return [(t["name"], None, t["partition_indexes"]) for t in topics]


def _fetch_group(ctx: RequestContext, group_id: str, requested: list[RequestedTopic] | None,
                 require_stable: bool, member_id: str | None = None,
                 member_epoch: int = -1) -> OffsetFetchResponseOffsetFetchResponseGroup:
    """One group's answer in the v8+ shape (topics carry name and topic_id; older versions ignore the id)."""
    group_error = auth_helper.error_for(ctx, AclOperation.DESCRIBE, ResourceType.GROUP, group_id)
    if group_error:
        return {"group_id": group_id, "topics": [], "error_code": group_error}
    wanted = None if requested is None else [(n, i) for n, _, indexes in requested if n is not None for i in indexes]
    error, answers = ctx.services.group_coordinator.fetch_offsets(group_id, require_stable, wanted,
                                                                  member_id, member_epoch)
    if error != Errors.NONE:
        return {"group_id": group_id, "topics": [], "error_code": error}
    visible = auth_helper.authorized_names(ctx, AclOperation.DESCRIBE, ResourceType.TOPIC,
                                           {name for name, _ in answers} if requested is None
                                           else {n for n, _, _ in requested if n is not None})
    if requested is None:
        answers = {tp: answer for tp, answer in answers.items() if tp[0] in visible}
        return {"group_id": group_id, "topics": _all_topics(ctx, answers), "error_code": Errors.NONE}
    out: list[OffsetFetchResponseOffsetFetchResponseTopics] = []
    for name, topic_id, indexes in requested:
        if name is None:
            partitions = [_partition(i, (None, Errors.UNKNOWN_TOPIC_ID)) for i in indexes]
        elif name not in visible:
            partitions = [_partition(i, (None, Errors.TOPIC_AUTHORIZATION_FAILED)) for i in indexes]
        else:
            partitions = [_partition(i, answers.get((name, i), (None, Errors.NONE))) for i in indexes]
        entry: OffsetFetchResponseOffsetFetchResponseTopics = {"partitions": partitions}
        if name is not None:  # an unknown id has no name, and v10+ sends none
            entry["name"] = name
        if topic_id is not None:  # before v10 a topic is named, not identified
            entry["topic_id"] = topic_id
        out.append(entry)
    return {"group_id": group_id, "topics": out, "error_code": Errors.NONE}


def _all_topics(ctx: RequestContext, answers: Mapping[tuple[str, int], PartitionAnswer],
                ) -> list[OffsetFetchResponseOffsetFetchResponseTopics]:
    by_topic: dict[str, list[OffsetFetchResponseOffsetFetchResponsePartitions]] = {}
    for (topic, index), answer in sorted(answers.items()):
        by_topic.setdefault(topic, []).append(_partition(index, answer))
    out: list[OffsetFetchResponseOffsetFetchResponseTopics] = []
    for topic, partitions in by_topic.items():
        if ctx.api_version >= 10:
            known = ctx.services.metadata_cache.topic(topic)
            if known is None:
                continue  # topic ids only: offsets of deleted topics cannot be named
            out.append({"name": topic, "topic_id": known.topic_id, "partitions": partitions})
        else:
            out.append({"name": topic, "partitions": partitions})
    return out


def _fetch_from_zookeeper(ctx: RequestContext,
                          request: OffsetFetchRequest) -> list[OffsetFetchResponseOffsetFetchResponseTopic]:
    zk_offsets = ctx.services.zk_consumer_offsets
    cache = ctx.services.metadata_cache
    group_error = auth_helper.error_for(ctx, AclOperation.DESCRIBE, ResourceType.GROUP, request["group_id"])
    visible = auth_helper.authorized_names(ctx, AclOperation.DESCRIBE, ResourceType.TOPIC,
                                           [t["name"] for t in request["topics"] or []])
    out: list[OffsetFetchResponseOffsetFetchResponseTopic] = []
    for t in request["topics"] or []:
        partitions = []
        refused = group_error or (Errors.NONE if t["name"] in visible else Errors.TOPIC_AUTHORIZATION_FAILED)
        for index in t["partition_indexes"]:
            offset = None
            if refused:
                partitions.append(_partition(index, (None, refused)))
                continue
            if cache.partition(t["name"], index) is not None:
                offset = zk_offsets.fetch_offset(request["group_id"], t["name"], index)
            if offset is None:
                partitions.append(_partition(index, (None, Errors.UNKNOWN_TOPIC_OR_PARTITION)))
            else:
                partitions.append(_partition(index, (OffsetAndMetadata(offset), Errors.NONE)))
        out.append({"name": t["name"], "partitions": partitions})
    return out
