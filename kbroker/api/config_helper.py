"""ConfigHelper: settings as DescribeConfigs shows them, and the checks shared by the config APIs.

Kafka's ConfigHelper (describe) plus the parts of ZkAdminManager that AlterConfigs and
IncrementalAlterConfigs share:
- `topic_config_entries()` / `broker_config_entries()`: one `ConfigEntry` per setting with its
  value, source, synonyms (in Kafka's order: topic override, then the broker synonyms found in
  each layer from most to least specific, dropping any that come before the setting's own name,
  so `retention.ms` lists `log.retention.hours` only when `log.retention.ms` is set somewhere),
  type and documentation. Secrets and settings of unknown type are shown as null.
- `logger_entries()` and friends: BROKER_LOGGER resources (KIP-412) over Python's loggers, with
  log4j's level names.
- `ConfigApiError`, `resource_description()`, `broker_id_of()`, `check_topic_config()`,
  `alter_topic_config()`, `refuse_broker_changes()`: the per-resource checks and messages Kafka
  answers AlterConfigs and IncrementalAlterConfigs with.
kbroker has no dynamic broker configs: every broker setting is read-only here, and a change to one
is refused rather than pretended.
Must not touch the network, the log or the metadata store: a topic's new overrides are written
by AdminManager.alter_topic_config (the broker applies them to live logs on the notification).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

from kbroker.api import auth_helper
from kbroker.config import (
    BOOLEAN,
    BROKER_CONFIG_BY_NAME,
    CLASS,
    DEFAULT_CONFIG,
    DOUBLE,
    INT,
    LIST,
    LONG,
    PASSWORD,
    SHORT,
    STRING,
    TOPIC_CONFIG_BY_NAME,
    TOPIC_CONFIGS,
    ConfigError,
    KafkaConfig,
    parse_topic_config,
    render_value,
    validate_topic_config,
)
from kbroker.metadata.admin_zk_client import AdminError
from kbroker.protocol.errors import Errors

if TYPE_CHECKING:
    from kbroker.api.broker_services import BrokerServices
    from kbroker.api.request_context import RequestContext
    from kbroker.protocol.message_types import (
        AlterConfigsRequestAlterConfigsResource,
        AlterConfigsResponseAlterConfigsResourceResponse,
        IncrementalAlterConfigsRequestAlterConfigsResource,
    )


Synonym = tuple[str, str | None, int]  # (name, value, source)


class ResourceType(IntEnum):
    """Kafka's ConfigResource.Type ids."""

    UNKNOWN = 0
    TOPIC = 2
    BROKER = 4
    BROKER_LOGGER = 8
    CLIENT_METRICS = 16
    GROUP = 32

    @classmethod
    def of(cls, type_id: int) -> ResourceType:
        """ConfigResource.Type.forId: ids Kafka does not know become UNKNOWN."""
        try:
            return cls(type_id)
        except ValueError:
            return cls.UNKNOWN


class ConfigSource(IntEnum):
    """DescribeConfigs' ConfigSource ids."""

    UNKNOWN = 0
    DYNAMIC_TOPIC_CONFIG = 1
    DYNAMIC_BROKER_CONFIG = 2
    DYNAMIC_DEFAULT_BROKER_CONFIG = 3
    STATIC_BROKER_CONFIG = 4
    DEFAULT_CONFIG = 5
    DYNAMIC_BROKER_LOGGER_CONFIG = 6


# DescribeConfigs v3+ ConfigType ids; 0 (UNKNOWN) for settings whose type is not known.
CONFIG_TYPE_IDS: dict[str | None, int] = {
    BOOLEAN: 1, STRING: 2, INT: 3, SHORT: 4, LONG: 5, DOUBLE: 6, LIST: 7, CLASS: 8, PASSWORD: 9,
}  # fmt: skip
UNKNOWN_TYPE = 0


@dataclass(slots=True)
class ConfigEntry:
    name: str
    value: str | None
    source: int
    is_default: bool
    read_only: bool
    is_sensitive: bool
    synonyms: list[Synonym] = field(default_factory=list)
    config_type: int = UNKNOWN_TYPE
    documentation: str | None = None


