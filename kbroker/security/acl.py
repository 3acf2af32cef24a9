"""ACL vocabulary as Kafka has it (org.apache.kafka.common.acl and .resource): resource types,
pattern types, operations and permission types with their wire codes, resource patterns, access
control entries, bindings and the filters DescribeAcls and DeleteAcls match with.

Plain frozen data (NamedTuples: they cost a third of a dataclass to define, at every start), hashable,
so the authorizer can index and cache by it. The names Kafka writes
into ZooKeeper ("Topic", "Read", "Allow", "ClusterAction") are `zk_name`s; parsing accepts any
case and Kafka's UPPER_SNAKE names too, as Kafka's `fromString` does.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple

WILDCARD_RESOURCE = "*"  # a LITERAL pattern named * matches every resource of its type
WILDCARD_PRINCIPAL = "User:*"
WILDCARD_HOST = "*"
CLUSTER_NAME = "kafka-cluster"  # the one name of the CLUSTER resource


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


class _Named(IntEnum):
    @property
    def zk_name(self) -> str:
        """Kafka's name in ZooKeeper and its tools: TRANSACTIONAL_ID -> TransactionalId."""
        return _pascal(self.name)

    @classmethod
    def parse(cls, text: str):  # noqa: ANN206 (returns the subclass)
        """Kafka's fromString: any case, with or without underscores; ValueError otherwise."""
        wanted = text.replace("_", "").upper()
        for member in cls:
            if member.name.replace("_", "") == wanted:
                return member
        raise ValueError(f"unknown {cls.__name__}: {text!r}")


class ResourceType(_Named):
    UNKNOWN = 0
    ANY = 1
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5
    DELEGATION_TOKEN = 6
    USER = 7


class PatternType(_Named):
    UNKNOWN = 0
    ANY = 1
    MATCH = 2
    LITERAL = 3
    PREFIXED = 4


class AclOperation(_Named):
    UNKNOWN = 0
    ANY = 1
    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8
    CLUSTER_ACTION = 9
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11
    IDEMPOTENT_WRITE = 12
    CREATE_TOKENS = 13
    DESCRIBE_TOKENS = 14


class AclPermissionType(_Named):
    UNKNOWN = 0
    ANY = 1
    DENY = 2
    ALLOW = 3


# An ALLOW of any of these grants the key (Kafka's AclAuthorizer: DESCRIBE is implied by
# READ, WRITE, DELETE and ALTER; DESCRIBE_CONFIGS by ALTER_CONFIGS); ALL grants everything.
IMPLIED_BY: dict[AclOperation, frozenset[AclOperation]] = {
    AclOperation.DESCRIBE: frozenset({AclOperation.DESCRIBE, AclOperation.READ, AclOperation.WRITE,
                                      AclOperation.DELETE, AclOperation.ALTER}),
    AclOperation.DESCRIBE_CONFIGS: frozenset({AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS}),
}

_O = AclOperation
# The operations each resource type supports (Kafka's AclEntry.supportedOperations), which the
# `*_authorized_operations` bit fields (KIP-430) are computed over.
SUPPORTED_OPERATIONS: dict[ResourceType, tuple[AclOperation, ...]] = {
    ResourceType.TOPIC: (_O.READ, _O.WRITE, _O.CREATE, _O.DESCRIBE, _O.DELETE, _O.ALTER, _O.DESCRIBE_CONFIGS,
                         _O.ALTER_CONFIGS),
    ResourceType.GROUP: (_O.READ, _O.DESCRIBE, _O.DELETE),
    ResourceType.CLUSTER: (_O.CREATE, _O.CLUSTER_ACTION, _O.DESCRIBE_CONFIGS, _O.ALTER_CONFIGS, _O.IDEMPOTENT_WRITE,
                           _O.ALTER, _O.DESCRIBE),
    ResourceType.TRANSACTIONAL_ID: (_O.DESCRIBE, _O.WRITE),
    ResourceType.DELEGATION_TOKEN: (_O.DESCRIBE,),
    ResourceType.USER: (_O.CREATE_TOKENS, _O.DESCRIBE_TOKENS),
}


