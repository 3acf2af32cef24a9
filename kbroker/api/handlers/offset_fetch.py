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
  - v0 reads what OffsetCommit v0 wrote to ZooKeeper, as Kafka 3.x does
    (UNKNOWN_TOPIC_OR_PARTITION where there is nothing).
- Gaps: none known.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from kbroker.api.request_context import RequestContext
from kbroker.group.offset_and_metadata import NO_LEADER_EPOCH, OffsetAndMetadata
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors

if TYPE_CHECKING:
    from kbroker.protocol.message_types import OffsetFetchRequest, OffsetFetchResponse

API_KEY = ApiKey.OFFSET_FETCH
VERSIONS = (0, 10)

INVALID_OFFSET = -1
NO_METADATA = ""

PartitionAnswer = tuple[OffsetAndMetadata | None, Errors]


def _partition(index: int, answer: PartitionAnswer) -> dict:
    offset, error = answer
    if offset is None:
        return {"partition_index": index, "committed_offset": INVALID_OFFSET, "committed_leader_epoch": NO_LEADER_EPOCH,
                "metadata": NO_METADATA, "error_code": error}
    return {"partition_index": index, "committed_offset": offset.offset, "committed_leader_epoch": offset.leader_epoch,
            "metadata": offset.metadata, "error_code": error}


async def handle(ctx: RequestContext, request: OffsetFetchRequest) -> OffsetFetchResponse:
    version = ctx.api_version
    if version >= 8:
        groups = [_fetch_group(ctx, g["group_id"], g["topics"], request["require_stable"])
                  for g in request["groups"]]
        return {"throttle_time_ms": 0, "groups": groups}
    if version == 0:
        return {"throttle_time_ms": 0, "topics": _fetch_from_zookeeper(ctx, request)}
    group = _fetch_group(ctx, request["group_id"], request["topics"], request["require_stable"])
    error = group["error_code"]
    topics = group["topics"]
    if version < 2 and error != Errors.NONE:
        topics = [{"name": t["name"], "partitions": [_partition(i, (None, error)) for i in t["partition_indexes"]]}
                  for t in request["topics"]]
    return {"throttle_time_ms": 0, "error_code": error, "topics": topics}


def _fetch_group(ctx: RequestContext, group_id: str, topics: list[dict] | None, require_stable: bool) -> dict:
    """One group's answer in the v8+ shape (topics carry name and topic_id; older versions ignore the id)."""
    cache = ctx.services.metadata_cache
    by_id = ctx.api_version >= 10
    requested: list[tuple[str | None, uuid.UUID | None, list[int]]] = []
    if topics is not None:
        for t in topics:
            if by_id:
                known = cache.topic_by_id(t["topic_id"])
                requested.append((known.name if known else None, t["topic_id"], t["partition_indexes"]))
            else:
                requested.append((t["name"], None, t["partition_indexes"]))
    wanted = None if topics is None else [(n, i) for n, _, indexes in requested if n is not None for i in indexes]
    error, answers = ctx.services.group_coordinator.fetch_offsets(group_id, require_stable, wanted)
    if error != Errors.NONE:
        return {"group_id": group_id, "topics": [], "error_code": error}
    if topics is None:
        return {"group_id": group_id, "topics": _all_topics(ctx, answers), "error_code": Errors.NONE}
    out = []
    for name, topic_id, indexes in requested:
        if name is None:
            partitions = [_partition(i, (None, Errors.UNKNOWN_TOPIC_ID)) for i in indexes]
        else:
            partitions = [_partition(i, answers.get((name, i), (None, Errors.NONE))) for i in indexes]
        out.append({"name": name, "topic_id": topic_id, "partitions": partitions})
    return {"group_id": group_id, "topics": out, "error_code": Errors.NONE}


def _all_topics(ctx: RequestContext, answers: dict[tuple[str, int], PartitionAnswer]) -> list[dict]:
    by_topic: dict[str, list[dict]] = {}
    for (topic, index), answer in sorted(answers.items()):
        by_topic.setdefault(topic, []).append(_partition(index, answer))
    out = []
    for topic, partitions in by_topic.items():
        if ctx.api_version >= 10:
            known = ctx.services.metadata_cache.topic(topic)
            if known is None:
                continue  # topic ids only: offsets of deleted topics cannot be named
            out.append({"name": topic, "topic_id": known.topic_id, "partitions": partitions})
        else:
            out.append({"name": topic, "partitions": partitions})
    return out


def _fetch_from_zookeeper(ctx: RequestContext, request: dict) -> list[dict]:
    zk_offsets = ctx.services.zk_consumer_offsets
    cache = ctx.services.metadata_cache
    out = []
    for t in request["topics"] or []:
        partitions = []
        for index in t["partition_indexes"]:
            offset = None
            if cache.partition(t["name"], index) is not None:
                offset = zk_offsets.fetch_offset(request["group_id"], t["name"], index)
            if offset is None:
                partitions.append(_partition(index, (None, Errors.UNKNOWN_TOPIC_OR_PARTITION)))
            else:
                partitions.append(_partition(index, (OffsetAndMetadata(offset), Errors.NONE)))
        out.append({"name": t["name"], "partitions": partitions})
    return out
