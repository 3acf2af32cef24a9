"""DescribeConfigs (32): settings per resource, as Kafka's ConfigHelper answers.

- Versions: 0-4 served and advertised (flexible from v4).
- Behaviour:
  - TOPIC: every topic setting with its override (DYNAMIC_TOPIC_CONFIG) or broker default; an
    illegal name gets INVALID_TOPIC_EXCEPTION, a missing topic UNKNOWN_TOPIC_OR_PARTITION.
  - BROKER: this broker's id gives all its settings (all read-only: kbroker has no dynamic
    broker configs); "" asks for the cluster-wide dynamic defaults, of which there are none, so
    the list is empty; another id or a non-number gets INVALID_REQUEST.
  - BROKER_LOGGER: this broker's id gives the root logger and every logger with its level.
  - CLIENT_METRICS, GROUP: INVALID_REQUEST per resource (not served). Any other type fails the
    whole request with INVALID_REQUEST, as Kafka's authorization step does.
  - configuration_keys filters (null or empty: all); synonyms from v1 when asked;
    documentation and config types from v3; v0 reports is_default instead of the source.
  - A topic needs DESCRIBE_CONFIGS on it (TOPIC_AUTHORIZATION_FAILED), a broker or broker logger
    DESCRIBE_CONFIGS on the cluster (CLUSTER_AUTHORIZATION_FAILED), as Kafka (api/auth_helper.py).
- Gaps: CLIENT_METRICS and GROUP resources are not served; no dynamic broker configs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.api.auth_helper import AclOperation
from kbroker.api.config_helper import (
    ConfigApiError,
    ConfigEntry,
    ResourceType,
    broker_config_entries,
    broker_id_of,
    check_authorized,
    logger_entries,
    topic_config_entries,
)
from kbroker.api.request_context import RequestContext
from kbroker.metadata.topic_names import topic_name_error
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors

if TYPE_CHECKING:
    from kbroker.protocol.message_types import (
        DescribeConfigsRequest,
        DescribeConfigsRequestDescribeConfigsResource,
        DescribeConfigsResponse,
        DescribeConfigsResponseDescribeConfigsResourceResult,
        DescribeConfigsResponseDescribeConfigsResult,
    )

API_KEY = ApiKey.DESCRIBE_CONFIGS
VERSIONS = (0, 4)

# The types Kafka's request handling recognises; others fail the request as a whole.
_KNOWN_TYPES = (ResourceType.TOPIC, ResourceType.BROKER, ResourceType.BROKER_LOGGER,
                ResourceType.CLIENT_METRICS, ResourceType.GROUP)


async def handle(ctx: RequestContext, request: DescribeConfigsRequest) -> DescribeConfigsResponse:
    resources = request["resources"]
    unexpected = next((r for r in resources if ResourceType.of(r["resource_type"]) not in _KNOWN_TYPES), None)
    if unexpected is not None:
        message = (f"Unexpected resource type {ResourceType.of(unexpected['resource_type']).name} "
                   f"for resource {unexpected['resource_name']}")
        return {"throttle_time_ms": 0,
                "results": [_failed(r, ConfigApiError(Errors.INVALID_REQUEST, message)) for r in resources]}
    return {"throttle_time_ms": 0, "results": [_describe(ctx, r, request) for r in resources]}


def _describe(ctx: RequestContext, resource: DescribeConfigsRequestDescribeConfigsResource,
              request: DescribeConfigsRequest) -> DescribeConfigsResponseDescribeConfigsResult:
    try:
        check_authorized(ctx, resource["resource_type"], resource["resource_name"], AclOperation.DESCRIBE_CONFIGS)
        entries = _entries(ctx, resource, request)
    except ConfigApiError as exc:
        return _failed(resource, exc)
    return {"error_code": 0, "error_message": "", "resource_type": resource["resource_type"],
            "resource_name": resource["resource_name"], "configs": [_config(e) for e in entries]}


def _entries(ctx: RequestContext, resource: DescribeConfigsRequestDescribeConfigsResource,
             request: DescribeConfigsRequest) -> list[ConfigEntry]:
    kind, name = ResourceType.of(resource["resource_type"]), resource["resource_name"]
    keys = resource["configuration_keys"]
    synonyms, documentation = request["include_synonyms"], request["include_documentation"]
    services = ctx.services
    if kind == ResourceType.TOPIC:
        error = topic_name_error(name)
        if error is not None:
            raise ConfigApiError(Errors.INVALID_TOPIC_EXCEPTION, error)
        if services.metadata_cache.topic(name) is None:
            raise ConfigApiError(Errors.UNKNOWN_TOPIC_OR_PARTITION, None)
        overrides = services.admin_manager.topic_config(name)
        return topic_config_entries(services.config, overrides, keys, synonyms, documentation)
    if kind == ResourceType.BROKER:
        if not name:
            return []  # cluster-wide dynamic defaults: kbroker has none
        if broker_id_of(name) != services.broker_id:
            raise ConfigApiError(Errors.INVALID_REQUEST, f"Unexpected broker id, expected {services.broker_id} "
                                                         f"or empty string, but received {name}")
        return broker_config_entries(services.config, keys, synonyms, documentation)
    if kind == ResourceType.BROKER_LOGGER:
        if not name:
            raise ConfigApiError(Errors.INVALID_REQUEST, "Broker id must not be empty")
        if broker_id_of(name) != services.broker_id:
            raise ConfigApiError(Errors.INVALID_REQUEST,
                                 f"Unexpected broker id, expected {services.broker_id} but received {name}")
        return logger_entries(keys)
    raise ConfigApiError(Errors.INVALID_REQUEST, f"Unsupported resource type: {kind.name}")


def _failed(resource: DescribeConfigsRequestDescribeConfigsResource,
            error: ConfigApiError) -> DescribeConfigsResponseDescribeConfigsResult:
    # Kafka's unknown-topic result sets no message: the field's default, "" (never null here).
    message = error.message if error.message is not None else ""
    return {"error_code": error.code, "error_message": message, "resource_type": resource["resource_type"],
            "resource_name": resource["resource_name"], "configs": []}


def _config(entry: ConfigEntry) -> DescribeConfigsResponseDescribeConfigsResourceResult:
    return {
        "name": entry.name,
        "value": entry.value,
        "read_only": entry.read_only,
        "config_source": entry.source,
        "is_default": entry.is_default,
        "is_sensitive": entry.is_sensitive,
        "synonyms": [{"name": n, "value": v, "source": s} for n, v, s in entry.synonyms],
        "config_type": entry.config_type,
        "documentation": entry.documentation,
    }
