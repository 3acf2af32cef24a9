"""`kbroker configs`: kafka-configs.sh for topics, brokers, users, clients and ips.

Topics and brokers go through AdminClient: --describe prints Kafka's layout: `Dynamic configs for
topic T are:` then one line per setting `  name=value sensitive=false synonyms={SOURCE:name=value,
...}` (with --all, every setting and `All configs for ...`); --alter applies
--add-config/--delete-config with IncrementalAlterConfigs and prints `Completed updating config
for topic T.`

Users and clients (`--entity-type users [--entity-type clients]`, each with --entity-name or
--entity-default, in command-line order) are kafka-configs.sh's quota and SCRAM commands: quotas
(producer_byte_rate, consumer_byte_rate, request_percentage, controller_mutation_rate) through
Describe/AlterClientQuotas (kbroker's codec, tools/wire.py: confluent-kafka has no API for them),
SCRAM credentials (`SCRAM-SHA-256=[iterations=8192,password=secret]`) through AdminClient's
Describe/AlterUserScramCredentials. --describe prints `Quota configs for user-principal 'alice'
are producer_byte_rate=1024.0` and `SCRAM credential configs for user-principal 'alice' are
SCRAM-SHA-256=iterations=8192`, as Kafka's tool does.

IPs (`--entity-type ips`, an address or resolvable host, or --entity-default) hold
connection_creation_rate alone, through the same APIs: `Quota configs for ip '10.0.0.1' are
connection_creation_rate=10.0`.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from kbroker.tools.common import (
    ToolError,
    add_connection_args,
    add_output_arg,
    admin_client,
    client_config,
    print_json,
    result,
)

ENTITY_TYPES = {"topics": "topic", "brokers": "broker", "users": "user", "clients": "client", "ips": "ip"}
# kafka-configs' names -> ClientQuotaEntity's
QUOTA_ENTITY_TYPES = {"users": "user", "clients": "client-id", "ips": "ip"}
IP_QUOTA_KEYS = ("connection_creation_rate",)
QUOTA_KEYS = ("producer_byte_rate", "consumer_byte_rate", "request_percentage", "controller_mutation_rate")
SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
DEFAULT_SCRAM_ITERATIONS = 4096  # kafka-configs' DefaultScramIterations
_SCRAM_VALUE = re.compile(r"(?:iterations=(-?[0-9]*),)?password=(.*)", re.DOTALL)
# The sources that make a setting "dynamic" in kafka-configs.sh's sense: set on this entity.
DYNAMIC_SOURCES = ("DYNAMIC_TOPIC_CONFIG", "DYNAMIC_BROKER_CONFIG", "DYNAMIC_DEFAULT_BROKER_CONFIG")


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("configs", help="describe and alter settings of topics and brokers, "
                                   "quotas of users, clients and ips, SCRAM credentials of users")
    add_connection_args(parser)
    parser.add_argument("--entity-type", required=True, action="append", choices=sorted(ENTITY_TYPES),
                        help="users and clients may be given together (a user's quota for one client id)")
    parser.add_argument("--entity-name", action="append", dest="entity_names", default=[],
                        help="the topic's name, the broker's id, the user, the client id or the ip")
    parser.add_argument("--entity-default", action="append_const", dest="entity_names", const="",
                        help="the default user, client id or ip (in place of --entity-name)")
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
    types: list[str] = args.entity_type
    if any(t in QUOTA_ENTITY_TYPES for t in types):
        _check_quota_entities(args)
        return _alter_user_or_client(args) if args.alter else _describe_user_or_client(args)
    if len(types) != 1 or len(args.entity_names) != 1 or not args.entity_names[0]:
        args.parser.error(f"--entity-type {types[0]} takes exactly one --entity-name")
    args.entity_type, args.entity_name = types[0], args.entity_names[0]
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


# -- users and clients: quotas and SCRAM credentials ---------------------------------------------
def _check_quota_entities(args: argparse.Namespace) -> None:
    types, names = args.entity_type, args.entity_names
    if len(types) > 2 or len(set(types)) != len(types) or not set(types) <= set(QUOTA_ENTITY_TYPES) or \
            ("ips" in types and len(types) > 1):
        args.parser.error("--entity-type users and clients may be combined (once each), not with topics, brokers "
                          "or ips")
    if len(names) > len(types):
        args.parser.error("more --entity-name/--entity-default than --entity-type")
    if args.alter and len(names) != len(types):
        args.parser.error("--entity-name or --entity-default must be specified with each --entity-type for --alter")
    if types == ["ips"] and names and names[0] and _ip_address(names[0]) is None:
        raise ToolError(f"The entity name for ips must be a valid IP or resolvable host, but it is: {names[0]}")


def _ip_address(name: str) -> str | None:
    from kbroker.security.client_quota_manager import ip_entity_address  # Kafka's isValidIpEntity

    return ip_entity_address(name)


def _quota_address(args: argparse.Namespace) -> str:
    # kbroker's codec (confluent-kafka has no client quota API), over the connection the
    # --command-config describes (tools/wire.py: TLS and SASL too).
    config = client_config(args)
    return str(config["bootstrap.servers"]).split(",")[0].strip()


def _describe_user_or_client(args: argparse.Namespace) -> int:
    types, names = args.entity_type, args.entity_names
    components = []
    for index, kind in enumerate(types):
        name = names[index] if index < len(names) else None
        if name is None:
            components.append({"entity_type": QUOTA_ENTITY_TYPES[kind], "match_type": 2, "match": None})
        elif name == "":
            components.append({"entity_type": QUOTA_ENTITY_TYPES[kind], "match_type": 1, "match": None})
        else:
            components.append({"entity_type": QUOTA_ENTITY_TYPES[kind], "match_type": 0, "match": name})
    from kbroker.tools.wire import describe_client_quotas

    quotas = describe_client_quotas(_quota_address(args), components)
    scram: dict[str, Any] = {}
    if types == ["users"] and "" not in names:  # as kafka-configs: only for named or all users
        scram = _describe_scram(admin_client(args), names)
    if args.output == "json":
        print_json({"quotas": quotas, "scram_credentials": scram})
        return 0
    for entry in quotas:
        values = ", ".join(f"{key}={_java_double(value)}" for key, value in entry["values"].items())
        print(f"Quota configs for {_entity_text(entry['entity'])} are {values}")
    for user, infos in scram.items():
        if isinstance(infos, str):
            print(f"Error retrieving SCRAM credential configs for user-principal '{user}': {infos}")
        else:
            shown = ", ".join(f"{m}=iterations={i}" for m, i in infos.items())
            print(f"SCRAM credential configs for user-principal '{user}' are {shown}")
    return 0


def _entity_text(entity: dict[str, str | None]) -> str:
    parts = []
    for kind, label in (("user", "user-principal"), ("client-id", "client-id"), ("ip", "ip")):
        if kind in entity:
            parts.append(f"{label} '{entity[kind]}'" if entity[kind] is not None else f"the default {label}")
    return ", ".join(parts)


def _java_double(value: float) -> str:
    """Java's Double.toString for the values quotas hold (1024.0, 0.5, 1.0E10)."""
    if value != 0 and (abs(value) >= 1e7 or abs(value) < 1e-3):
        mantissa, exponent = f"{value:.15E}".split("E")
        mantissa = mantissa.rstrip("0")
        return f"{mantissa}0E{int(exponent)}" if mantissa.endswith(".") else f"{mantissa}E{int(exponent)}"
    return repr(float(value))


