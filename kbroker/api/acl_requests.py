"""What the ACL APIs (DescribeAcls 29, CreateAcls 30, DeleteAcls 31) share: the request fields
as the authorizer's plain data (kbroker/security/acl.py) and back, Kafka's answers for a broker
without an authorizer, and the checks Kafka makes when it parses these requests
(DescribeAclsRequest, CreateAclsRequest and DeleteAclsRequest in clients/), which close the
connection rather than answer, as any request Kafka cannot build does.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING, Any, TypeVar

from kbroker.api.handlers import CloseConnection
from kbroker.security.acl import (
    AccessControlEntry,
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    PatternType,
    ResourcePattern,
    ResourceType,
    filter_only_reason,
)

if TYPE_CHECKING:
    from kbroker.protocol.message_types import (
        CreateAclsRequestAclCreation,
        DeleteAclsRequestDeleteAclsFilter,
        DescribeAclsRequest,
    )

# Kafka's messages without an authorizer (AclApis): DescribeAcls has its own wording.
NO_AUTHORIZER_ON_BROKER = "No Authorizer is configured on the broker"
NO_AUTHORIZER = "No Authorizer is configured."

# ResourceType, PatternType, AclOperation and AclPermissionType all give UNKNOWN the code 0.
UNKNOWN = 0

_E = TypeVar("_E", bound=IntEnum)


def _known(enum: type[_E], code: int) -> _E:
    """Kafka refuses to parse a request naming an UNKNOWN resource type, pattern type, operation
    or permission type, or a code it does not know (fromCode gives UNKNOWN): an
    IllegalArgumentException while building the request. Kafka's other parse-time check, v0's
    pattern type, cannot fail here: v0 carries none, so it reads as LITERAL."""
    try:
        value = enum(code)
    except ValueError:
        raise CloseConnection from None
    if value == UNKNOWN:
        raise CloseConnection
    return value


def creation_binding(creation: CreateAclsRequestAclCreation) -> AclBinding:
    """The binding to create; a value only filters may hold (ANY, MATCH) closes the connection, as
    Kafka's ResourcePattern/AccessControlEntry constructors fail the request's parsing."""
    pattern = ResourcePattern(_known(ResourceType, creation["resource_type"]), creation["resource_name"],
                              _known(PatternType, creation["resource_pattern_type"]))
    entry = AccessControlEntry(creation["principal"], creation["host"], _known(AclOperation, creation["operation"]),
                               _known(AclPermissionType, creation["permission_type"]))
    binding = AclBinding(pattern, entry)
    if filter_only_reason(binding) is not None:
        raise CloseConnection
    return binding


def binding_filter(f: DescribeAclsRequest | DeleteAclsRequestDeleteAclsFilter) -> AclBindingFilter:
    return AclBindingFilter(_known(ResourceType, f["resource_type_filter"]), f["resource_name_filter"],
                            _known(PatternType, f["pattern_type_filter"]), f["principal_filter"], f["host_filter"],
                            _known(AclOperation, f["operation"]), _known(AclPermissionType, f["permission_type"]))


def pattern_fields(pattern: ResourcePattern) -> dict[str, Any]:
    return {"resource_type": int(pattern.resource_type), "resource_name": pattern.name,
            "pattern_type": int(pattern.pattern_type)}


def entry_fields(entry: AccessControlEntry) -> dict[str, Any]:
    return {"principal": entry.principal, "host": entry.host, "operation": int(entry.operation),
            "permission_type": int(entry.permission_type)}
