"""`kbroker acls`: kafka-acls.sh's --add, --remove and --list through AdminClient.

Prints AclCommand's layout: ``Current ACLs for resource `ResourcePattern(resourceType=TOPIC,
name=t, patternType=LITERAL)`: `` then one ``(principal=User:alice, host=*, operation=READ,
permissionType=ALLOW)`` line per binding. --remove asks for confirmation unless --force.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from kbroker.tools.common import add_connection_args, admin_client, result, usage_error

# kafka-acls.sh's operation names (AclOperation in Java) to confluent-kafka's enum member names.
OPERATIONS = {"All": "ALL", "Read": "READ", "Write": "WRITE", "Create": "CREATE", "Delete": "DELETE",
              "Alter": "ALTER", "Describe": "DESCRIBE", "ClusterAction": "CLUSTER_ACTION",
              "DescribeConfigs": "DESCRIBE_CONFIGS", "AlterConfigs": "ALTER_CONFIGS",
              "IdempotentWrite": "IDEMPOTENT_WRITE"}
CLUSTER_NAME = "kafka-cluster"  # the one cluster resource's name in Kafka


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("acls", help="add, remove and list ACLs")
    add_connection_args(parser)
    action = parser.add_mutually_exclusive_group(required=True)
    for name in ("add", "remove", "list"):
        action.add_argument(f"--{name}", action="store_true")
    resource = parser.add_mutually_exclusive_group()
    resource.add_argument("--topic")
    resource.add_argument("--group")
    resource.add_argument("--transactional-id")
    resource.add_argument("--cluster", action="store_true")
    parser.add_argument("--resource-pattern-type", type=str.upper, default=None,
                        choices=("LITERAL", "PREFIXED", "MATCH", "ANY"))
    parser.add_argument("--allow-principal", action="append", default=[], metavar="User:NAME")
    parser.add_argument("--deny-principal", action="append", default=[], metavar="User:NAME")
    parser.add_argument("--allow-host", action="append", default=[])
    parser.add_argument("--deny-host", action="append", default=[])
    parser.add_argument("--operation", action="append", default=[], choices=sorted(OPERATIONS))
    parser.add_argument("--principal", help="--list: only this principal's ACLs")
    parser.add_argument("--force", action="store_true", help="--remove without asking")
    parser.set_defaults(run=run, parser=parser)


def _resource(args: argparse.Namespace) -> tuple[str, str | None]:
    if args.topic is not None:
        return "TOPIC", args.topic
    if args.group is not None:
        return "GROUP", args.group
    if args.transactional_id is not None:
        return "TRANSACTIONAL_ID", args.transactional_id
    if args.cluster:
        return "BROKER", CLUSTER_NAME
    return "ANY", None


def run(args: argparse.Namespace) -> int:
    kind, name = _resource(args)
    if (args.add or args.remove) and name is None:
        usage_error(args.parser, "--add and --remove need a resource: --topic, --group, --transactional-id or --cluster")
    if args.add and not (args.allow_principal or args.deny_principal):
        usage_error(args.parser, "--add needs --allow-principal or --deny-principal")
    if args.add and not args.operation:
        usage_error(args.parser, "--add needs --operation")
    if args.add and args.resource_pattern_type in ("MATCH", "ANY"):
        usage_error(args.parser, "--add takes --resource-pattern-type LITERAL or PREFIXED")
    admin = admin_client(args)
    if args.list:
        return _list(admin, kind, name, (args.resource_pattern_type or "ANY") if name else "ANY", args.principal)
    bindings = _bindings(args, kind, name, filtering=args.remove)
    if args.add:
        for future in admin.create_acls(bindings).values():
            result(future)
        print_bindings("Adding ACLs for resource", bindings)
        return _list(admin, kind, name, args.resource_pattern_type or "LITERAL", None)
    return _remove(admin, args, bindings)


def _bindings(args: argparse.Namespace, kind: str, name: str | None, filtering: bool) -> list[Any]:
    """One AclBinding (AclBindingFilter for --remove) per principal, host and operation asked for."""
    from confluent_kafka.admin import (
        AclBinding,
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    make: Any = AclBindingFilter if filtering else AclBinding  # a filter's None means "any"
    pattern = ResourcePatternType[args.resource_pattern_type or "LITERAL"]
    operations = [OPERATIONS[o] for o in args.operation] or ["ANY"]
    grants: list[tuple[str, str | None, list[str | None]]] = [
        *(("ALLOW", p, args.allow_host or ["*"]) for p in args.allow_principal),
        *(("DENY", p, args.deny_host or ["*"]) for p in args.deny_principal)]
    if filtering and not grants:
        grants = [("ANY", None, [None])]
    return [make(ResourceType[kind], name, pattern, principal, host, AclOperation[operation],
                 AclPermissionType[permission])
            for permission, principal, hosts in grants for host in hosts for operation in operations]


def _remove(admin: Any, args: argparse.Namespace, filters: list[Any]) -> int:
    kind, name = _resource(args)
    if not args.force:
        print(f"Are you sure you want to delete all ACLs for resource filter `{_pattern(kind, name, args)}`? (y/n)")
        if sys.stdin.readline().strip().lower() != "y":
            return 0
    for future in admin.delete_acls(filters).values():
        result(future)
    return _list(admin, kind, name, args.resource_pattern_type or "LITERAL", None)


def _list(admin: Any, kind: str, name: str | None, pattern: str, principal: str | None) -> int:
    from confluent_kafka.admin import (
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    make: Any = AclBindingFilter  # None means "any" in a filter
    query = make(ResourceType[kind], name, ResourcePatternType[pattern], principal, None,
                             AclOperation.ANY, AclPermissionType.ANY)
    bindings = result(admin.describe_acls(query))
    by_resource: dict[tuple[str, str, str], list[Any]] = {}
    for binding in bindings:
        key = (binding.restype.name, binding.name, binding.resource_pattern_type.name)
        by_resource.setdefault(key, []).append(binding)
    for (restype, resname, patterntype), found in sorted(by_resource.items()):
        print_bindings(f"Current ACLs for resource `ResourcePattern(resourceType={_kafka_type(restype)}, "
                        f"name={resname}, patternType={patterntype})`:", found, with_pattern=False)
    return 0


def _kafka_type(confluent_name: str) -> str:
    return "CLUSTER" if confluent_name == "BROKER" else confluent_name


def _pattern(kind: str, name: str | None, args: argparse.Namespace) -> str:
    return (f"ResourcePattern(resourceType={_kafka_type(kind)}, name={name}, "
            f"patternType={args.resource_pattern_type or 'LITERAL'})")


def print_bindings(title: str, bindings: list[Any], with_pattern: bool = True) -> None:
    if with_pattern and bindings:
        first = bindings[0]
        title = (f"{title} `ResourcePattern(resourceType={_kafka_type(first.restype.name)}, name={first.name}, "
                 f"patternType={first.resource_pattern_type.name})`:")
    print(f"{title} ")
    for b in bindings:
        print(f" \t(principal={b.principal}, host={b.host}, operation={b.operation.name}, "
              f"permissionType={b.permission_type.name}) ")
    print()

