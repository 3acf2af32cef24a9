"""Produce (0): appends record batches to partition leaders.

- Versions: 0-13 served and advertised (Kafka 3.9's range; librdkafka keeps compression off
  unless v0 is advertised, KAFKA-FACTS.md §10).
- Behaviour:
  - v3+: each partition's records must be exactly one magic-2 batch (INVALID_RECORD; zstd before
    v7: UNSUPPORTED_COMPRESSION_TYPE); the log validates and appends it without decoding records
    unless a rule needs them (kbroker/log/validator.py).
  - v0-2 carry message sets of magic 0/1: the log checks their sizes and CRCs (MESSAGE_TOO_LARGE,
    CORRUPT_MESSAGE; INVALID_RECORD for mixed magics or nested compression) and converts them to
    one v2 batch, as Kafka 3.x does whatever log.message.format.version says
    (kbroker/log/legacy_records.py); v2 answers with log_append_time.
  - acks must be 0, 1 or -1 (INVALID_REQUIRED_ACKS); acks=-1 honours min.insync.replicas and
    waits until the high watermark covers the append, up to timeout_ms.
  - acks=0 gets no response, and the connection is closed instead if any partition failed, as
    Kafka does.
  - Topics by name, or by id from v13 (UNKNOWN_TOPIC_ID).
  - With an authorizer (api/auth_helper.py), as Kafka's KafkaApis: a request with a
    transactional id needs WRITE on it, else every partition gets
    TRANSACTIONAL_ID_AUTHORIZATION_FAILED; each topic needs WRITE, else its partitions get
    TOPIC_AUTHORIZATION_FAILED (before any other check of the topic). One decision per topic,
    cached by the authorizer: nothing per record. Idempotence needs no more (KIP-679).
  - Client writes to internal topics get INVALID_TOPIC_EXCEPTION.
  - As Kafka's appendToLocalLog: UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER_OR_FOLLOWER,
    MESSAGE_TOO_LARGE, RECORD_LIST_TOO_LARGE, CORRUPT_MESSAGE and KAFKA_STORAGE_ERROR answer
    log_start_offset -1 and no error_message (compat-tests/test_differential.py compares them).
  - A batch refused for its records (a keyless record on a compacted topic, a timestamp out of
    bounds) answers INVALID_RECORD / INVALID_TIMESTAMP with v8+'s `record_errors` (each
    offending record's batch index and message) and Kafka's `error_message`.
  - KIP-890 part 1 (transaction.partition.verification.enable): a request with a
    transactional id whose transactional batch would open a transaction on a partition asks
    the coordinator first (AddPartitionsToTxn verify-only, kbroker/txn/); a partition not added
    to the transaction gets TRANSACTION_ABORTABLE (v11+; INVALID_TXN_STATE before) and nothing
    is appended; a fenced epoch INVALID_PRODUCER_EPOCH; a coordinator that cannot answer
    NOT_ENOUGH_REPLICAS (retriable); batches of two producer ids INVALID_PRODUCER_ID_MAPPING.
    Each verification is bound to a VerificationGuard the partition's producer state hands
    out before asking: the append must bring it, and a marker or the transaction's first batch
    clears it, so a verification that raced with the end of its transaction (or a batch whose
    transaction ended after it was found open) gets INVALID_TXN_STATE "Record was not part of
    an ongoing transaction" instead of opening a hanging transaction.
  - `kbroker.append.offload.threads` (kbroker's own, 0 = off by default): records of at least
    `kbroker.append.offload.min.bytes`, and those the topic's compression.type rewrites (from
    100 records), are checked (CRC-32C, the rewrite) in worker threads first, all partitions of
    the request at once; the appends then run in the request's order with the same answers
    (kbroker/log/append_offload.py, docs/MULTICORE.md).
  - Transactional batches in a request without a transactional id: the whole request answers
    TRANSACTIONAL_ID_AUTHORIZATION_FAILED and nothing is appended (KafkaApis; acks=0 gets no
    answer).
- Gaps: one verification request per produce request (Kafka batches them per coordinator);
  v0-2's message sets are converted on the event loop, within the append (about 10 us a
  message).
"""

from __future__ import annotations

import asyncio
import struct
import time
from typing import TYPE_CHECKING

