"""Produce (0): appends record batches to partition leaders.

- Versions: 3-13 served; 0-13 advertised. Kafka 4 advertises v0-2 but closes the connection on
  them (KAFKA-18659): librdkafka keeps compression off unless v0 is advertised
  (KAFKA-FACTS.md §10), so we do the same (kafka_apis.py closes the connection for versions
  outside VERSIONS).
- Behaviour:
  - Each partition's records must be exactly one magic-2 batch (INVALID_RECORD; zstd before v7:
    UNSUPPORTED_COMPRESSION_TYPE); the log validates and appends it without decoding records
    unless a rule needs them (kbroker/log/validator.py).
  - acks must be 0, 1 or -1 (INVALID_REQUIRED_ACKS); acks=-1 honours min.insync.replicas and
    waits until the high watermark covers the append, up to timeout_ms.
  - acks=0 gets no response, and the connection is closed instead if any partition failed, as
    Kafka does.
  - Topics by name, or by id from v13 (UNKNOWN_TOPIC_ID).
  - Client writes to internal topics get INVALID_TOPIC_EXCEPTION.
- Gaps: transactional produce (no transaction coordinator yet: transactional ids are not
  accepted, TRANSACTIONAL_ID_AUTHORIZATION_FAILED is not used; InitProducerId refuses them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.api.handlers import CloseConnection
from kbroker.api.request_context import RequestContext
from kbroker.log.validator import validate_produce_partition_records
from kbroker.metadata.metadata_cache import INTERNAL_TOPICS
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors
from kbroker.replica.replica_manager import ProduceResult

if TYPE_CHECKING:
    from kbroker.protocol.message_types import ProduceRequest, ProduceResponse

API_KEY = ApiKey.PRODUCE
VERSIONS = (3, 13)
ADVERTISED_VERSIONS = (0, 13)


async def handle(ctx: RequestContext, request: ProduceRequest) -> ProduceResponse | None:
    version = ctx.api_version
    acks = request["acks"]
    services = ctx.services
    replica_manager = services.replica_manager
    cache = services.metadata_cache
    results: dict[tuple[str, int], ProduceResult] = {}
    topics: list[tuple[dict, list[tuple[int, tuple[str, int] | None, ProduceResult | None]]]] = []
    for topic_data in request["topic_data"]:
        name = topic_data["name"]
        if version >= 13:
            topic = cache.topic_by_id(topic_data["topic_id"])
            name = topic.name if topic is not None else None
        partitions = []
        for pd in topic_data["partition_data"]:
            index = pd["index"]
            error = _precheck(acks, name, version, pd["records"], topic_data)
            if error is not None:
                partitions.append((index, None, error))
                continue
            tp = (name, index)
            results[tp] = replica_manager.append_to_partition(name, index, pd["records"], acks, version)
            partitions.append((index, tp, None))
        topics.append((topic_data, partitions))
    if acks == 0:
        if any(r.error != Errors.NONE for r in results.values()) or any(
                e is not None for _, parts in topics for _, _, e in parts):
            raise CloseConnection
        return None
    if acks == -1 and results:
        await replica_manager.wait_for_acks(results, request["timeout_ms"])
    responses = []
    for topic_data, partitions in topics:
        entries = []
        for index, tp, early in partitions:
            result = early if early is not None else results[tp]
            entries.append({"index": index, "error_code": result.error,
                            "base_offset": result.base_offset if result.error == Errors.NONE else -1,
                            "log_append_time_ms": result.log_append_time,
                            "log_start_offset": result.log_start_offset, "error_message": result.message})
        responses.append({"name": topic_data["name"], "topic_id": topic_data["topic_id"],
                          "partition_responses": entries})
    return {"responses": responses, "throttle_time_ms": 0}


def _precheck(acks: int, name: str | None, version: int, records, topic_data: dict) -> ProduceResult | None:
    if acks not in (0, 1, -1):
        return ProduceResult(Errors.INVALID_REQUIRED_ACKS)
    if name is None:
        return ProduceResult(Errors.UNKNOWN_TOPIC_ID)
    if name in INTERNAL_TOPICS:
        return ProduceResult(Errors.INVALID_TOPIC_EXCEPTION, message=f"Cannot append to internal topic {name}")
    error = validate_produce_partition_records(version, records)
    if error != Errors.NONE:
        return ProduceResult(error)
    return None
