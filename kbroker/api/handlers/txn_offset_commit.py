"""TxnOffsetCommit (28): commits a group's offsets inside a producer's transaction.

- Versions: 0-6 served and advertised (v3+ carry the member and generation, KIP-447; v6 names
  topics by id, KIP-1319).
- Behaviour:
  - v6 topics come by id: an id naming no topic gets UNKNOWN_TOPIC_ID, and the answer carries
    the ids; before v6, names. Partitions of unknown topics get UNKNOWN_TOPIC_OR_PARTITION; the
    rest go to the GroupCoordinator, which checks the member and generation when given
    (UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID, ILLEGAL_GENERATION; for a KIP-848 group the member
    epoch: STALE_MEMBER_EPOCH from v6, ILLEGAL_GENERATION before) and writes them to
    `__consumer_offsets` as a transactional batch of the producer (acks=-1).
  - A group that does not exist, named with a generation or member epoch >= 0, gets
    GROUP_ID_NOT_FOUND from v6 and ILLEGAL_GENERATION before, as Kafka 4.4 (and OffsetCommit);
    without one the group is created, an offsets-only group.
  - The offsets stay pending (OffsetFetch with require_stable: UNSTABLE_OFFSET_COMMIT) until the
    transaction's marker reaches that partition: a commit makes them the group's, an abort
    drops them.
  - An old producer epoch gets INVALID_PRODUCER_EPOCH from the log; INVALID_GROUP_ID,
    NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS as for OffsetCommit (v0-1: that last one is
    COORDINATOR_NOT_AVAILABLE, as Kafka answers those versions).
  - Needs WRITE on the transactional id (TRANSACTIONAL_ID_AUTHORIZATION_FAILED), READ on the
    group (GROUP_AUTHORIZATION_FAILED) and READ on each topic (TOPIC_AUTHORIZATION_FAILED), as
    Kafka (api/auth_helper.py).
- Gaps: no check that AddOffsetsToTxn came first (Kafka 3.9 does not check either without
  transaction.version 2); a KIP-848 member's commit in an epoch older than its current one is
  refused even for partitions it held since then (Kafka 4.4 checks each partition's assignment
  epoch). Kafka 4.4's Java producer sends v6 only with transaction.version 2, which kbroker
  does not advertise, so it stays on v4.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from kbroker.api import auth_helper, topic_ids
from kbroker.api.auth_helper import AclOperation, ResourceType
from kbroker.api.request_context import RequestContext
from kbroker.group.offset_and_metadata import OffsetAndMetadata
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors

if TYPE_CHECKING:
    from kbroker.protocol.message_types import (
        TxnOffsetCommitRequest,
        TxnOffsetCommitRequestTxnOffsetCommitRequestTopic,
        TxnOffsetCommitResponse,
    )

API_KEY = ApiKey.TXN_OFFSET_COMMIT
VERSIONS = (0, 6)
NO_GENERATION = -1
TOPIC_IDS_VERSION = 6


async def handle(ctx: RequestContext, request: TxnOffsetCommitRequest) -> TxnOffsetCommitResponse:
    version = ctx.api_version
    cache = ctx.services.metadata_cache
    now = int(time.time() * 1000)
    errors: dict[tuple[str, int], Errors] = {}
    offsets: dict[tuple[str, int], OffsetAndMetadata] = {}
    layout: list[tuple[TxnOffsetCommitRequestTxnOffsetCommitRequestTopic, str]] = []  # (entry, key) in order
    refused = (auth_helper.error_for(ctx, AclOperation.WRITE, ResourceType.TRANSACTIONAL_ID, request["transactional_id"])
               or auth_helper.error_for(ctx, AclOperation.READ, ResourceType.GROUP, request["group_id"]))
    resolved = [topic_ids.resolve(cache, t, version >= TOPIC_IDS_VERSION) for t in request["topics"]]
    readable = auth_helper.authorized_names(ctx, AclOperation.READ, ResourceType.TOPIC,
                                            [r.name for r in resolved if r.name is not None])
    for topic, r in zip(request["topics"], resolved, strict=True):
        layout.append((topic, r.key))
        for p in topic["partitions"]:
            tp = (r.key, p["partition_index"])
            if refused:
                errors[tp] = refused
            elif r.name is None:
                errors[tp] = r.missing
            elif r.name not in readable:
                errors[tp] = Errors.TOPIC_AUTHORIZATION_FAILED
            elif r.topic is None or tp[1] not in r.topic.partitions:
                errors[tp] = Errors.UNKNOWN_TOPIC_OR_PARTITION
            else:
                offsets[tp] = OffsetAndMetadata(p["committed_offset"], p["committed_leader_epoch"],
                                                p["committed_metadata"] or "", now, None)
    if offsets:
        v3 = version >= 3
        errors.update(await ctx.services.group_coordinator.handle_txn_commit_offsets(
            request["group_id"], request["producer_id"], request["producer_epoch"],
            request["member_id"] if v3 else "", request["group_instance_id"] if v3 else None,
            request["generation_id_or_member_epoch"] if v3 else NO_GENERATION, offsets, version))
    if version < 2:  # Kafka's KafkaApis: these versions' clients do not know the loading error
        errors = {tp: Errors.COORDINATOR_NOT_AVAILABLE if e == Errors.COORDINATOR_LOAD_IN_PROGRESS else e
                  for tp, e in errors.items()}
    return {"throttle_time_ms": 0, "topics": [
        {"name": topic["name"], "topic_id": topic["topic_id"], "partitions": [
            {"partition_index": p["partition_index"], "error_code": errors[(key, p["partition_index"])]}
            for p in topic["partitions"]]}
        for topic, key in layout]}