class ConfigApiError(Exception):
    """One resource's failure: the error code and message its result carries."""

    def __init__(self, code: Errors, message: str | None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def check_authorized(ctx: RequestContext, resource_type: int, name: str, operation: auth_helper.AclOperation) -> None:
    """Kafka's config APIs: a topic needs `operation` (DESCRIBE_CONFIGS or ALTER_CONFIGS) on it
    (TOPIC_AUTHORIZATION_FAILED), a broker or broker logger on the cluster
    (CLUSTER_AUTHORIZATION_FAILED). Other types are refused later for what they are."""
    kind = ResourceType.of(resource_type)
    if kind == ResourceType.TOPIC:
        error = auth_helper.error_for(ctx, operation, auth_helper.ResourceType.TOPIC, name)
    elif kind in (ResourceType.BROKER, ResourceType.BROKER_LOGGER):
        error = auth_helper.cluster_error(ctx, operation)
    else:
        return
    if error:
        raise ConfigApiError(error, None)


def resource_description(resource_type: int, name: str | None) -> str:
    """ConfigResource.toString, which Kafka puts into its error messages."""
    return f"ConfigResource(type={ResourceType.of(resource_type).name}, name='{name}')"


def broker_id_of(name: str) -> int:
    try:
        return int(name)
    except ValueError:
        raise ConfigApiError(Errors.INVALID_REQUEST, f"Broker id must be an integer, but it is: {name}") from None


def _wanted(keys: Iterable[str] | None) -> Callable[[str], bool]:
    """DescribeConfigs' key filter: null or empty lists every setting."""
    chosen = set(keys or ())
    return chosen.__contains__ if chosen else (lambda _name: True)


# ----------------------------------------------------------------------------------------------
# Synonyms


def _broker_synonym_names(name: str) -> list[str]:
    """DynamicBrokerConfig.brokerConfigSynonyms: only unit variants of one setting (log.roll.ms and
    log.roll.hours; log.retention.ms, .minutes and .hours) are grouped, in that order."""
    topic_key = TOPIC_CONFIG_BY_NAME.get(BROKER_CONFIG_BY_NAME[name].topic_name or "")
    if topic_key is None or all(s.multiplier == 1 for s in topic_key.synonyms):
        return [name]
    return [s.broker_name for s in topic_key.synonyms]


def _layer_synonyms(config: KafkaConfig, names: list[str], sensitive: bool) -> list[Synonym]:
    """The named broker settings found in each layer, static before default, like Kafka's
    configSynonyms. A setting set statically still shows its built-in default as a second entry."""
    static: list[Synonym] = []
    default: list[Synonym] = []
    for name in names:
        key = BROKER_CONFIG_BY_NAME[name]
        if config.source(name) == DEFAULT_CONFIG:
            default_text = render_value(key.type, config.get(name))
        else:
            static.append((name, None if sensitive else config.value_string(name),
                           ConfigSource.STATIC_BROKER_CONFIG))
            default_text = render_value(key.type, key.default)
        if default_text is not None:
            default.append((name, None if sensitive else default_text, ConfigSource.DEFAULT_CONFIG))
    return static + default


def _from_own_name(synonyms: list[Synonym], name: str) -> list[Synonym]:
    """Kafka drops the synonyms listed before the setting's own name (its `dropWhile`); for a topic
    setting that name is the first broker synonym, so log.retention.hours alone is dropped."""
    for index, (synonym_name, _, _) in enumerate(synonyms):
        if synonym_name == name:
            return synonyms[index:]
    return []


def _entry(name: str, value: str | None, synonyms: list[Synonym], type_: str | None, read_only: bool,
           include_synonyms: bool, documentation: str | None) -> ConfigEntry:
    source = synonyms[0][2] if synonyms else ConfigSource.DEFAULT_CONFIG
    return ConfigEntry(
        name=name,
        value=value,
        source=int(source),
        is_default=source == ConfigSource.DEFAULT_CONFIG,
        read_only=read_only,
        is_sensitive=type_ is None or type_ == PASSWORD,  # Kafka's maybeSensitive
        synonyms=[(n, v, int(s)) for n, v, s in synonyms] if include_synonyms else [],
        config_type=CONFIG_TYPE_IDS.get(type_, UNKNOWN_TYPE),
        documentation=documentation,
    )


# ----------------------------------------------------------------------------------------------
# Topic settings


def _override_text(name: str, raw: str) -> str | None:
    """A stored override as Kafka shows it: parsed and rendered back ("compact , delete" ->
    "compact,delete"); text that no longer parses is shown as stored."""
    try:
        return render_value(TOPIC_CONFIG_BY_NAME[name].type, parse_topic_config(name, raw))
    except ConfigError:
        return raw


def topic_config_entries(config: KafkaConfig, overrides: Mapping[str, str], keys: list[str] | None = None,
                         include_synonyms: bool = False, include_documentation: bool = False) -> list[ConfigEntry]:
    """Every topic setting (or those in `keys`) for a topic with these overrides on this broker."""
    wanted = _wanted(keys)
    defaults = config.topic_defaults()
    entries = []
    for key in TOPIC_CONFIGS:
        if not wanted(key.name):
            continue
        sensitive = key.type == PASSWORD
        synonyms: list[Synonym] = []
        if key.synonyms:
            primary = key.synonyms[0].broker_name
            synonyms = _from_own_name(
                _layer_synonyms(config, _broker_synonym_names(primary), sensitive), primary)
        value: str | None
        if key.name in overrides:
            value = _override_text(key.name, overrides[key.name])
            synonyms.insert(0, (key.name, value, ConfigSource.DYNAMIC_TOPIC_CONFIG))
        else:
            value = defaults[key.name]
        entries.append(_entry(key.name, None if sensitive else value, synonyms, key.type, False,
                              include_synonyms, key.doc if include_documentation else None))
    # Overrides Kafka does not know (written by an older or newer version) are listed too, of
    # unknown type and therefore hidden, as Kafka lists a LogConfig's originals.
    for name in sorted(set(overrides) - TOPIC_CONFIG_BY_NAME.keys()):
        if wanted(name):
            entries.append(_entry(name, None, [(name, None, ConfigSource.DYNAMIC_TOPIC_CONFIG)], None, False,
                                  include_synonyms, None))
    return entries


# ----------------------------------------------------------------------------------------------
# Broker settings


def broker_config_entries(config: KafkaConfig, keys: list[str] | None = None, include_synonyms: bool = False,
                          include_documentation: bool = False) -> list[ConfigEntry]:
    """This broker's settings (or those in `keys`): every known one, then the per-listener and
    unknown settings it was started with."""
    wanted = _wanted(keys)
    entries = []
    for name, key in BROKER_CONFIG_BY_NAME.items():
        if wanted(name):
            synonyms = _from_own_name(_layer_synonyms(config, _broker_synonym_names(name), key.sensitive), name)
            entries.append(_entry(name, config.value_string(name), synonyms, key.type, True, include_synonyms,
                                  key.doc if include_documentation else None))
    for name, text in sorted(config.listener_settings.items()):
        if wanted(name):
            entries.append(_listener_entry(config, name, text, include_synonyms, include_documentation))
    for name in config.unknown_keys:
        if wanted(name):
            entries.append(_entry(name, None, [(name, None, ConfigSource.STATIC_BROKER_CONFIG)], None, True,
                                  include_synonyms, None))
    return entries


def _listener_entry(config: KafkaConfig, name: str, text: str, include_synonyms: bool,
                    include_documentation: bool) -> ConfigEntry:
    """listener.name.<listener>.<setting>: typed like <setting>, which follows it as a synonym."""
    base = name.split(".", 3)[3]
    key = BROKER_CONFIG_BY_NAME.get(base)
    type_ = key.type if key else None
    sensitive = type_ is None or type_ == PASSWORD
    synonyms: list[Synonym] = [(name, None if sensitive else text, ConfigSource.STATIC_BROKER_CONFIG)]
    if key is not None:
        synonyms += _layer_synonyms(config, [base], sensitive)
    return _entry(name, None if sensitive else text, synonyms, type_, True, include_synonyms,
                  key.doc if key and include_documentation else None)


# ----------------------------------------------------------------------------------------------
# Topic config changes (AlterConfigs and IncrementalAlterConfigs)


def check_topic_config(description: str, new_config: Mapping[str, str], config: KafkaConfig) -> None:
    """LogConfig.validate on a topic's complete new overrides: unknown names are INVALID_CONFIG,
    values that do not parse or fit are INVALID_REQUEST (Kafka's ConfigException path)."""
    unknown = [name for name in new_config if name not in TOPIC_CONFIG_BY_NAME]
    if unknown:
        raise ConfigApiError(Errors.INVALID_CONFIG, f"Unknown topic config name: {unknown[0]}")
    for name, value in new_config.items():
        reason = validate_topic_config(name, value)
        if reason is not None:
            raise ConfigApiError(Errors.INVALID_REQUEST, f"Invalid config value for resource {description}: {reason}")
    format_problem = config.unwritable_topic_message_format(new_config)
    if format_problem:
        raise ConfigApiError(Errors.INVALID_CONFIG, f"Invalid config value for resource {description}: "
                                                    f"{format_problem}")
    defaults = config.topic_defaults()

    def effective(name: str) -> Any:
        text = new_config.get(name, defaults[name])
        return None if text is None else parse_topic_config(name, text)  # None: no default either

    low, high = effective("min.compaction.lag.ms"), effective("max.compaction.lag.ms")
    if low > high:
        raise ConfigApiError(Errors.INVALID_CONFIG, f"conflict topic config setting min.compaction.lag.ms ({low}) "
                                                    f"> max.compaction.lag.ms ({high})")
    if effective("remote.storage.enable") and not config.get("remote.log.storage.system.enable"):
        raise ConfigApiError(Errors.INVALID_CONFIG, "Tiered Storage functionality is disabled in the broker. "
                                                    "Topic cannot be configured with remote log storage.")


def alter_topic_config(services: BrokerServices, resource_type: int, topic: str, new_config: dict[str, str],
                       validate_only: bool) -> None:
    """Replace a topic's overrides with `new_config` after Kafka's checks (ZkAdminManager.alterTopicConfigs)."""
    if services.metadata_cache.topic(topic) is None:
        raise ConfigApiError(Errors.UNKNOWN_TOPIC_OR_PARTITION, f"The topic '{topic}' does not exist.")
    check_topic_config(resource_description(resource_type, topic), new_config, services.config)
    if validate_only:
        return
    try:
        services.admin_manager.alter_topic_config(topic, new_config)
    except AdminError as exc:  # deleted since the check above
        raise ConfigApiError(exc.code, exc.message) from None


def check_broker_resource(name: str, broker_id: int) -> None:
    """A BROKER or BROKER_LOGGER resource to change: "" (cluster-wide) or this broker's id."""
    if name and broker_id_of(name) != broker_id:
        raise ConfigApiError(Errors.INVALID_REQUEST,
                             f"Unexpected broker id, expected {broker_id}, but received {name}")


def refuse_broker_changes(description: str, names: list[str]) -> None:
    """kbroker reads broker settings only at start-up: Kafka's answer for a non-dynamic setting."""
    if names:
        raise ConfigApiError(Errors.INVALID_REQUEST,
                             f"Invalid config value for resource {description}: Cannot update these configs "
                             f"dynamically: Set({', '.join(names)}) (kbroker reads broker settings only at "
                             "start-up)")


# A resource to alter, of AlterConfigs or of IncrementalAlterConfigs.
Resource = TypeVar("Resource", "AlterConfigsRequestAlterConfigsResource",
                   "IncrementalAlterConfigsRequestAlterConfigsResource")


def alter_each_resource(ctx: RequestContext, resources: list[Resource], validate_only: bool,
                        alter: Callable[[RequestContext, Resource, bool], None],
                        ) -> list[AlterConfigsResponseAlterConfigsResourceResponse]:
    """AlterConfigs and IncrementalAlterConfigs alike: each resource altered on its own, its error
    (a ConfigApiError) answered for it alone; a resource named twice is INVALID_REQUEST. The
    results fit both responses, whose per-resource entries have the same fields."""
    repeated = duplicate_resources(resources)
    responses: list[AlterConfigsResponseAlterConfigsResourceResponse] = []
    for resource in resources:
        error: tuple[Errors, str | None] = Errors.NONE, None
        try:
            if (resource["resource_type"], resource["resource_name"]) in repeated:
                raise ConfigApiError(Errors.INVALID_REQUEST, DUPLICATE_RESOURCE_MESSAGE)
            check_authorized(ctx, resource["resource_type"], resource["resource_name"],
                             auth_helper.AclOperation.ALTER_CONFIGS)
            alter(ctx, resource, validate_only)
        except ConfigApiError as exc:
            error = exc.code, exc.message
        responses.append({"error_code": error[0], "error_message": error[1],
                          "resource_type": resource["resource_type"], "resource_name": resource["resource_name"]})
    return responses


def duplicate_resources(resources: list[Resource]) -> set[tuple[int, str]]:
    """(type, name) pairs given more than once: Kafka answers each of them INVALID_REQUEST."""
    keys = [(r["resource_type"], r["resource_name"]) for r in resources]
    return {key for key in keys if keys.count(key) > 1}


DUPLICATE_RESOURCE_MESSAGE = "Each resource must appear at most once."


class ConfigNameValue(TypedDict):
    """What every request's config entry has (AlterConfigs, IncrementalAlterConfigs, CreateTopics)."""

    name: str
    value: str | None


def split_null_values(configs: Iterable[ConfigNameValue]) -> tuple[dict[str, str], list[str]]:
    """The settings given a value, and the names of those given null (which Kafka refuses)."""
    values: dict[str, str] = {}
    nulls: list[str] = []
    for config in configs:
        value = config["value"]
        if value is None:
            nulls.append(config["name"])
        else:
            values[config["name"]] = value
    return values, nulls


def duplicate_config_names(configs: Iterable[ConfigNameValue]) -> None:
    names = [c["name"] for c in configs]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigApiError(Errors.INVALID_REQUEST, f"Error due to duplicate config keys : {','.join(repeated)}")


def list_default(name: str) -> list[str]:
    """A LIST topic setting's built-in default, the base Kafka's APPEND/SUBTRACT start from when the
    topic has no override."""
    return list(TOPIC_CONFIG_BY_NAME[name].default)


# ----------------------------------------------------------------------------------------------
# BROKER_LOGGER: log4j's view of Python's loggers

ROOT_LOGGER = "root"
# log4j's levels, finest first, with the Python level each one sets. Python has no TRACE or OFF:
# TRACE sits below DEBUG, OFF above CRITICAL.
LOG_LEVELS: dict[str, int] = {
    "TRACE": 5, "DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARN": logging.WARNING,
    "ERROR": logging.ERROR, "FATAL": logging.CRITICAL, "OFF": logging.CRITICAL + 10,
}  # fmt: skip


def logger_exists(name: str) -> bool:
    """Whether the log4j name stands for the root logger or a Python logger created so far."""
    return name == ROOT_LOGGER or isinstance(logging.Logger.manager.loggerDict.get(name), logging.Logger)


def _python_logger(name: str) -> logging.Logger:
    """The Python logger of a log4j name that logger_exists() accepted (getLogger would create
    a logger for any other name)."""
    return logging.getLogger() if name == ROOT_LOGGER else logging.getLogger(name)


def level_name(level: int) -> str:
    """The log4j name of the finest level at or below `level`."""
    chosen = "TRACE"
    for name, value in LOG_LEVELS.items():
        if level >= value:
            chosen = name
    return chosen


def logger_entries(keys: list[str] | None = None) -> list[ConfigEntry]:
    """The root logger and every logger created so far, each with its effective level."""
    wanted = _wanted(keys)
    names = [ROOT_LOGGER] + sorted(n for n, lg in list(logging.Logger.manager.loggerDict.items())
                                   if isinstance(lg, logging.Logger))
    return [ConfigEntry(name, level_name(_python_logger(name).getEffectiveLevel()),
                        int(ConfigSource.DYNAMIC_BROKER_LOGGER_CONFIG), False, False, False)
            for name in names if wanted(name)]


def set_logger_level(name: str, level: str) -> None:
    _python_logger(name).setLevel(LOG_LEVELS[level])


def unset_logger_level(name: str) -> None:
    """The logger follows its parent's level again (log4j's setLevel(null))."""
    _python_logger(name).setLevel(logging.NOTSET)
