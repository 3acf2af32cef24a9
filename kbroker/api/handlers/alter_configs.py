"""AlterConfigs (33): replaces a resource's config overrides wholesale.

- Versions: 0-2 served and advertised (flexible from v2). Deprecated by Kafka in favour of
  IncrementalAlterConfigs.
- Behaviour: settings not named go back to their defaults, as Kafka's
  ZkAdminManager.alterConfigs does.
  - TOPIC: UNKNOWN_TOPIC_OR_PARTITION if missing; unknown names INVALID_CONFIG; bad values
    INVALID_REQUEST ("Invalid config value for resource ..."); then /config/topics/<t> is
    written with a change notification (AdminManager), unless validate_only.
  - BROKER ("" or this broker's id): an empty change is accepted; any setting is refused with
    INVALID_REQUEST "Cannot update these configs dynamically", since kbroker has no dynamic
    broker configs. Another id gets INVALID_REQUEST.
  - Any other type (BROKER_LOGGER included): INVALID_REQUEST, as in Kafka.
  - A resource named twice, a config named twice or a null value: INVALID_REQUEST for that
    resource.
  - A topic needs ALTER_CONFIGS on it (TOPIC_AUTHORIZATION_FAILED), a broker or broker logger
    ALTER_CONFIGS on the cluster (CLUSTER_AUTHORIZATION_FAILED), as Kafka (api/config_helper.py).
- Gaps: no dynamic broker configs (see BROKER above).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.api.config_helper import (
    ConfigApiError,
    ResourceType,
    alter_each_resource,
    alter_topic_config,
    check_broker_resource,
    duplicate_config_names,
    refuse_broker_changes,
    resource_description,
    split_null_values,
)
from kbroker.api.request_context import RequestContext
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors

if TYPE_CHECKING:
    from kbroker.protocol.message_types import (
        AlterConfigsRequest,
        AlterConfigsRequestAlterConfigsResource,
        AlterConfigsResponse,
    )

API_KEY = ApiKey.ALTER_CONFIGS
VERSIONS = (0, 2)


async def handle(ctx: RequestContext, request: AlterConfigsRequest) -> AlterConfigsResponse:
    return {"throttle_time_ms": 0,
            "responses": alter_each_resource(ctx, request["resources"], request["validate_only"], _alter)}


def _alter(ctx: RequestContext, resource: AlterConfigsRequestAlterConfigsResource, validate_only: bool) -> None:
    type_id, name, configs = resource["resource_type"], resource["resource_name"], resource["configs"]
    duplicate_config_names(configs)
    new_config, nulls = split_null_values(configs)
    if nulls:
        raise ConfigApiError(Errors.INVALID_REQUEST, f"Null value not supported for : {','.join(nulls)}")
    kind = ResourceType.of(type_id)
    if kind == ResourceType.TOPIC:
        alter_topic_config(ctx.services, type_id, name, new_config, validate_only)
    elif kind == ResourceType.BROKER:
        check_broker_resource(name, ctx.services.broker_id)
        refuse_broker_changes(resource_description(type_id, name), [c["name"] for c in configs])
    else:
        raise ConfigApiError(Errors.INVALID_REQUEST,
                             f"AlterConfigs is only supported for topics and brokers, but resource type is {kind.name}")
