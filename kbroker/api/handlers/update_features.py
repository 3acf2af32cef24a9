"""UpdateFeatures (57): changes the cluster's finalized feature levels, on the controller.

- Versions: 0-2 served and advertised.
- Behaviour: a ZooKeeper-mode Kafka's KafkaApis.handleUpdateFeatures and the checks of its
  KafkaController.validateFeatureUpdate, with their messages:
  - away from the active controller: NOT_CONTROLLER (`@controller_only`);
  - no updates: INVALID_REQUEST "No feature updates were provided in the request.";
  - per feature, in Kafka's order: an empty name, an unknown upgrade type (v1+), a deletion
    (level < 1 with allow_downgrade in v0, a downgrade type in v1+) of a feature not finalized,
    a level < 1 without a downgrade; else the feature is not supported: this broker supports
    none (ApiVersions lists none, as a ZooKeeper-mode broker without metadata.version). All are
    INVALID_REQUEST, answered per feature in v0-1 and as the top-level error in v2 (which has
    no per-feature results: the first feature's error, as the 4.x controller answers), so no
    update is ever applied; validate_only answers the same.
- Gaps: no CLUSTER_AUTHORIZATION_FAILED (no authorizer).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.api.controller_only import controller_only
from kbroker.api.request_context import RequestContext
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors

if TYPE_CHECKING:
    from kbroker.protocol.message_types import (
        UpdateFeaturesRequest,
        UpdateFeaturesRequestFeatureUpdateKey,
        UpdateFeaturesResponse,
    )

API_KEY = ApiKey.UPDATE_FEATURES
VERSIONS = (0, 2)
_NO_UPDATES = "No feature updates were provided in the request."
_UPGRADE, _SAFE_DOWNGRADE, _UNSAFE_DOWNGRADE = 1, 2, 3  # FeatureUpdate.UpgradeType


@controller_only(results=[])
async def handle(ctx: RequestContext, request: UpdateFeaturesRequest) -> UpdateFeaturesResponse:
    updates = request["feature_updates"]
    if not updates:
        return {"throttle_time_ms": 0, "error_code": Errors.INVALID_REQUEST, "error_message": _NO_UPDATES, "results": []}
    refusals = [(update["feature"], _refusal(update, ctx.api_version)) for update in updates]
    if ctx.api_version >= 2:
        return {"throttle_time_ms": 0, "error_code": Errors.INVALID_REQUEST, "error_message": refusals[0][1]}
    return {"throttle_time_ms": 0, "error_code": Errors.NONE, "error_message": None,
            "results": [{"feature": feature, "error_code": Errors.INVALID_REQUEST, "error_message": message}
                        for feature, message in refusals]}


def _refusal(update: UpdateFeaturesRequestFeatureUpdateKey, version: int) -> str:
    """Why Kafka's controller refuses `update` when no feature is finalized or supported."""
    upgrade_type = update.get("upgrade_type", _UPGRADE) if version >= 1 else (
        _SAFE_DOWNGRADE if update.get("allow_downgrade") else _UPGRADE)
    level = update["max_version_level"]
    if not update["feature"]:
        return "Feature name can not be empty."
    if upgrade_type not in (_UPGRADE, _SAFE_DOWNGRADE, _UNSAFE_DOWNGRADE):
        return "Received unknown upgrade type."
    if level < 1 and upgrade_type != _UPGRADE:
        return "Can not delete non-existing finalized feature."
    if level < 1:
        return (f"Can not provide maxVersionLevel: {level} less than 1 without setting the SAFE downgradeType"
                " in the request.")
    return "Could not apply finalized feature update because the provided feature is not supported."