from kbroker.api import auth_helper
from kbroker.api.auth_helper import AclOperation, ResourceType
from kbroker.api.handlers import CloseConnection
from kbroker.api.request_context import RequestContext
from kbroker.metadata.metadata_cache import INTERNAL_TOPICS
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors
from kbroker.replica.replica_manager import ProduceResult

if TYPE_CHECKING:
    from kbroker.log.append_offload import AppendOffloader
    from kbroker.log.producer_state import VerificationGuard
    from kbroker.log.validator import PreparedRecords
    from kbroker.protocol.message_types import (
        ProduceRequest,
        ProduceRequestTopicProduceData,
        ProduceResponse,
        ProduceResponsePartitionProduceResponse,
        ProduceResponseTopicProduceResponse,
    )
    from kbroker.replica.replica_manager import ReplicaManager

API_KEY = ApiKey.PRODUCE
VERSIONS = (0, 13)

# A partition of the request: its index, and where its answer comes from: the partition appended
# to (its result is in `results`) or the answer it got without an append.
PartitionSlot = tuple[int, "tuple[str, int] | ProduceResult"]

# A v2 batch header's attributes (big-endian int16: the flags are in the byte at 22) and
# producer id/epoch, read only for transactional requests.
_ATTRIBUTES_AT = 21
_PRODUCER = struct.Struct(">qh")
_PRODUCER_AT = 43
_TRANSACTIONAL = 0x10
# Read per partition: module constants, since an enum member's lookup costs ~80 ns each time.
_NONE = Errors.NONE
_INVALID_RECORD = Errors.INVALID_RECORD
_RETRY_VERIFICATION = frozenset({Errors.CONCURRENT_TRANSACTIONS, Errors.NETWORK_EXCEPTION,
                                 Errors.COORDINATOR_LOAD_IN_PROGRESS, Errors.COORDINATOR_NOT_AVAILABLE,
                                 Errors.NOT_COORDINATOR})


