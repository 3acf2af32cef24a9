"""TxnOffsetCommit (28): commits a group's offsets inside a producer's transaction.

- Versions: 0-5 served and advertised (v3+ carry the member and generation, KIP-447).
- Behaviour:
  - Partitions of unknown topics get UNKNOWN_TOPIC_OR_PARTITION; the rest go to the
    GroupCoordinator, which checks the member and generation when given (UNKNOWN_MEMBER_ID,
    FENCED_INSTANCE_ID, ILLEGAL_GENERATION; for a KIP-848 group the member epoch) and writes
    them to `__consumer_offsets` as a transactional batch of the producer (acks=-1).
  - The offsets stay pending (OffsetFetch with require_stable: UNSTABLE_OFFSET_COMMIT) until the
    transaction's marker reaches that partition: a commit makes them the group's, an abort
    drops them.
  - An old producer epoch gets INVALID_PRODUCER_EPOCH from the log; INVALID_GROUP_ID,
    NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS as for OffsetCommit.
  - Needs WRITE on the transactional id (TRANSACTIONAL_ID_AUTHORIZATION_FAILED), READ on the
    group (GROUP_AUTHORIZATION_FAILED) and READ on each topic (TOPIC_AUTHORIZATION_FAILED), as
    Kafka (api/auth_helper.py).
- Gaps: no check that AddOffsetsToTxn came first (Kafka 3.9 does not check either without
  transaction.version 2).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from kbroker.api import auth_helper
from kbroker.api.auth_helper import AclOperation, ResourceType
from kbroker.api.request_context import RequestContext
from kbroker.group.offset_and_metadata import OffsetAndMetadata
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors

if TYPE_CHECKING:
    from kbroker.protocol.message_types import TxnOffsetCommitRequest, TxnOffsetCommitResponse

API_KEY = ApiKey.TXN_OFFSET_COMMIT
VERSIONS = (0, 5)
NO_GENERATION = -1


async def handle(ctx: RequestContext, request: TxnOffsetCommitRequest) -> TxnOffsetCommitResponse:
    cache = ctx.services.metadata_cache
    now = int(time.time() * 1000)
    errors: dict[tuple[str, int], Errors] = {}
    offsets: dict[tuple[str, int], OffsetAndMetadata] = {}
    refused = (auth_helper.error_for(ctx, AclOperation.WRITE, ResourceType.TRANSACTIONAL_ID, request["transactional_id"])
               or auth_helper.error_for(ctx, AclOperation.READ, ResourceType.GROUP, request["group_id"]))
    readable = auth_helper.authorized_names(ctx, AclOperation.READ, ResourceType.TOPIC,
                                            [t["name"] for t in request["topics"]])
    for topic in request["topics"]:
        for p in topic["partitions"]:
            tp = (topic["name"], p["partition_index"])
            if refused:
                errors[tp] = refused
            elif tp[0] not in readable:
                errors[tp] = Errors.TOPIC_AUTHORIZATION_FAILED
            elif cache.partition(*tp) is None:
                errors[tp] = Errors.UNKNOWN_TOPIC_OR_PARTITION
            else:
                offsets[tp] = OffsetAndMetadata(p["committed_offset"], p["committed_leader_epoch"],
                                                p["committed_metadata"] or "", now, None)
    if offsets:
        v3 = ctx.api_version >= 3
        errors.update(await ctx.services.group_coordinator.handle_txn_commit_offsets(
            request["group_id"], request["producer_id"], request["producer_epoch"],
            request["member_id"] if v3 else "", request["group_instance_id"] if v3 else None,
            request["generation_id"] if v3 else NO_GENERATION, offsets))
    return {"throttle_time_ms": 0, "topics": [
        {"name": topic["name"], "partitions": [
            {"partition_index": p["partition_index"], "error_code": errors[(topic["name"], p["partition_index"])]}
            for p in topic["partitions"]]}
        for topic in request["topics"]]}
