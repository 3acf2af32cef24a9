"""Fetch (1): reads record batches from partition leaders, for consumers and followers.

- Versions: 0-18 served and advertised (Kafka 3.9's range).
- Behaviour:
  - v0-3 read message formats 0 (v0-1) and 1 (v2-3): each partition's batches are down-converted
    as Kafka 3.x does (kbroker/log/legacy_records.py: control batches dropped, compressed batches
    re-compressed with their codec, the bytes cut at what was read or the first converted batch);
    message.downconversion.enable=false answers UNSUPPORTED_VERSION, a zstd batch
    UNSUPPORTED_COMPRESSION_TYPE. v0-2 have no KIP-74: a batch larger than the limits is not
    sent (the old client reports it too large). v4+ send the stored bytes untouched.
  - Consumers (replica id -1) read up to the high watermark, or the last stable offset with
    read_committed, which also answers the aborted transactions (producer id, first offset,
    from the segments' .txnindex) overlapping what it read.
  - Partitions are read in request order with the response limit max_bytes (capped by the
    broker's fetch.max.bytes) and each partition's limit, the first batch found always whole
    even when larger (KIP-74). A partition's records end at the last whole batch within its
    limit (v4+), where Kafka's slice may end in a partial batch the client drops and fetches
    again (kbroker/log/segment.py's _whole_batches).
  - When less than min_bytes is found the fetch waits as a DelayedFetch in the replica
    manager's purgatory, up to max_wait_ms: it completes once the bytes it may read reach
    min_bytes (a follower reads to the log end, a consumer to the high watermark or, with
    read_committed, the last stable offset, so their moves wake it).
  - OFFSET_OUT_OF_RANGE outside [log start, log end]; FENCED_LEADER_EPOCH /
    UNKNOWN_LEADER_EPOCH from current_leader_epoch (v9+); topic ids from v13
    (UNKNOWN_TOPIC_ID). A partition in error answers -1 for its high watermark, last stable
    offset and log start (Kafka's createLogReadResult); one refused before reading (unknown
    topic or id) an empty aborted_transactions list, as Kafka's partitionResponse.
  - Records go out (v4+) as file regions of the segments, never decoded.
  - A consumer with a consumer_byte_rate quota reads at most quota x (quota.window.num - 1) x
    window bytes per fetch (Kafka's getMaxValueInQuotaWindow); KafkaApis throttles it
    (api/quota_helper.py: throttle_time_ms, an empty answer when throttled, the connection muted).
  - With an authorizer (api/auth_helper.py), as Kafka's KafkaApis: a follower needs
    CLUSTER_ACTION on the cluster, else every partition gets TOPIC_AUTHORIZATION_FAILED; a
    consumer needs READ on each topic, else its partitions get TOPIC_AUTHORIZATION_FAILED. One
    decision per topic, nothing per record.
  - Before v10, partitions of a compression.type=zstd topic get UNSUPPORTED_COMPRESSION_TYPE,
    as Kafka answers.
  - Fetch sessions (KIP-227, v7+; kbroker/replica/fetch_session.py, Kafka's FetchManager and
    FetchSessionCache, `max.incremental.fetch.session.cache.slots`): epoch 0 opens a session
    (its id in the answer, or 0 when the cache has no slot it may take), -1 is sessionless,
    and an incremental fetch updates the session's partitions with those it names, drops its
    `forgotten_topics_data`, reads every partition of the session (a follower's fetch state is
    recorded for each, so idle partitions stay in the ISR) and answers only those whose records,
    high watermark, log start offset, error or diverging epoch changed. An unknown session id
    answers FETCH_SESSION_ID_NOT_FOUND, a wrong epoch INVALID_FETCH_SESSION_EPOCH (also for a
    parked fetch whose session moved on meanwhile), a version on the other side of v13 than the
    session FETCH_SESSION_TOPIC_ID_ERROR; those answers carry session id 0 and no partitions.
    A session by topic ids resolves a partition's unknown id once it is known; a known name
    stays, so a deleted topic's partitions answer what a missing partition does
    (UNKNOWN_TOPIC_OR_PARTITION) and a re-created one's INCONSISTENT_TOPIC_ID, as Kafka's. An
    answer emptied by a quota (KIP-219) drops the new session of a full fetch and makes an
    incremental one send every partition again.
  - Followers (replica id >= 0; v15+ in ReplicaState with their broker epoch) read up to the
    log end: the leader checks their last fetched epoch against its leader epoch cache (v12+: a
    DivergingEpoch answer, sent at once, without records), records their position, moves the
    high watermark and the ISR (kbroker/replica).
  - A replica outside the assignment gets UNKNOWN_LEADER_EPOCH (with a current leader epoch) or
    NOT_LEADER_OR_FOLLOWER.
- Gaps: no preferred read replica; v0-3's down-conversion is done
  a partition at a time in a worker thread before the answer is sent (Kafka converts lazily, in
  chunks, while sending).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import TYPE_CHECKING

from kbroker.api import auth_helper, quota_helper
from kbroker.api.auth_helper import AclOperation, ResourceType
from kbroker.api.request_context import RequestContext
from kbroker.log.errors import LogError
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors
from kbroker.replica.fetch_session import (
    FINAL_EPOCH,
    FIRST_SESSION_VERSION,
    FIRST_TOPIC_ID_VERSION,
    INVALID_SESSION_ID,
    CachedPartition,
    IncrementalFetchContext,
    PartitionKey,
)
from kbroker.replica.partition import FETCH_HIGH_WATERMARK, FETCH_LOG_END, FETCH_TXN_COMMITTED
from kbroker.replica.replica_manager import FetchRequestPartition, FetchResult

if TYPE_CHECKING:
    from collections.abc import Iterable
    from uuid import UUID

    from kbroker.log.config import LogConfig
    from kbroker.metadata.metadata_cache import MetadataCache
    from kbroker.protocol.message_types import (
        FetchRequest,
        FetchResponse,
        FetchResponseFetchableTopicResponse,
        FetchResponsePartitionData,
    )
    from kbroker.replica.replica_manager import ReplicaManager

API_KEY = ApiKey.FETCH
VERSIONS = (0, 18)

FIRST_RECORD_BATCH_VERSION = 4  # Fetch v0-3 read message formats 0/1 (down-converted)
# Errors KafkaApis answers before reading (its `erroneous` partitions), never from the log.
_REFUSED_BEFORE_READING = frozenset({Errors.UNKNOWN_TOPIC_OR_PARTITION, Errors.UNKNOWN_TOPIC_ID,
                                     Errors.TOPIC_AUTHORIZATION_FAILED})


async def handle(ctx: RequestContext, request: FetchRequest) -> FetchResponse:
    version = ctx.header.api_version
    replica_manager = ctx.services.replica_manager
    replica_id = request["replica_id"] if version < 15 else request["replica_state"]["replica_id"]
    if replica_id >= 0:
        isolation = FETCH_LOG_END
    else:
        isolation = FETCH_TXN_COMMITTED if request["isolation_level"] == 1 else FETCH_HIGH_WATERMARK
    fetch_data = _fetch_data(ctx, request)
    context = ctx.services.fetch_manager.new_context(
        version, request["session_id"] if version >= FIRST_SESSION_VERSION else INVALID_SESSION_ID,
        request["session_epoch"] if version >= FIRST_SESSION_VERSION else FINAL_EPOCH, replica_id >= 0, fetch_data,
        _to_forget(request, version))
    if context.error != Errors.NONE:
        return {"throttle_time_ms": 0, "error_code": context.error, "session_id": INVALID_SESSION_ID, "responses": []}
    parts = context.partitions()
    inconsistent: set[UUID] = set()
    if isinstance(context, IncrementalFetchContext) and context.session is not None and context.session.uses_topic_ids:
        inconsistent = _resolve_names(ctx, parts)
    # None: any topic may be read (no authorizer: nothing is asked per request)
    readable = _readable(ctx, parts, replica_id >= 0) if ctx.services.authorizer is not None else None
    wanted, slots = _to_read(ctx, parts, readable, inconsistent)
    replica_epoch = request["replica_state"]["replica_epoch"] if version >= 15 else -1
    # The broker's fetch.max.bytes caps the request's, and min_bytes never exceeds the cap (KafkaApis).
    max_bytes = min(request["max_bytes"], ctx.services.config.get("fetch.max.bytes"))
    if replica_id < 0 and ctx.services.client_quotas.enabled:
        max_bytes = quota_helper.fetch_max_bytes(ctx, max_bytes)
    results = await replica_manager.fetch(wanted, isolation, request["max_wait_ms"],
                                          min(request["min_bytes"], max_bytes), max_bytes, replica_id, replica_epoch,
                                          hard_max_bytes_limit=version <= 2)
    to_magic = None
    if version < FIRST_RECORD_BATCH_VERSION:  # loaded with the first old fetcher, not at start-up
        from kbroker.log.legacy_records import fetch_magic

        to_magic = fetch_magic(version)
    if slots is None and to_magic is None:
        answers = results  # every partition read, in the context's order
    else:
        answers = []
        for slot in range(len(wanted)) if slots is None else slots:
            if isinstance(slot, Errors):
                answers.append(FetchResult(slot))
            elif to_magic is None:
                answers.append(results[slot])
            else:
                answers.append(await _down_converted(ctx, wanted[slot], results[slot], to_magic, replica_id >= 0))
    error, session_id, answered = context.update_and_generate_response_data(answers)
    return {"throttle_time_ms": 0, "error_code": error, "session_id": session_id, "responses": _responses(answered)}


def _to_read(ctx: RequestContext, parts: list[CachedPartition], readable: set[str] | None, inconsistent: set[UUID]
             ) -> tuple[list[FetchRequestPartition], list[int | Errors] | None]:
    """The partitions to read, and for each partition of the context an index into them or the
    error answered without reading; None when every partition is read, in order (the common
    case: one pass, no index per partition)."""
    version = ctx.api_version
    if readable is None and version >= 10 and not inconsistent:
        wanted = [part.request for part in parts if part.topic is not None]
        if len(wanted) == len(parts):
            return wanted, None
    wanted = []
    slots: list[int | Errors] = []
    for part in parts:
        name = part.topic
        if name is None:
            slots.append(Errors.UNKNOWN_TOPIC_ID)
        elif inconsistent and part.topic_id in inconsistent:
            slots.append(Errors.INCONSISTENT_TOPIC_ID)
        elif readable is not None and name not in readable:
            slots.append(Errors.TOPIC_AUTHORIZATION_FAILED)
        elif version < 10 and _is_zstd_topic(ctx, name, part.request.partition):
            slots.append(Errors.UNSUPPORTED_COMPRESSION_TYPE)
        else:
            slots.append(len(wanted))
            wanted.append(part.request)
    return wanted, slots


def _fetch_data(ctx: RequestContext, request: FetchRequest) -> list[CachedPartition]:
    """The request's partitions, each with its topic's name (None: a topic id not known here)."""
    by_id = ctx.api_version >= FIRST_TOPIC_ID_VERSION
    cache, replica_manager = ctx.services.metadata_cache, ctx.services.replica_manager
    fetch_data = []
    for topic in request["topics"]:
        topic_id = topic["topic_id"]
        # A follower may ask before UpdateMetadata has told us of a new topic: the partitions
        # LeaderAndIsr gave us know their topic ids too.
        name: str | None = _name_of_id(cache, replica_manager, topic_id) if by_id else topic["topic"]
        for p in topic["partitions"]:
            fetch_data.append(CachedPartition(name, topic_id, FetchRequestPartition(
                name or "", p["partition"], p["fetch_offset"], p["partition_max_bytes"], p["current_leader_epoch"],
                p["last_fetched_epoch"], p["log_start_offset"])))
    return fetch_data


def _to_forget(request: FetchRequest, version: int) -> list[PartitionKey]:
    if version < FIRST_SESSION_VERSION:
        return []
    by_id = version >= FIRST_TOPIC_ID_VERSION
    return [(t["topic_id"] if by_id else t["topic"], p) for t in request["forgotten_topics_data"] for p in t["partitions"]]


def _resolve_names(ctx: RequestContext, parts: list[CachedPartition]) -> set[UUID]:
    """A session by topic ids: a partition whose id was unknown takes its name once the id is
    known (Kafka's maybeResolveUnknownName); a known name stays, and its partition is read by
    name (a deleted topic answers what a missing partition does). Returns the topic ids whose name
    now belongs to another topic id here (re-created: INCONSISTENT_TOPIC_ID, as Kafka's read)."""
    cache, replica_manager = ctx.services.metadata_cache, ctx.services.replica_manager
    current: dict[UUID, str | None] = {}
    inconsistent: set[UUID] = set()
    last_id: UUID | None = None
    name: str | None = None
    for part in parts:
        topic_id = part.topic_id
        if topic_id is not last_id:  # a session's partitions mostly come topic by topic: no hashing then
            last_id = topic_id
            if topic_id in current:
                name = current[topic_id]
            else:
                name = current[topic_id] = _name_of_id(cache, replica_manager, topic_id)
        if name == part.topic:
            continue
        if name is not None and part.topic is None:
            part.topic = part.request.topic = name
        elif name is None and part.topic is not None and _topic_id_here(ctx, part.topic) not in (None, topic_id):
            inconsistent.add(topic_id)
    return inconsistent


def _topic_id_here(ctx: RequestContext, topic: str) -> UUID | None:
    meta = ctx.services.metadata_cache.topic(topic)
    return meta.topic_id if meta is not None else None


def _responses(answered: list[tuple[CachedPartition, FetchResult]]) -> list[FetchResponseFetchableTopicResponse]:
    """Topic entries of the answered partitions; a topic's consecutive partitions share one."""
    responses: list[FetchResponseFetchableTopicResponse] = []
    last: CachedPartition | None = None
    partitions: list[FetchResponsePartitionData] = []
    for part, result in answered:
        # Identity first: a full fetch's partitions of one topic entry share its name and id objects.
        if last is None or (part.topic_id is not last.topic_id and part.topic_id != last.topic_id) or (
                part.topic is not last.topic and part.topic != last.topic):
            partitions = []
            responses.append({"topic": part.topic or "", "topic_id": part.topic_id, "partitions": partitions})
            last = part
        partitions.append(_partition_data(part.request.partition, result))
    return responses


def _readable(ctx: RequestContext, parts: Iterable[CachedPartition], from_follower: bool) -> set[str] | None:
    """With an authorizer, the topics the fetch may read; None when it may read any (a follower
    with CLUSTER_ACTION)."""
    if from_follower:
        return None if auth_helper.authorize(ctx, AclOperation.CLUSTER_ACTION, ResourceType.CLUSTER) else set()
    names = {part.topic for part in parts if part.topic is not None}
    return auth_helper.authorized_names(ctx, AclOperation.READ, ResourceType.TOPIC, names)


def _name_of_id(cache: MetadataCache, replica_manager: ReplicaManager, topic_id: UUID) -> str | None:
    meta = cache.topic_by_id(topic_id)
    return meta.name if meta is not None else replica_manager.topic_name_for_id(topic_id)


def _log_config(ctx: RequestContext, topic: str, partition: int) -> LogConfig | None:
    p = ctx.services.replica_manager.get_partition(topic, partition)
    return p.log.config if p is not None and p.log is not None else None


def _is_zstd_topic(ctx: RequestContext, topic: str, partition: int) -> bool:
    """Kafka refuses Fetch before v10 on compression.type=zstd topics: old clients can't read zstd."""
    config = _log_config(ctx, topic, partition)
    return config is not None and config.compression_type == "zstd"


async def _down_converted(ctx: RequestContext, req: FetchRequestPartition, result: FetchResult,
                          to_magic: int, from_follower: bool) -> FetchResult:
    """Kafka's maybeConvertFetchedData: a v0-3 fetcher gets the partition's records as magic
    `to_magic` messages, unless the topic turned down-conversion off for clients. The conversion
    (decoding, re-encoding, recompressing every record) runs in a worker thread, so the event
    loop keeps serving other clients between its turns at the GIL."""
    if result.error != Errors.NONE:
        return result
    config = _log_config(ctx, req.topic, req.partition)
    if not from_follower and config is not None and not config.message_downconversion_enable:
        return FetchResult(Errors.UNSUPPORTED_VERSION)
    if result.records is None:
        return result
    from kbroker.log.legacy_records import down_convert  # imported by the handler already

    region = result.records
    try:
        records = await asyncio.get_running_loop().run_in_executor(
            None, lambda: down_convert(region.read_bytes(), to_magic, req.fetch_offset))
    except LogError as exc:
        return FetchResult(exc.code)
    return replace(result, records=records, size=len(records))


def _partition_data(index: int, result: FetchResult) -> FetchResponsePartitionData:
    data: FetchResponsePartitionData = {
        "partition_index": index,
        "error_code": result.error,
        "high_watermark": result.high_watermark,
        "last_stable_offset": result.last_stable_offset,
        "log_start_offset": result.log_start_offset,
        # read_committed only (None otherwise): the transactions the client must drop. A partition
        # refused before any read gets Kafka's FetchResponse.partitionResponse: an empty list.
        "aborted_transactions": ([] if result.error in _REFUSED_BEFORE_READING else None)
        if result.aborted_transactions is None else [
            {"producer_id": txn.producer_id, "first_offset": txn.first_offset} for txn in result.aborted_transactions],
        "preferred_read_replica": -1,
        "records": result.records if result.records is not None else b"",
    }
    if result.diverging_epoch is not None:
        data["diverging_epoch"] = {"epoch": result.diverging_epoch[0], "end_offset": result.diverging_epoch[1]}
    return data