async def handle(ctx: RequestContext, request: ProduceRequest) -> ProduceResponse | None:
    version = ctx.header.api_version
    acks = request["acks"]
    services = ctx.services
    replica_manager = services.replica_manager
    cache = services.metadata_cache
    results: dict[tuple[str, int], ProduceResult] = {}
    appends: list[tuple[tuple[str, int], memoryview]] = []
    topics: list[tuple[ProduceRequestTopicProduceData, list[PartitionSlot]]] = []
    if request["transactional_id"] is None and version >= 3 and _has_transactional_records(request):
        # KafkaApis: transactional records are authorized by their transactional id, so without
        # one the whole request is refused, before any topic is looked at (acks=0: silently, as
        # Kafka's NoOpResponse), with or without an authorizer.
        if acks == 0:
            return None
        denied: ProduceResult | set[str] | None = ProduceResult(Errors.TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
    elif services.authorizer is not None:
        denied = _denied(ctx, request, version)
    else:  # no authorizer: nothing is asked per request
        denied = None
    for topic_data in request["topic_data"]:
        name: str | None = topic_data["name"]
        if version >= 13:
            topic = cache.topic_by_id(topic_data["topic_id"])
            name = topic.name if topic is not None else None
        target = _target_topic(acks, name, denied)
        partitions: list[PartitionSlot] = []
        if isinstance(target, ProduceResult):  # the same answer for each of its partitions
            for pd in topic_data["partition_data"]:
                partitions.append((pd["index"], target))
        else:
            for pd in topic_data["partition_data"]:
                index = pd["index"]
                records = pd["records"]  # Kafka's validateRecords (a null records field: nothing to append)
                invalid = _INVALID_RECORD if records is None else _validate_records(version, records)
                if invalid != _NONE or records is None:
                    partitions.append((index, ProduceResult(invalid)))
                    continue
                tp = (target, index)
                appends.append((tp, records))
                partitions.append((index, tp))
        topics.append((topic_data, partitions))
    refused: dict[tuple[str, int], Errors] = {}
    guards: dict[tuple[str, int], VerificationGuard] | None = None  # None: verification is off
    transactional_id = request["transactional_id"]
    if transactional_id is not None and services.config["transaction.partition.verification.enable"]:
        refused, guards = await _verify_transaction(ctx, transactional_id, appends)
    prepared = None  # what worker threads checked (kbroker.append.offload.threads), by partition
    if services.append_offloader is not None:
        prepared = await _prepare_in_workers(services.append_offloader, replica_manager, appends, refused)
    for tp, records in appends:
        error = refused.get(tp)
        results[tp] = ProduceResult(error) if error else replica_manager.append_to_partition(
            tp[0], tp[1], records, acks, verification_guard=None if guards is None else guards[tp],
            prepared=None if prepared is None else prepared.get(tp))
    if acks == 0:
        if any(r.error != Errors.NONE for r in results.values()) or any(
                isinstance(slot, ProduceResult) for _, parts in topics for _, slot in parts):
            raise CloseConnection
        return None
    if acks == -1 and results:
        await replica_manager.wait_for_acks(results, request["timeout_ms"])
    responses: list[ProduceResponseTopicProduceResponse] = []
    for topic_data, partitions in topics:
        entries: list[ProduceResponsePartitionProduceResponse] = []
        for index, slot in partitions:  # inline, not a helper: one call less per partition
            result = slot if isinstance(slot, ProduceResult) else results[slot]
            entry: ProduceResponsePartitionProduceResponse = {
                "index": index, "error_code": result.error,
                "base_offset": result.base_offset if result.error == _NONE else -1,
                "log_append_time_ms": result.log_append_time,
                "log_start_offset": result.log_start_offset, "error_message": result.message}
            if result.record_errors:  # the records the log refused, named for v8+ (KIP-467)
                entry["record_errors"] = [{"batch_index": i, "batch_index_error_message": message}
                                          for i, message in result.record_errors]
            entries.append(entry)
        responses.append({"name": topic_data["name"], "topic_id": topic_data["topic_id"],
                          "partition_responses": entries})
    return {"responses": responses, "throttle_time_ms": 0}


async def _prepare_in_workers(
        offloader: AppendOffloader, replica_manager: ReplicaManager,
        appends: list[tuple[tuple[str, int], memoryview]], refused: dict[tuple[str, int], Errors],
) -> dict[tuple[str, int], PreparedRecords] | None:
    """`kbroker.append.offload.threads`: the large records of partitions led here are checked
    (and rewritten for their topic's compression.type) in worker threads, all at once; the
    appends then run in the request's order, after every check is done (the network layer hands
    over a connection's next request only once this one is answered). None when nothing went to
    the workers: that path costs about a microsecond a partition."""
    jobs = None
    for tp, records in appends:
        partition = replica_manager.get_partition(tp[0], tp[1])
        log = partition.log if partition is not None and partition.is_leader else None
        if log is None or not offloader.wants(records, log.config) or tp in refused:
            continue  # the append answers it as without workers
        if jobs is None:
            jobs, now = {}, int(time.time() * 1000)
        jobs[tp] = offloader.prepare(records, log.config, now, tp[0], tp[1])
    if jobs is None:
        return None
    if len(jobs) == 1:  # directly: no task for the common one-partition request
        [(tp, job)] = jobs.items()
        return {tp: await job}
    return dict(zip(jobs, await asyncio.gather(*jobs.values()), strict=True))


async def _verify_transaction(
        ctx: RequestContext, transactional_id: str, appends: list[tuple[tuple[str, int], memoryview]],
) -> tuple[dict[tuple[str, int], Errors], dict[tuple[str, int], VerificationGuard]]:
    """KIP-890: the partitions whose transactional batch would start a transaction there are
    checked with the coordinator. Returns the refused ones with the error for this version, and
    each partition's VerificationGuard for its append (SENTINEL where nothing was verified: a
    transaction the check found open must still be open when the batch is appended)."""
    from kbroker.log.producer_state import SENTINEL  # loaded with the first log

    replica_manager = ctx.services.replica_manager
    guards: dict[tuple[str, int], VerificationGuard] = {}
    to_verify: dict[tuple[int, int], set[tuple[str, int]]] = {}
    for tp, records in appends:
        guards[tp] = SENTINEL
        if not _is_transactional(records):
            continue
        producer_id, epoch = _PRODUCER.unpack_from(records, _PRODUCER_AT)
        guard = replica_manager.maybe_start_transaction_verification(tp[0], tp[1], producer_id, epoch)
        if guard is not None and guard is not SENTINEL:
            guards[tp] = guard
            to_verify.setdefault((producer_id, epoch), set()).add(tp)
    if not to_verify:
        return {}, guards
    if len(to_verify) > 1:  # Kafka: "Transactional records contained more than one producer ID"
        return {tp: Errors.INVALID_PRODUCER_ID_MAPPING for tps in to_verify.values() for tp in tps}, guards
    [((producer_id, epoch), partitions)] = to_verify.items()
    errors = await ctx.services.transaction_coordinator.add_partitions_to_txn_manager.verify_transaction(
        transactional_id, producer_id, epoch, partitions)
    refused: dict[tuple[str, int], Errors] = {}
    for tp, error in errors.items():
        if error == Errors.TRANSACTION_ABORTABLE and ctx.api_version <= 10:
            error = Errors.INVALID_TXN_STATE  # older clients do not know TRANSACTION_ABORTABLE
        elif error in _RETRY_VERIFICATION:
            error = Errors.NOT_ENOUGH_REPLICAS  # retriable for every client, without a metadata refresh
        if error != Errors.NONE:
            refused[tp] = error
    return refused, guards


def _is_transactional(records: memoryview) -> bool:
    """The v2 batch's transactional attribute (Produce v3+: exactly one magic-2 batch)."""
    return bool(records[_ATTRIBUTES_AT + 1] & _TRANSACTIONAL)


def _has_transactional_records(request: ProduceRequest) -> bool:
    """Kafka's hasTransactionalRecords: the first batch of some partition is transactional (one
    byte read per partition, never per record: the flag is in the attributes' low byte)."""
    for topic_data in request["topic_data"]:
        for pd in topic_data["partition_data"]:
            records = pd["records"]
            if records is not None and len(records) > _ATTRIBUTES_AT + 1 and records[_ATTRIBUTES_AT + 1] & _TRANSACTIONAL:
                return True
    return False


def _denied(ctx: RequestContext, request: ProduceRequest, version: int) -> ProduceResult | set[str] | None:
    """What the authorizer refuses: one answer for the whole request (its transactional id), or
    the topics it may not WRITE to; None when a one-topic request may write to it. Asked only
    with an authorizer (without one the hot path asks nothing)."""
    transactional_id = request["transactional_id"]
    # (Transactional batches without a transactional id are refused before this, with or
    # without an authorizer: see handle.)
    if transactional_id is not None and not auth_helper.authorize(ctx, AclOperation.WRITE, ResourceType.TRANSACTIONAL_ID, transactional_id):
        return ProduceResult(Errors.TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
    topic_data = request["topic_data"]
    if len(topic_data) == 1 and version < 13:  # the common request: one check, no sets
        name = topic_data[0]["name"]
        return None if auth_helper.authorize(ctx, AclOperation.WRITE, ResourceType.TOPIC, name) else {name}
    names = {t["name"] for t in topic_data}
    if version >= 13:
        cache = ctx.services.metadata_cache
        names = {topic.name for t in request["topic_data"] if (topic := cache.topic_by_id(t["topic_id"]))}
    return names - auth_helper.authorized_names(ctx, AclOperation.WRITE, ResourceType.TOPIC, names)


def _target_topic(acks: int, name: str | None, denied: ProduceResult | set[str] | None) -> str | ProduceResult:
    """The topic to append to, or the answer every partition of it gets without an append."""
    if isinstance(denied, ProduceResult):
        return denied
    if acks not in (0, 1, -1):
        return ProduceResult(Errors.INVALID_REQUIRED_ACKS)
    if name is None:
        return ProduceResult(Errors.UNKNOWN_TOPIC_ID)
    if denied and name in denied:
        return ProduceResult(Errors.TOPIC_AUTHORIZATION_FAILED)
    if name in INTERNAL_TOPICS:
        return ProduceResult(Errors.INVALID_TOPIC_EXCEPTION, message=f"Cannot append to internal topic {name}")
    return name


def _validate_records(api_version: int, records: bytes | bytearray | memoryview | None) -> Errors:
    """kbroker.log.validator's check, imported with the first produce (not at start-up), then
    called directly: this function replaces itself, since an import statement in a function
    costs every call about as much as the check itself."""
    global _validate_records
    from kbroker.log.validator import validate_produce_partition_records

    _validate_records = validate_produce_partition_records
    return validate_produce_partition_records(api_version, records)
