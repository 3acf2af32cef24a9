"""RequestContext: what a handler knows about the request besides its body.

Plain data handed to every handler: the decoded request header, the connection it came on
(peer address, listener name), the principal it is authorized as (ANONYMOUS until TLS or SASL
establish another) and the broker's services (BrokerServices, built once at
start-up: never the server). Handlers must not reach the socket through it: they return a
response dict and the network layer writes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kbroker.protocol.headers import RequestHeader
from kbroker.security.principal import ANONYMOUS, KafkaPrincipal

if TYPE_CHECKING:
    from kbroker.api.broker_services import BrokerServices
    from kbroker.security.session import Session


@dataclass(slots=True)
class RequestContext:
    """One request as its handler sees it: the header, the services, and who sent it on which listener."""

    header: RequestHeader
    services: BrokerServices
    peer: str
    listener_name: str
    principal: KafkaPrincipal = ANONYMOUS
    session: Session | None = None  # the connection's security state (SASL handlers use it)

    @property
    def api_version(self) -> int:
        return self.header.api_version

    @property
    def client_id(self) -> str | None:
        return self.header.client_id

    def extra(self) -> dict[str, Any]:
        return {"client_id": self.header.client_id, "peer": self.peer}