def _describe_scram(admin: Any, users: list[str]) -> dict[str, Any]:
    """user -> {mechanism: iterations}, or the error text for that user."""
    futures = admin.describe_user_scram_credentials(users or None)
    descriptions: dict[str, Any] = {}
    if not users:
        for user, description in result(futures).items():
            descriptions[user] = {i.mechanism.name.replace("_", "-"): i.iterations
                                  for i in description.scram_credential_infos}
        return descriptions
    for user, future in futures.items():
        try:
            description = result(future)
        except ToolError as exc:
            if "RESOURCE_NOT_FOUND" not in str(exc):  # no credentials: Kafka's admin client leaves the user out
                descriptions[user] = str(exc).rstrip("\x01")
            continue
        descriptions[user] = {i.mechanism.name.replace("_", "-"): i.iterations for i in description.scram_credential_infos}
    return descriptions


def _alter_user_or_client(args: argparse.Namespace) -> int:
    types, names = args.entity_type, args.entity_names
    additions: dict[str, str] = {}
    for text in args.add_config:
        additions.update(split_config_list(text))
    deletions = [name.strip() for text in args.delete_config for name in text.split(",") if name.strip()]
    keys = [*additions, *deletions]
    if types == ["ips"]:
        unexpected = [k for k in keys if k not in IP_QUOTA_KEYS]
        if unexpected:
            raise ToolError(f"Only connection quota configs can be added for 'ips' using --bootstrap-server. "
                            f"Unexpected config names: {','.join(unexpected)}")
    unknown = [] if types == ["ips"] else [k for k in keys if k not in QUOTA_KEYS and k not in SCRAM_MECHANISMS]
    scram_keys = [k for k in keys if k in SCRAM_MECHANISMS]
    if types != ["users"] and (scram_keys or unknown):
        raise ToolError(f"Only quota configs can be added or deleted for 'clients' using --bootstrap-server. "
                        f"Unexpected config names: {', '.join(scram_keys + unknown)}")
    if unknown:
        raise ToolError(f"Only quota and SCRAM credential configs can be added or deleted for 'users' using "
                        f"--bootstrap-server. Unexpected config names: {', '.join(unknown)}")
    if scram_keys and len(scram_keys) != len(keys):
        raise ToolError("Cannot alter both quota and SCRAM credential configs simultaneously for 'users' "
                        "using --bootstrap-server.")
    if scram_keys:
        if not names[0]:
            raise ToolError("The use of --entity-default or --user-defaults is not allowed with User SCRAM "
                            "Credentials using --bootstrap-server.")
        _alter_scram(admin_client(args), names[0], additions, deletions)
    else:
        _alter_quotas(args, additions, deletions)
    if names[0]:
        print(f"Completed updating config for {ENTITY_TYPES[types[0]]} {names[0]}.")
    else:
        print(f"Completed updating default config for {types[0]} in the cluster.")
    return 0