class ResourcePattern(NamedTuple):
    resource_type: ResourceType
    name: str
    pattern_type: PatternType


class AccessControlEntry(NamedTuple):
    principal: str  # "User:alice", or User:* for every principal
    host: str  # an address, or * for every host
    operation: AclOperation
    permission_type: AclPermissionType


class AclBinding(NamedTuple):
    pattern: ResourcePattern
    entry: AccessControlEntry


class AclBindingFilter(NamedTuple):
    """DescribeAcls' and DeleteAcls' filter: None names match anything, ANY types any type."""
    resource_type: ResourceType
    name: str | None
    pattern_type: PatternType
    principal: str | None
    host: str | None
    operation: AclOperation
    permission_type: AclPermissionType

    def matches_pattern(self, pattern: ResourcePattern) -> bool:
        """Kafka's ResourcePatternFilter.matches (MATCH: every pattern that would apply to the
        resource named; ANY: any pattern type with that exact name)."""
        if self.resource_type not in (ResourceType.ANY, pattern.resource_type):
            return False
        if self.pattern_type == PatternType.MATCH:
            if self.name is None:
                return True
            if pattern.pattern_type == PatternType.LITERAL:
                return pattern.name in (self.name, WILDCARD_RESOURCE)
            return pattern.pattern_type == PatternType.PREFIXED and self.name.startswith(pattern.name)
        if self.pattern_type not in (PatternType.ANY, pattern.pattern_type):
            return False
        return self.name is None or self.name == pattern.name

    def matches_entry(self, entry: AccessControlEntry) -> bool:
        return ((self.principal is None or self.principal == entry.principal)
                and (self.host is None or self.host == entry.host)
                and self.operation in (AclOperation.ANY, entry.operation)
                and self.permission_type in (AclPermissionType.ANY, entry.permission_type))

    def matches(self, binding: AclBinding) -> bool:
        return self.matches_pattern(binding.pattern) and self.matches_entry(binding.entry)

    def invalid_reason(self) -> str | None:
        """Why Kafka would refuse this filter (AclBindingFilter.findIndefiniteField): an UNKNOWN
        anywhere; None when it is fine."""
        for label, value in (("resourceType", self.resource_type), ("patternType", self.pattern_type),
                             ("operation", self.operation), ("permissionType", self.permission_type)):
            if value == 0:
                return f"Unknown {label}"
        return None


def filter_only_reason(binding: AclBinding) -> str | None:
    """What Kafka's ResourcePattern and AccessControlEntry constructors refuse (ANY as a resource
    type, MATCH or ANY as a pattern type, ANY as an operation or permission: values only filters
    may hold), in their words; None when the binding can exist."""
    pattern, entry = binding.pattern, binding.entry
    if pattern.resource_type == ResourceType.ANY:
        return "resourceType must not be ANY"
    if pattern.pattern_type in (PatternType.MATCH, PatternType.ANY):
        return f"patternType must not be {pattern.pattern_type.name}"
    if entry.operation == AclOperation.ANY:
        return "operation must not be ANY"
    if entry.permission_type == AclPermissionType.ANY:
        return "permissionType must not be ANY"
    return None


def binding_invalid_reason(binding: AclBinding) -> str | None:
    """Why Kafka refuses to create this (well-formed) binding, in its words (AclApis, then
    AclAuthorizer's validateAclBinding and AclEntry's principal parsing); None when it is fine."""
    pattern, entry = binding.pattern, binding.entry
    if pattern.resource_type == ResourceType.CLUSTER and pattern.name != CLUSTER_NAME:
        return f"The only valid name for the CLUSTER resource is {CLUSTER_NAME}"
    if not pattern.name:
        return "Invalid empty resource name"
    if "/" in pattern.name:  # it would name a znode below the resource's (Kafka: validateAclBinding)
        return "Failed to create ACL"
    principal_type, sep, _ = entry.principal.partition(":")
    if not sep or not principal_type:
        return f"Could not parse principal from `{entry.principal}` (no colon is present separating the " \
               "principal type from the principal name)"
    return None
