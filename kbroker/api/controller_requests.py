"""The controller's requests delivered to this broker without a socket.

The active controller's own broker (always, in single-node mode) gets LeaderAndIsr,
UpdateMetadata and StopReplica from the ControllerChannelManager as plain calls. They are
applied by the same `apply` functions the inter-broker handlers use once a request from the
network has passed the controller fence, so both paths change the broker alike. Requests from
our own controller are not fenced: its epoch is the newest by construction.
It knows the handler modules and the services, not the network.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kbroker.api.broker_services import BrokerServices
from kbroker.api.handlers import leader_and_isr, stop_replica, update_metadata

# Any: each function takes its own API's request type; the channel hands over whichever it sends.
_APPLY: dict[int, Callable[[BrokerServices, Any], Any]] = {
    int(module.API_KEY): module.apply for module in (leader_and_isr, update_metadata, stop_replica)
}


def deliver_locally(services: BrokerServices, api_key: int, request: dict) -> dict | None:
    """The controller channel's local delivery: the response, or None for an API it does not send."""
    apply = _APPLY.get(api_key)
    return None if apply is None else apply(services, request)
