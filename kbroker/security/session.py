"""Session: what one connection has established about who it is.

The api layer keeps one in KafkaConnection.session (None until something is established, which
reads as ANONYMOUS): a TLS client certificate or a completed SASL exchange sets the principal.
Requests are authorized as `Session.principal`.
"""

from __future__ import annotations

from dataclasses import dataclass

from kbroker.security.principal import ANONYMOUS, KafkaPrincipal


@dataclass(slots=True)
class Session:
    principal: KafkaPrincipal = ANONYMOUS
