"""The one answer of the APIs only the active controller serves, on any other broker.

AlterPartition, ControlledShutdown, UpdateFeatures and the partition reassignment APIs are sent
to the controller; a broker that is not (or no longer) the active controller answers
NOT_CONTROLLER with Kafka's message, and the client looks the controller up again. So does a
controller whose ZooKeeper session expires (or whose connection is lost) while it serves the
request: its write's outcome is unknown and its resignation follows, as in Kafka, where the
controller's znode writes fail with ControllerMovedException. It knows the services' controller
flag and the znode store's ZooKeeperUnavailableError, nothing else.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from kbroker.metadata.znode_store import ZooKeeperUnavailableError
from kbroker.protocol.errors import Errors

if TYPE_CHECKING:
    from kbroker.api.request_context import RequestContext

Request = TypeVar("Request")
Response = TypeVar("Response")
HandleFunction = Callable[["RequestContext", Request], Awaitable[Response]]

log = logging.getLogger("kbroker.controller")


def controller_only(**empty_fields: Any) -> Callable[[HandleFunction[Request, Response]],
                                                      HandleFunction[Request, Response]]:
    """Decorates a handler's `handle`: away from the active controller it answers NOT_CONTROLLER,
    with `empty_fields` (the response's lists, empty) instead of calling it."""
    # Any: this one dict is a valid answer of every API decorated (their responses all have
    # these fields, and missing ones take the schema defaults), whichever Response it stands for.
    refused: Any = {"throttle_time_ms": 0, "error_code": Errors.NOT_CONTROLLER,
                    "error_message": Errors.NOT_CONTROLLER.message,  # ignored by versions without it
                    **empty_fields}

    def decorate(handle: HandleFunction[Request, Response]) -> HandleFunction[Request, Response]:
        @functools.wraps(handle)
        async def handle_on_the_controller(ctx: RequestContext, request: Request) -> Response:
            if not ctx.services.controller.is_active:
                return refused  # the codec only reads it: one dict serves every refusal
            try:
                return await handle(ctx, request)
            except ZooKeeperUnavailableError as lost:
                log.info("answering %s from %s with NOT_CONTROLLER: %s", handle.__module__.rpartition(".")[2],
                         ctx.peer, lost)
                return refused

        return handle_on_the_controller

    return decorate
