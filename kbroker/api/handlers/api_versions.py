"""ApiVersions (18), v0-4.

Advertises exactly the APIs that have a handler module, with the versions each serves.
Versions newer than ours are answered by kafka_apis.py in v0 format with UNSUPPORTED_VERSION
and our own range (KIP-511); a v3+ body that does not parse gets INVALID_REQUEST there too.
Known gaps: no feature flags (SupportedFeatures/FinalizedFeatures are empty, as a ZooKeeper-mode
broker without metadata.version sends them); no client software name/version validation.
"""

from __future__ import annotations

from kbroker.api.protocol.api_keys import ApiKey
from kbroker.api.request_context import RequestContext

API_KEY = ApiKey.API_VERSIONS
VERSIONS = (0, 4)


async def handle(ctx: RequestContext, request: dict) -> dict:
    return {"error_code": 0, "api_keys": ctx.broker.api_versions_body, "throttle_time_ms": 0}
