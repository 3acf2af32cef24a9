"""The one answer of the APIs only the active controller serves, on any other broker.

AlterPartition, ControlledShutdown, ElectLeaders and the partition reassignment APIs are sent
to the controller; a broker that is not (or no longer) the active controller answers
NOT_CONTROLLER with Kafka's message, and the client looks the controller up again. It knows the
services' controller flag and nothing else.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from kbroker.protocol.errors import Errors

# What Kafka's Errors.NOT_CONTROLLER says; responses without an error message field ignore it.
NOT_CONTROLLER_MESSAGE = "This is not the correct controller for this cluster."

HandleFunction = Callable[[Any, dict], Awaitable[dict]]


def controller_only(**empty_fields: Any) -> Callable[[HandleFunction], HandleFunction]:
    """Decorates a handler's `handle`: away from the active controller it answers NOT_CONTROLLER,
    with `empty_fields` (the response's lists, empty) instead of calling it."""
    refused = {"throttle_time_ms": 0, "error_code": Errors.NOT_CONTROLLER, "error_message": NOT_CONTROLLER_MESSAGE,
               **empty_fields}

    def decorate(handle: HandleFunction) -> HandleFunction:
        @functools.wraps(handle)
        async def handle_on_the_controller(ctx: Any, request: dict) -> dict:
            if not ctx.services.controller.is_active:
                return refused  # the codec only reads it: one dict serves every refusal
            return await handle(ctx, request)

        return handle_on_the_controller

    return decorate
