"""`kbroker configs`: kafka-configs.sh for topics and brokers, through AdminClient.

--describe prints Kafka's layout: `Dynamic configs for topic T are:` then one line per setting
`  name=value sensitive=false synonyms={SOURCE:name=value, ...}` (with --all, every setting and
`All configs for ...`); --alter applies --add-config/--delete-config with
IncrementalAlterConfigs and prints `Completed updating config for topic T.`
"""

from __future__ import annotations

import argparse
from typing import Any

from kbroker.tools.common import (
    ToolError,
    add_connection_args,
    add_output_arg,
    admin_client,
    print_json,
    result,
)

ENTITY_TYPES = {"topics": "topic", "brokers": "broker"}
# The sources that make a setting "dynamic" in kafka-configs.sh's sense: set on this entity.
DYNAMIC_SOURCES = ("DYNAMIC_TOPIC_CONFIG", "DYNAMIC_BROKER_CONFIG", "DYNAMIC_DEFAULT_BROKER_CONFIG")


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("configs", help="describe and alter topic and broker settings")
    add_connection_args(parser)
    parser.add_argument("--entity-type", required=True, choices=sorted(ENTITY_TYPES))
    parser.add_argument("--entity-name", required=True, help="the topic's name or the broker's id")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--describe", action="store_true")
    action.add_argument("--alter", action="store_true")
    parser.add_argument("--all", action="store_true", help="--describe: every setting, defaults too")
    parser.add_argument("--add-config", action="append", default=[], metavar="k=v,k2=[a,b]")
    parser.add_argument("--delete-config", action="append", default=[], metavar="k,k2")
    add_output_arg(parser)
    parser.set_defaults(run=run, parser=parser)


def run(args: argparse.Namespace) -> int:
    if args.alter and not (args.add_config or args.delete_config):
        args.parser.error("--alter needs --add-config or --delete-config")
    if args.entity_type == "brokers" and not args.entity_name.isdigit():
        args.parser.error(f"invalid --entity-name {args.entity_name!r}: a broker is named by its id")
    admin = admin_client(args)
    return _alter(admin, args) if args.alter else _describe(admin, args)


def _resource(args: argparse.Namespace) -> Any:
    from confluent_kafka.admin import ConfigResource, ResourceType

    kind = ResourceType.TOPIC if args.entity_type == "topics" else ResourceType.BROKER
    return ConfigResource(kind, args.entity_name)


def _source(entry: Any) -> str:
    from confluent_kafka.admin import ConfigSource

    return ConfigSource(entry.source).name


def _describe(admin: Any, args: argparse.Namespace) -> int:
    resource = _resource(args)
    entries = result(admin.describe_configs([resource])[resource])
    shown = [entry for _, entry in sorted(entries.items()) if args.all or _source(entry) in DYNAMIC_SOURCES]
    if args.output == "json":
        print_json([{"name": e.name, "value": e.value, "source": _source(e), "sensitive": e.is_sensitive,
                     "read_only": e.is_read_only} for e in shown])
        return 0
    kind = ENTITY_TYPES[args.entity_type]
    print(f"{'All' if args.all else 'Dynamic'} configs for {kind} {args.entity_name} are:")
    for entry in shown:
        value = "null" if entry.is_sensitive or entry.value is None else entry.value
        synonyms = ", ".join(f"{_source(s)}:{s.name}={'null' if s.value is None else s.value}"
                             for s in entry.synonyms.values())
        print(f"  {entry.name}={value} sensitive={str(entry.is_sensitive).lower()} synonyms={{{synonyms}}}")
    return 0


def _alter(admin: Any, args: argparse.Namespace) -> int:
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry

    additions = {}
    for text in args.add_config:
        additions.update(split_config_list(text))
    deletions = [name.strip() for text in args.delete_config for name in text.split(",") if name.strip()]
    resource = _resource(args)
    for name, value in additions.items():
        resource.add_incremental_config(ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET))
    for name in deletions:
        resource.add_incremental_config(ConfigEntry(name, None, incremental_operation=AlterConfigOpType.DELETE))
    result(admin.incremental_alter_configs([resource])[resource])
    print(f"Completed updating config for {ENTITY_TYPES[args.entity_type]} {args.entity_name}.")
    return 0


def split_config_list(text: str) -> dict[str, str]:
    """kafka-configs.sh's `k1=v1,k2=[a,b]`: commas inside square brackets belong to the value."""
    items, depth, current = [], 0, ""
    for char in text:
        if char == "," and depth == 0:
            items.append(current)
            current = ""
            continue
        depth += (char == "[") - (char == "]")
        current += char
    items.append(current)
    parsed = {}
    for item in filter(None, (i.strip() for i in items)):
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ToolError(f"invalid --add-config entry {item!r}: expected key=value")
        if value.startswith("[") and value.endswith("]"):
            value = value[1:-1]
        parsed[name] = value
    return parsed
