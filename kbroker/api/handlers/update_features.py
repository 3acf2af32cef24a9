"""UpdateFeatures (57): changes the cluster's finalized feature levels, on the controller.

- Versions: 0-2 served and advertised.
- Behaviour (a ZooKeeper-mode Kafka's KafkaApis.handleUpdateFeatures and controller checks):
  - away from the active controller: NOT_CONTROLLER (`@controller_only`);
  - no updates: INVALID_REQUEST "No feature updates were provided in the request.";
  - this broker supports no feature (ApiVersions lists none, as a ZooKeeper-mode broker without
    metadata.version), so every update is refused as Kafka's controller refuses an unsupported
    one: INVALID_REQUEST "Could not apply finalized feature update because the provided
    feature is not supported.", per feature in v0-1, as the top-level error in v2 (which has
    no per-feature results); validate_only answers the same and changes nothing either way.
- Gaps: Kafka 3.9's ZooKeeper-mode response drops the per-feature errors (each reads NONE,
  "not correct" in its own comment); kbroker answers them. No CLUSTER_AUTHORIZATION_FAILED
  (no authorizer).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.api.controller_only import controller_only
from kbroker.api.request_context import RequestContext
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors

if TYPE_CHECKING:
    from kbroker.protocol.message_types import UpdateFeaturesRequest, UpdateFeaturesResponse

API_KEY = ApiKey.UPDATE_FEATURES
VERSIONS = (0, 2)
_NO_UPDATES = "No feature updates were provided in the request."
_NOT_SUPPORTED = "Could not apply finalized feature update because the provided feature is not supported."


@controller_only(results=[])
async def handle(ctx: RequestContext, request: UpdateFeaturesRequest) -> UpdateFeaturesResponse:
    updates = request["feature_updates"]
    if not updates:
        return {"throttle_time_ms": 0, "error_code": Errors.INVALID_REQUEST, "error_message": _NO_UPDATES, "results": []}
    if ctx.api_version >= 2:
        return {"throttle_time_ms": 0, "error_code": Errors.INVALID_REQUEST, "error_message": _NOT_SUPPORTED}
    return {"throttle_time_ms": 0, "error_code": Errors.NONE, "error_message": None,
            "results": [{"feature": update["feature"], "error_code": Errors.INVALID_REQUEST,
                         "error_message": _NOT_SUPPORTED} for update in updates]}
