"""ApiVersions (18): the APIs and versions this broker serves.

- Versions: 0-4 served and advertised.
- Behaviour:
  - Advertises exactly the APIs that have a handler module, with the versions each serves;
    KIP-848's ConsumerGroupHeartbeat and ConsumerGroupDescribe only while
    group.coordinator.rebalance.protocols lists `consumer`, as Kafka.
  - Versions newer than ours are answered by kafka_apis.py in v0 format with
    UNSUPPORTED_VERSION and our own range (KIP-511); a v3+ body that does not parse gets
    INVALID_REQUEST there too.
  - From v3 the client software name and version must match Kafka's pattern (letters, digits,
    '-' and '.', starting and ending with a letter or digit), else INVALID_REQUEST.
- Gaps: no feature flags (SupportedFeatures/FinalizedFeatures are empty, as a ZooKeeper-mode
  broker without metadata.version sends them).
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING

from kbroker.api.handlers import load_handlers
from kbroker.api.request_context import RequestContext
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors

if TYPE_CHECKING:
    from kbroker.protocol.message_types import (
        ApiVersionsRequest,
        ApiVersionsResponse,
        ApiVersionsResponseApiVersion,
    )

API_KEY = ApiKey.API_VERSIONS
VERSIONS = (0, 4)


_SOFTWARE_PATTERN = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?")


async def handle(ctx: RequestContext, request: ApiVersionsRequest) -> ApiVersionsResponse:
    if ctx.api_version >= 3 and not (_SOFTWARE_PATTERN.fullmatch(request["client_software_name"])
                                     and _SOFTWARE_PATTERN.fullmatch(request["client_software_version"])):
        return {"error_code": Errors.INVALID_REQUEST, "api_keys": [], "throttle_time_ms": 0}
    api_keys = _advertised_api_keys()
    if "consumer" not in ctx.services.config.get("group.coordinator.rebalance.protocols"):
        api_keys = [k for k in api_keys if k["api_key"] not in _CONSUMER_PROTOCOL_APIS]
    return {"error_code": 0, "api_keys": api_keys, "throttle_time_ms": 0}


_CONSUMER_PROTOCOL_APIS = frozenset({ApiKey.CONSUMER_GROUP_HEARTBEAT, ApiKey.CONSUMER_GROUP_DESCRIBE})


@functools.cache
def _advertised_api_keys() -> list[ApiVersionsResponseApiVersion]:
    """Built once: the handlers served never change while we run."""
    return [{"api_key": h.api_key, "min_version": h.advertised_min, "max_version": h.advertised_max}
            for h in sorted(load_handlers().values())]
