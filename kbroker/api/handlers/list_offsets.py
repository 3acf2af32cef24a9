"""ListOffsets (2), v0-11.

Per partition, by timestamp: -2 earliest (the log start offset), -4 earliest local (the same:
no tiered storage), -1 latest (the high watermark, or the last stable offset with
read_committed; the log end for a replica id >= 0), -3 the batch holding the largest timestamp
(v7+), -5 earliest pending upload (v9+: -1, nothing is tiered), otherwise the first offset whose
timestamp is >= the one asked, found through the time index (-1/-1 when none is).
v0 answers in old_style_offsets. A partition named twice gets INVALID_REQUEST; leadership and
leader epoch checks as Fetch (NOT_LEADER_OR_FOLLOWER, FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH);
consumers asking a new leader whose high watermark is below its epoch's start offset get
OFFSET_NOT_AVAILABLE, as Kafka answers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.api.request_context import RequestContext
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors
from kbroker.replica.partition import PartitionError

if TYPE_CHECKING:
    from kbroker.protocol.message_types import ListOffsetsRequest, ListOffsetsResponse

API_KEY = ApiKey.LIST_OFFSETS
VERSIONS = (0, 11)

LATEST, MAX_TIMESTAMP = -1, -3


async def handle(ctx: RequestContext, request: ListOffsetsRequest) -> ListOffsetsResponse:
    version = ctx.api_version
    replica_manager = ctx.broker.replica_manager
    seen: set[tuple[str, int]] = set()
    duplicates = {(t["name"], p["partition_index"]) for t in request["topics"] for p in t["partitions"]
                  if (t["name"], p["partition_index"]) in seen or seen.add((t["name"], p["partition_index"]))}
    topics = []
    for topic in request["topics"]:
        partitions = []
        for p in topic["partitions"]:
            tp = (topic["name"], p["partition_index"])
            if tp in duplicates:
                entry = _error(p["partition_index"], Errors.INVALID_REQUEST)
            else:
                entry = _lookup(replica_manager, tp, p, request, version)
            partitions.append(entry)
        topics.append({"name": topic["name"], "partitions": partitions})
    return {"throttle_time_ms": 0, "topics": topics}


def _error(index: int, code: Errors) -> dict:
    return {"partition_index": index, "error_code": code, "timestamp": -1, "offset": -1, "old_style_offsets": []}


def _lookup(replica_manager, tp: tuple[str, int], p: dict, request: dict, version: int) -> dict:
    index = p["partition_index"]
    partition = replica_manager.get_partition(*tp)
    if partition is None:
        return _error(index, replica_manager.missing_partition_error(*tp))
    try:
        log = partition.check_leader(p["current_leader_epoch"])
    except PartitionError as exc:
        return _error(index, exc.code)
    timestamp = p["timestamp"]
    if timestamp == MAX_TIMESTAMP and version < 7:
        return _error(index, Errors.UNSUPPORTED_VERSION)
    epoch_start = partition.leader_epoch_start_offset
    if request["replica_id"] < 0 and epoch_start is not None and log.high_watermark < epoch_start:
        # A new leader whose high watermark has not reached its epoch's start yet (Kafka's rule).
        return _error(index, Errors.OFFSET_NOT_AVAILABLE)
    found_timestamp, offset, epoch = -1, -1, -1
    if timestamp == LATEST and request["replica_id"] < 0:
        # Consumers see the high watermark (read_committed: the last stable offset), not the log end.
        offset = log.last_stable_offset if request["isolation_level"] == 1 else log.high_watermark
        epoch = _epoch_at(log, offset - 1) if offset > log.log_start_offset else partition.leader_epoch
    else:
        hit = log.fetch_offset_by_timestamp(timestamp)
        if hit is not None and (timestamp < 0 or hit.offset < log.high_watermark):
            found_timestamp, offset = hit.timestamp, hit.offset
            epoch = hit.leader_epoch if hit.leader_epoch is not None else -1
    if version == 0:
        return {"partition_index": index, "error_code": 0, "old_style_offsets": [offset] if offset >= 0 else []}
    return {"partition_index": index, "error_code": 0, "timestamp": found_timestamp, "offset": offset,
            "leader_epoch": epoch}


def _epoch_at(log, offset: int) -> int:
    epoch = log.leader_epoch_cache.epoch_for_offset(offset)
    return -1 if epoch is None else epoch
