"""ListOffsets (2): offsets of partitions by timestamp.

- Versions: 0-11 served and advertised.
- Behaviour:
  - v0 (Kafka's handleListOffsetRequestV0): old_style_offsets lists up to max_num_offsets
    offsets, newest first: the base offsets of segments last modified at or before the
    timestamp and the log end (-1: from the log end, -2: the log start); a consumer sees the
    high watermark instead of anything above it (Partition.legacy_fetch_offsets_for_timestamp).
  - v1+ per partition, by timestamp (Partition.fetch_offset_for_timestamp):
    - -2 earliest (the log start offset); -4 earliest local (the same: no tiered storage).
    - -1 latest: the high watermark, or the last stable offset with read_committed; the log end
      for a replica id >= 0.
    - -3 the batch holding the largest timestamp (v7+; UNSUPPORTED_VERSION before).
    - -5 latest tiered (v9+) and -6 earliest pending upload (v11+): -1, as Kafka's UnifiedLog
      answers without remote storage (nothing is tiered).
    - Otherwise the first offset whose timestamp is >= the one asked, found through the time
      index (-1/-1 when none is).
    - A partition named twice gets INVALID_REQUEST; leadership and leader epoch checks as Fetch
      (NOT_LEADER_OR_FOLLOWER, FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH).
    - Consumers asking a new leader whose high watermark is below its epoch's start offset get
      OFFSET_NOT_AVAILABLE, as Kafka answers.
  - Needs DESCRIBE on each topic, else its partitions get TOPIC_AUTHORIZATION_FAILED
    (api/auth_helper.py).
- Gaps: no tiered storage (see -4, -5 and -6).
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from kbroker.api import auth_helper
from kbroker.api.auth_helper import AclOperation, ResourceType
from kbroker.api.request_context import RequestContext
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors
from kbroker.replica.partition import FETCH_HIGH_WATERMARK, FETCH_TXN_COMMITTED, Partition, PartitionError
from kbroker.replica.replica_manager import ReplicaManager

if TYPE_CHECKING:
    from kbroker.protocol.message_types import (
        ListOffsetsRequest,
        ListOffsetsRequestListOffsetsPartition,
        ListOffsetsResponse,
        ListOffsetsResponseListOffsetsPartitionResponse,
        ListOffsetsResponseListOffsetsTopicResponse,
    )

API_KEY = ApiKey.LIST_OFFSETS
VERSIONS = (0, 11)

MAX_TIMESTAMP = -3


async def handle(ctx: RequestContext, request: ListOffsetsRequest) -> ListOffsetsResponse:
    version = ctx.api_version
    replica_manager = ctx.services.replica_manager
    if request["replica_id"] >= 0:
        isolation = None  # a replica sees the log end
    else:
        isolation = FETCH_TXN_COMMITTED if request["isolation_level"] == 1 else FETCH_HIGH_WATERMARK
    asked = Counter((t["name"], p["partition_index"]) for t in request["topics"] for p in t["partitions"])
    duplicates = {tp for tp, times in asked.items() if times > 1} if version >= 1 else set()
    topics: list[ListOffsetsResponseListOffsetsTopicResponse] = []
    visible = auth_helper.authorized_names(ctx, AclOperation.DESCRIBE, ResourceType.TOPIC,
                                           [t["name"] for t in request["topics"]])
    for topic in request["topics"]:
        partitions: list[ListOffsetsResponseListOffsetsPartitionResponse] = []
        for p in topic["partitions"]:
            tp = (topic["name"], p["partition_index"])
            if tp[0] not in visible:
                entry = _error(p["partition_index"], Errors.TOPIC_AUTHORIZATION_FAILED)
            elif tp in duplicates:
                entry = _error(p["partition_index"], Errors.INVALID_REQUEST)
            else:
                entry = _offset(replica_manager, tp, p, isolation, version)
            partitions.append(entry)
        topics.append({"name": topic["name"], "partitions": partitions})
    return {"throttle_time_ms": 0, "topics": topics}


def _error(index: int, code: Errors) -> ListOffsetsResponseListOffsetsPartitionResponse:
    return {"partition_index": index, "error_code": code, "timestamp": -1, "offset": -1, "old_style_offsets": []}


def _offset(replica_manager: ReplicaManager, tp: tuple[str, int], p: ListOffsetsRequestListOffsetsPartition,
            isolation: int | None, version: int) -> ListOffsetsResponseListOffsetsPartitionResponse:
    index = p["partition_index"]
    partition = replica_manager.get_partition(*tp)
    if partition is None:
        return _error(index, replica_manager.missing_partition_error(*tp))
    if version == 0:
        return _old_style_offsets(partition, p, from_consumer=isolation is not None)
    if p["timestamp"] == MAX_TIMESTAMP and version < 7:
        return _error(index, _leadership_error(partition, p["current_leader_epoch"]) or Errors.UNSUPPORTED_VERSION)
    try:
        found = partition.fetch_offset_for_timestamp(p["timestamp"], isolation, p["current_leader_epoch"])
    except PartitionError as exc:
        return _error(index, exc.code)
    timestamp, offset, epoch = found if found is not None else (-1, -1, -1)
    return {"partition_index": index, "error_code": 0, "timestamp": timestamp, "offset": offset,
            "leader_epoch": -1 if epoch is None else epoch}


def _old_style_offsets(partition: Partition, p: ListOffsetsRequestListOffsetsPartition,
                       from_consumer: bool) -> ListOffsetsResponseListOffsetsPartitionResponse:
    try:
        offsets = partition.legacy_fetch_offsets_for_timestamp(p["timestamp"], p["max_num_offsets"], from_consumer)
    except PartitionError as exc:
        return _error(p["partition_index"], exc.code)
    return {"partition_index": p["partition_index"], "error_code": 0, "old_style_offsets": offsets}


def _leadership_error(partition: Partition, current_leader_epoch: int) -> Errors:
    """A partition we do not lead (at that epoch) answers that before anything else."""
    try:
        partition.check_leader(current_leader_epoch)
    except PartitionError as exc:
        return exc.code
    return Errors.NONE
