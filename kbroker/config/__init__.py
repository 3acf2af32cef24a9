"""Broker settings under their Kafka names, with Kafka 3.x's (ZooKeeper mode) types, defaults and checks.

The package, in the order its modules build on each other:
- `value_types.py`: the value types (Kafka's ConfigDef.Type), parsing and rendering of their text,
  `Password`, `ConfigError`;
- `validators.py`: the validators (AtLeast, Between, OneOf, ListOf, named rules) and `check_setting`;
- `settings.py`: the settings table, `BROKER_CONFIGS` (one `ConfigKey` per broker setting: name,
  type, default, validator, importance, a one-line doc) and `TOPIC_CONFIGS` (one `TopicConfigKey`
  per topic setting with its broker synonyms), `validate_topic_config()` for CreateTopics/AlterConfigs;
- `properties.py`: Java Properties text, server.properties files, `KBROKER_*` env, `--override`;
- `endpoints.py`: listeners (`NAME://host:port`) and listener.security.protocol.map;
- `kafka_config.py`: `KafkaConfig.load()`, built-in default < `defaults` < properties file <
  `KBROKER_*` env < `--override`;
- `support.py`: the settings refused at start while kbroker lacks their feature, and those that
  have no effect here (imported from there, by the cli).

Everything is imported from here (`from kbroker.config import KafkaConfig`), as before the split.
Topic-level settings as the log reads them are kbroker/log/config.py's LogConfig.

Must not touch: any other kbroker package; each module says what else it leaves alone.
"""

from kbroker.config.endpoints import (
    SECURITY_PROTOCOLS,
    Endpoint,
    parse_endpoints,
    parse_security_protocol_map,
)
from kbroker.config.kafka_config import (
    DEFAULT_CONFIG,
    STATIC_BROKER_CONFIG,
    KafkaConfig,
)
from kbroker.config.properties import (
    ENV_PREFIX,
    env_name,
    parse_properties,
    read_properties_file,
    settings_from_env,
    settings_from_overrides,
)
from kbroker.config.settings import (
    BROKER_CONFIG_BY_NAME,
    BROKER_CONFIGS,
    DATA_DIR_DEFAULT,
    DAY_MS,
    HOUR_MS,
    MIB,
    MINUTE_MS,
    SINGLE_NODE_DEFAULTS,
    TOPIC_CONFIG_BY_NAME,
    TOPIC_CONFIGS,
    WEEK_MS,
    ConfigKey,
    Synonym,
    TopicConfigKey,
    parse_topic_config,
    validate_topic_config,
)
from kbroker.config.validators import (
    CLEANUP_POLICIES,
    COMPRESSION,
    COMPRESSION_TYPES,
    GZIP_LEVEL,
    LZ4_LEVEL,
    METADATA_VERSION,
    THROTTLED_REPLICAS,
    TIMESTAMP_TYPES,
    ZSTD_LEVEL,
    AtLeast,
    Between,
    ListOf,
    OneOf,
    Rule,
    Validator,
    is_metadata_version,
)
from kbroker.config.value_types import (
    BOOLEAN,
    CLASS,
    DOUBLE,
    DOUBLE_MAX,
    HIGH,
    INT,
    INT_MAX,
    LIST,
    LONG,
    LONG_MAX,
    LOW,
    MEDIUM,
    PASSWORD,
    SHORT,
    STRING,
    ConfigError,
    Password,
    java_double_string,
    parse_value,
    render_value,
    split_list,
)

__all__ = [
    "AtLeast",
    "BOOLEAN",
    "BROKER_CONFIGS",
    "BROKER_CONFIG_BY_NAME",
    "Between",
    "CLASS",
    "CLEANUP_POLICIES",
    "COMPRESSION",
    "COMPRESSION_TYPES",
    "ConfigError",
    "ConfigKey",
    "DATA_DIR_DEFAULT",
    "DAY_MS",
    "DEFAULT_CONFIG",
    "DOUBLE",
    "DOUBLE_MAX",
    "ENV_PREFIX",
    "Endpoint",
    "GZIP_LEVEL",
    "HIGH",
    "HOUR_MS",
    "INT",
    "INT_MAX",
    "KafkaConfig",
    "LIST",
    "LONG",
    "LONG_MAX",
    "LOW",
    "LZ4_LEVEL",
    "ListOf",
    "MEDIUM",
    "METADATA_VERSION",
    "MIB",
    "MINUTE_MS",
    "OneOf",
    "PASSWORD",
    "Password",
    "Rule",
    "SECURITY_PROTOCOLS",
    "SHORT",
    "SINGLE_NODE_DEFAULTS",
    "STATIC_BROKER_CONFIG",
    "STRING",
    "Synonym",
    "THROTTLED_REPLICAS",
    "TIMESTAMP_TYPES",
    "TOPIC_CONFIGS",
    "TOPIC_CONFIG_BY_NAME",
    "TopicConfigKey",
    "Validator",
    "WEEK_MS",
    "ZSTD_LEVEL",
    "env_name",
    "is_metadata_version",
    "java_double_string",
    "parse_endpoints",
    "parse_properties",
    "parse_security_protocol_map",
    "parse_topic_config",
    "parse_value",
    "read_properties_file",
    "render_value",
    "settings_from_env",
    "settings_from_overrides",
    "split_list",
    "validate_topic_config",
]
