"""IncrementalAlterConfigs (44): operations on single settings of a resource.

- Versions: 0-1 served and advertised (flexible from v1).
- Behaviour: as in Kafka (ZkAdminManager.incrementalAlterConfigs).
  - Operations: SET (0), DELETE (1), APPEND (2) and SUBTRACT (3); APPEND/SUBTRACT work on list
    settings only (cleanup.policy, the throttled replica lists), starting from the override or
    else the built-in default, and APPEND skips items already there.
  - TOPIC: the operations apply to the stored overrides, and the result is checked and written
    as AlterConfigs does (UNKNOWN_TOPIC_OR_PARTITION, INVALID_CONFIG for unknown names,
    INVALID_REQUEST for bad values or APPEND/SUBTRACT on a non-list setting), unless
    validate_only.
  - BROKER ("" or this broker's id): DELETE of a dynamic setting is a no-op (there are none);
    SET, APPEND and SUBTRACT are refused with "Cannot update these configs dynamically".
  - BROKER_LOGGER (KIP-412): SET a logger's level (TRACE, DEBUG, INFO, WARN, ERROR, FATAL, OFF)
    or DELETE it so it follows its parent again; unknown loggers and levels are
    INVALID_REQUEST, the root logger cannot be deleted. Levels are not persisted, as in Kafka.
  - Other types: INVALID_REQUEST.
  - A resource named twice, a config named twice, a null value outside DELETE or an unknown
    operation: INVALID_REQUEST for that resource.
  - A topic needs ALTER_CONFIGS on it (TOPIC_AUTHORIZATION_FAILED), a broker or broker logger
    ALTER_CONFIGS on the cluster (CLUSTER_AUTHORIZATION_FAILED), as Kafka (api/config_helper.py).
- Gaps: no dynamic broker configs (see BROKER above).
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING

from kbroker.api.config_helper import (
    LOG_LEVELS,
    ROOT_LOGGER,
    ConfigApiError,
    ResourceType,
    alter_each_resource,
    alter_topic_config,
    check_broker_resource,
    duplicate_config_names,
    list_default,
    logger_exists,
    refuse_broker_changes,
    resource_description,
    set_logger_level,
    unset_logger_level,
)
from kbroker.api.request_context import RequestContext
from kbroker.config import BROKER_CONFIG_BY_NAME, LIST, TOPIC_CONFIG_BY_NAME, split_list
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors

if TYPE_CHECKING:
    from kbroker.protocol.message_types import (
        IncrementalAlterConfigsRequest,
        IncrementalAlterConfigsRequestAlterableConfig,
        IncrementalAlterConfigsRequestAlterConfigsResource,
        IncrementalAlterConfigsResponse,
    )

API_KEY = ApiKey.INCREMENTAL_ALTER_CONFIGS
VERSIONS = (0, 1)


class OpType(IntEnum):
    """AlterConfigOp.OpType ids."""

    SET = 0
    DELETE = 1
    APPEND = 2
    SUBTRACT = 3


async def handle(ctx: RequestContext, request: IncrementalAlterConfigsRequest) -> IncrementalAlterConfigsResponse:
    return {"throttle_time_ms": 0,
            "responses": alter_each_resource(ctx, request["resources"], request["validate_only"], _alter)}


def _alter(ctx: RequestContext, resource: IncrementalAlterConfigsRequestAlterConfigsResource,
           validate_only: bool) -> None:
    type_id, name = resource["resource_type"], resource["resource_name"]
    ops = _operations(resource["configs"])
    kind = ResourceType.of(type_id)
    if kind == ResourceType.TOPIC:
        current = dict(ctx.services.admin_manager.topic_config(name))
        for op, config_name, value in ops:
            _apply_to_topic(current, op, config_name, value)
        alter_topic_config(ctx.services, type_id, name, current, validate_only)
    elif kind == ResourceType.BROKER:
        check_broker_resource(name, ctx.services.broker_id)
        for op, config_name, _ in ops:
            if op in (OpType.APPEND, OpType.SUBTRACT):
                key = BROKER_CONFIG_BY_NAME.get(config_name)
                _require_list(op, config_name, key is not None and key.type == LIST)
        refuse_broker_changes(resource_description(type_id, name),
                              [config_name for op, config_name, _ in ops if op != OpType.DELETE])
    elif kind == ResourceType.BROKER_LOGGER:
        check_broker_resource(name, ctx.services.broker_id)
        description = resource_description(type_id, name)
        for op, logger, level in ops:
            _check_logger_op(description, op, logger, level)
        if not validate_only:
            for op, logger, level in ops:
                if op == OpType.SET:
                    set_logger_level(logger, level)
                else:
                    unset_logger_level(logger)
    else:
        raise ConfigApiError(Errors.INVALID_REQUEST,
                             f"AlterConfigs is only supported for topics and brokers, but resource type is {kind.name}")


def _operations(configs: list[IncrementalAlterConfigsRequestAlterableConfig]) -> list[tuple[OpType, str, str]]:
    """The resource's operations after the checks every resource type shares. DELETE ignores its
    value, as Kafka does: a null one becomes "", so every value is text."""
    duplicate_config_names(configs)
    ops: list[tuple[OpType, str, str]] = []
    nulls: list[str] = []
    for config in configs:
        try:
            op = OpType(config["config_operation"])
        except ValueError:
            raise ConfigApiError(Errors.INVALID_REQUEST,
                                 f"Unknown operations type {config['config_operation']}") from None
        value = config["value"]
        if value is None:
            if op != OpType.DELETE:
                nulls.append(f"{op.name}:{config['name']}")
            value = ""
        ops.append((op, config["name"], value))
    if nulls:
        raise ConfigApiError(Errors.INVALID_REQUEST, f"Null value not supported for : {','.join(nulls)}")
    return ops


def _require_list(op: OpType, name: str, is_list: bool) -> None:
    if not is_list:
        verb = "append" if op == OpType.APPEND else "subtract"
        raise ConfigApiError(Errors.INVALID_REQUEST, f"Config value {verb} is not allowed for config key: {name}")


def _apply_to_topic(current: dict[str, str], op: OpType, name: str, value: str) -> None:
    if op == OpType.SET:
        current[name] = value
    elif op == OpType.DELETE:
        current.pop(name, None)
    else:
        key = TOPIC_CONFIG_BY_NAME.get(name)
        if key is None:
            raise ConfigApiError(Errors.INVALID_CONFIG, f"Unknown topic config name: {name}")
        _require_list(op, name, key.type == LIST)
        old = split_list(current[name]) if name in current else list_default(name)
        given = split_list(value)
        if op == OpType.APPEND:
            new = old + [item for item in given if item not in old]
        else:
            new = [item for item in old if item not in given]
        current[name] = ",".join(new)


def _check_logger_op(description: str, op: OpType, logger: str, level: str) -> None:
    if op in (OpType.APPEND, OpType.SUBTRACT):
        raise ConfigApiError(Errors.INVALID_REQUEST,
                             f"{op.name} operation is not allowed for the BROKER_LOGGER resource")
    if not logger_exists(logger):
        raise ConfigApiError(Errors.INVALID_REQUEST,
                             f"Invalid config value for resource {description}: Logger {logger} does not exist!")
    if op == OpType.DELETE and logger == ROOT_LOGGER:
        raise ConfigApiError(Errors.INVALID_REQUEST, f"Removing the log level of the {ROOT_LOGGER} logger is not allowed")
    if op == OpType.SET and level not in LOG_LEVELS:
        raise ConfigApiError(Errors.INVALID_REQUEST,
                             f"Invalid config value for resource {description}: Cannot set the log level of "
                             f"{logger} to {level} as it is not a supported log level. "
                             f"Valid log levels are {', '.join(LOG_LEVELS)}")
