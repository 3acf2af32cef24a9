"""AuthHelper (Kafka's name): the one place handlers ask the authorizer.

Every question takes the RequestContext, whose principal and peer host are what Kafka's
authorizer sees. Without an authorizer (`authorizer.class.name` empty) everything is allowed and
the authorized-operations fields carry every operation the resource type supports, as Kafka
reports them then. Handlers call these instead of reaching `ctx.services.authorizer` themselves,
so each check reads the same everywhere:
- `authorize(ctx, READ, GROUP, group_id)` -> bool;
- `authorized_names(ctx, WRITE, TOPIC, topics)` -> the set of names allowed (one decision per
  distinct name, never per record or partition);
- `error_for(ctx, READ, GROUP, group_id)` -> Errors.NONE or the type's *_AUTHORIZATION_FAILED,
  and `cluster_error(ctx, ALTER)` for the cluster;
- `authorized_operations(ctx, TOPIC, name)` -> KIP-430's bit field;
- `@requires_cluster(CLUSTER_ACTION, ...)` on a handler whose whole request needs a cluster
  operation (the inter-broker and controller APIs).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from kbroker.api.request_context import RequestContext
from kbroker.network.log_limiter import source_of
from kbroker.protocol.errors import Errors
from kbroker.security.acl import CLUSTER_NAME, SUPPORTED_OPERATIONS, AclOperation, ResourceType

__all__ = ["OMITTED", "AclOperation", "ResourceType", "authorize", "authorize_by_resource_type", "authorized_names",
           "authorized_operations", "cluster_error", "error_for", "requires_cluster"]

# KIP-430's value of an authorized-operations field the request did not ask for.
OMITTED = -2147483648


def _all_supported(resource_type: ResourceType) -> int:
    return sum(1 << op for op in SUPPORTED_OPERATIONS[resource_type])


def authorize(ctx: RequestContext, operation: AclOperation, resource_type: ResourceType,
              name: str = CLUSTER_NAME) -> bool:
    authorizer = ctx.services.authorizer
    if authorizer is None:
        return True
    return authorizer.authorize(ctx.principal, source_of(ctx.peer), operation, resource_type, name)


def authorized_names(ctx: RequestContext, operation: AclOperation, resource_type: ResourceType,
                     names: Iterable[str]) -> set[str]:
    """The names among `names` the principal may perform `operation` on."""
    authorizer = ctx.services.authorizer
    if authorizer is None:
        return set(names)
    principal, host = ctx.principal, source_of(ctx.peer)
    return {name for name in names if authorizer.authorize(principal, host, operation, resource_type, name)}


# The error Kafka answers when an operation on a resource of the type is refused.
AUTHORIZATION_FAILED: dict[ResourceType, Errors] = {
    ResourceType.TOPIC: Errors.TOPIC_AUTHORIZATION_FAILED,
    ResourceType.GROUP: Errors.GROUP_AUTHORIZATION_FAILED,
    ResourceType.CLUSTER: Errors.CLUSTER_AUTHORIZATION_FAILED,
    ResourceType.TRANSACTIONAL_ID: Errors.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    ResourceType.DELEGATION_TOKEN: Errors.DELEGATION_TOKEN_AUTHORIZATION_FAILED,
}


def error_for(ctx: RequestContext, operation: AclOperation, resource_type: ResourceType,
              name: str = CLUSTER_NAME) -> Errors:
    """Errors.NONE if the principal may perform `operation` on the resource, else Kafka's
    *_AUTHORIZATION_FAILED for its type."""
    return Errors.NONE if authorize(ctx, operation, resource_type, name) else AUTHORIZATION_FAILED[resource_type]


def cluster_error(ctx: RequestContext, operation: AclOperation) -> Errors:
    """CLUSTER_AUTHORIZATION_FAILED unless the principal may perform `operation` on the cluster."""
    return error_for(ctx, operation, ResourceType.CLUSTER)


def authorize_by_resource_type(ctx: RequestContext, operation: AclOperation, resource_type: ResourceType) -> bool:
    """May the principal perform `operation` on some resource of the type (Kafka's
    authorizeByResourceType)?"""
    authorizer = ctx.services.authorizer
    if authorizer is None:
        return True
    return authorizer.authorize_by_resource_type(str(ctx.principal), source_of(ctx.peer), operation, resource_type)


def authorized_operations(ctx: RequestContext, resource_type: ResourceType, name: str = CLUSTER_NAME) -> int:
    """KIP-430's bit field for the resource: every supported operation without an authorizer."""
    authorizer = ctx.services.authorizer
    if authorizer is None:
        return _all_supported(resource_type)
    return authorizer.authorized_operations(ctx.principal, source_of(ctx.peer), resource_type, name)


Request = TypeVar("Request")
Response = TypeVar("Response")
HandleFunction = Callable[[RequestContext, Request], Awaitable[Response]]


def requires_cluster(operation: AclOperation, refusal: Callable[[Any], Any] | None = None,
                     **empty_fields: Any) -> Callable[[HandleFunction[Request, Response]],
                                                      HandleFunction[Request, Response]]:
    """Decorates a handler's `handle` whose whole request needs `operation` on the cluster (Kafka's
    authorizeClusterOperation): refused, it answers a top-level CLUSTER_AUTHORIZATION_FAILED with
    `empty_fields` (the response's lists, empty), or `refusal(request)`'s fields where Kafka's
    answer names the request's parts too, and does nothing. Put it above @controller_only: Kafka
    checks authorization first."""
    # Any: one dict answers every API decorated; missing fields take the schema defaults.
    refused: Any = {"throttle_time_ms": 0, "error_code": Errors.CLUSTER_AUTHORIZATION_FAILED,
                    "error_message": None, **empty_fields}

    def decorate(handle: HandleFunction[Request, Response]) -> HandleFunction[Request, Response]:
        @functools.wraps(handle)
        async def handle_if_authorized(ctx: RequestContext, request: Request) -> Response:
            if not authorize(ctx, operation, ResourceType.CLUSTER):
                answer: Any = refused if refusal is None else {**refused, **refusal(request)}
                return answer
            return await handle(ctx, request)

        return handle_if_authorized

    return decorate