def _alter_quotas(args: argparse.Namespace, additions: dict[str, str], deletions: list[str]) -> None:
    from kbroker.tools.wire import alter_client_quotas, describe_client_quotas

    address = _quota_address(args)
    entity = {QUOTA_ENTITY_TYPES[t]: (n or None) for t, n in zip(args.entity_type, args.entity_names, strict=True)}
    ops = []
    for key, text in additions.items():
        try:
            value = float(text)
        except ValueError:
            raise ToolError(f"Cannot parse quota configuration value for {key}: {text}") from None
        ops.append({"key": key, "value": value, "remove": False})
    if deletions:  # kafka-configs refuses to delete what the entity does not have
        components = [{"entity_type": t, "match_type": 0 if n else 1, "match": n} for t, n in entity.items()]
        current = describe_client_quotas(address, components)
        held = current[0]["values"] if current else {}
        missing = [k for k in deletions if k not in held]
        if missing:
            raise ToolError(f"Invalid config(s): {','.join(missing)}")
    ops += [{"key": key, "value": 0.0, "remove": True} for key in deletions]
    alter_client_quotas(address, entity, ops)


def _alter_scram(admin: Any, user: str, additions: dict[str, str], deletions: list[str]) -> None:
    from confluent_kafka.admin import (
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialDeletion,
        UserScramCredentialUpsertion,
    )

    changes: list[Any] = [UserScramCredentialDeletion(user, ScramMechanism[m.replace("-", "_")]) for m in deletions]
    for mechanism, text in additions.items():
        match = _SCRAM_VALUE.fullmatch(text)
        if match is None:
            raise ToolError(f"Invalid credential property {mechanism}={text}")
        iterations = int(match.group(1)) if match.group(1) not in (None, "", "-1") else DEFAULT_SCRAM_ITERATIONS
        if iterations < DEFAULT_SCRAM_ITERATIONS:
            raise ToolError(f"Iterations {iterations} is less than the minimum {DEFAULT_SCRAM_ITERATIONS} "
                            f"required for {mechanism}")
        info = ScramCredentialInfo(ScramMechanism[mechanism.replace("-", "_")], iterations)
        changes.append(UserScramCredentialUpsertion(user, info, match.group(2).encode()))
    for future in admin.alter_user_scram_credentials(changes).values():
        result(future)
