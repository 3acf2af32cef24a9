"""Session: what one connection has established about who it is.

The api layer keeps one in KafkaConnection.session (None until something is established, which
reads as ANONYMOUS): a TLS client certificate or a completed SASL exchange sets the principal.
Requests are authorized as `Session.principal`. On a SASL listener `sasl` holds the
connection's SaslServerAuthenticator: the exchange's state, its mechanism and when the session
expires (connections.max.reauth.ms).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kbroker.security.principal import ANONYMOUS, KafkaPrincipal

if TYPE_CHECKING:
    from kbroker.security.sasl_authenticator import SaslServerAuthenticator


@dataclass(slots=True)
class Session:
    principal: KafkaPrincipal = ANONYMOUS
    sasl: SaslServerAuthenticator | None = None
