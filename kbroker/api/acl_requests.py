"""What the ACL APIs (DescribeAcls 29, CreateAcls 30, DeleteAcls 31) share while kbroker has no
authorizer: Kafka's answers for a broker without one, and the checks Kafka makes when it parses
these requests (DescribeAclsRequest, CreateAclsRequest and DeleteAclsRequest in clients/), which
close the connection rather than answer, as any request Kafka cannot build does.
"""

from __future__ import annotations

from kbroker.api.handlers import CloseConnection

# Kafka's messages without an authorizer (AclApis): DescribeAcls has its own wording.
NO_AUTHORIZER_ON_BROKER = "No Authorizer is configured on the broker"
NO_AUTHORIZER = "No Authorizer is configured."

# ResourceType, PatternType, AclOperation and AclPermissionType all give UNKNOWN the code 0.
UNKNOWN = 0


def check_acl_codes(*codes: int) -> None:
    """Kafka refuses to parse a request naming an UNKNOWN resource type, pattern type, operation
    or permission type (an IllegalArgumentException while building the request). Kafka's other
    parse-time check, v0's pattern type, cannot fail here: v0 carries none, so it reads as LITERAL."""
    if UNKNOWN in codes:
        raise CloseConnection

