"""OffsetForLeaderEpoch (23): the end offset of a leader epoch in the leader's log.

- Versions: 0-4 served and advertised; v0 answers without the leader epoch field.
- Behaviour:
  - Asked by followers without truncation on fetch (IBP < 2.7) and by consumers validating
    their position after a leader change.
  - Per partition, answered by the leader only (Partition.last_offset_for_leader_epoch): the
    latest epoch ends at the log end offset; an older one ends where the next higher epoch
    starts, paired with the largest epoch <= the one asked; an epoch newer than all gets leader
    epoch -1 and end offset -1 (the leader epoch cache, storage's LeaderEpochFileCache).
  - Errors as Fetch: NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION, and from
    current_leader_epoch (v2+) FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH.
  - ReplicaId (v3+) is accepted from followers (>= 0), consumers (-1) and debugging tools (-2)
    alike.
  - Needs CLUSTER_ACTION on the cluster (brokers) or DESCRIBE on the topic (consumers, KIP-320),
    else TOPIC_AUTHORIZATION_FAILED, as Kafka (api/auth_helper.py).
- Gaps: none known.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.api import auth_helper
from kbroker.api.auth_helper import AclOperation, ResourceType
from kbroker.api.request_context import RequestContext
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors
from kbroker.replica.partition import UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET, PartitionError
from kbroker.replica.replica_manager import ReplicaManager

if TYPE_CHECKING:
    from kbroker.protocol.message_types import (
        OffsetForLeaderEpochRequest,
        OffsetForLeaderEpochRequestOffsetForLeaderPartition,
        OffsetForLeaderEpochResponse,
        OffsetForLeaderEpochResponseEpochEndOffset,
        OffsetForLeaderEpochResponseOffsetForLeaderTopicResult,
    )

API_KEY = ApiKey.OFFSET_FOR_LEADER_EPOCH
VERSIONS = (0, 4)


async def handle(ctx: RequestContext, request: OffsetForLeaderEpochRequest) -> OffsetForLeaderEpochResponse:
    replica_manager = ctx.services.replica_manager
    topics: list[OffsetForLeaderEpochResponseOffsetForLeaderTopicResult] = []
    names = [t["topic"] for t in request["topics"]]
    visible = set(names) if auth_helper.authorize(ctx, AclOperation.CLUSTER_ACTION, ResourceType.CLUSTER) else (
        auth_helper.authorized_names(ctx, AclOperation.DESCRIBE, ResourceType.TOPIC, names))
    for topic in request["topics"]:
        name = topic["topic"]
        if name not in visible:
            topics.append({"topic": name, "partitions": [_answer(p["partition"], Errors.TOPIC_AUTHORIZATION_FAILED)
                                                         for p in topic["partitions"]]})
            continue
        partitions = [_end_offset(replica_manager, name, p) for p in topic["partitions"]]
        topics.append({"topic": name, "partitions": partitions})
    return {"throttle_time_ms": 0, "topics": topics}


def _end_offset(replica_manager: ReplicaManager, topic: str,
                p: OffsetForLeaderEpochRequestOffsetForLeaderPartition) -> OffsetForLeaderEpochResponseEpochEndOffset:
    index = p["partition"]
    partition = replica_manager.get_partition(topic, index)
    if partition is None:
        return _answer(index, replica_manager.missing_partition_error(topic, index))
    try:
        epoch, end_offset = partition.last_offset_for_leader_epoch(p["current_leader_epoch"], p["leader_epoch"])
    except PartitionError as exc:
        return _answer(index, exc.code)
    return _answer(index, Errors.NONE, epoch, end_offset)


def _answer(index: int, error: Errors, leader_epoch: int = UNDEFINED_EPOCH,
            end_offset: int = UNDEFINED_EPOCH_OFFSET) -> OffsetForLeaderEpochResponseEpochEndOffset:
    return {"error_code": error, "partition": index, "leader_epoch": leader_epoch, "end_offset": end_offset}
