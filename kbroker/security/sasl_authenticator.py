"""SaslServerAuthenticator: one connection's SASL state on a SASL listener, as Kafka keeps it.

States follow Kafka's SaslServerAuthenticator: a new connection may send ApiVersions (once) and
SaslHandshake; after SaslHandshake v1+ only SaslAuthenticate requests carry tokens, after v0 the
client sends raw size-prefixed tokens without Kafka headers (pre-KIP-152 framing). Once the
mechanism completes, the principal is `User:<authorization id>` and requests are served until the
session lifetime (`connections.max.reauth.ms`, KIP-368) ends; a client that spoke SaslAuthenticate
v1+ may re-authenticate with a new SaslHandshake on the same connection, as the same principal.

Plain logic: the api layer decodes the requests, asks this object and answers; it never sees a socket.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from typing import Protocol

from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors
from kbroker.security.principal import USER_TYPE, KafkaPrincipal
from kbroker.security.sasl import PlainServer, SaslAuthenticationError, SaslError
from kbroker.security.sasl_config import PLAIN, ListenerSaslConfig
from kbroker.security.scram import SCRAM_MECHANISMS, ScramCredential, ScramServer

log = logging.getLogger("kbroker.security")

# Kafka's KafkaChannel refuses to start re-authentication more than once a second.
MIN_REAUTH_INTERVAL_S = 1.0


class SaslState(enum.Enum):
    HANDSHAKE_OR_VERSIONS = "handshake or versions"  # a new connection
    HANDSHAKE = "handshake"  # ApiVersions was answered
    AUTHENTICATE = "authenticate"  # SaslHandshake chose the mechanism
    COMPLETE = "complete"
    FAILED = "failed"


class MechanismServer(Protocol):
    complete: bool
    authorization_id: str

    def evaluate(self, token: bytes) -> bytes: ...


CredentialLookup = Callable[[str, str], ScramCredential | None]  # (mechanism, user) -> credential


class AuthenticateResult:
    __slots__ = ("error_code", "error_message", "token", "session_lifetime_ms")

    def __init__(self, error_code: int, error_message: str | None, token: bytes = b"",
                 session_lifetime_ms: int = 0) -> None:
        self.error_code = error_code
        self.error_message = error_message
        self.token = token
        self.session_lifetime_ms = session_lifetime_ms


class SaslServerAuthenticator:
    def __init__(self, config: ListenerSaslConfig, credentials: CredentialLookup) -> None:
        self.config = config
        self.credentials = credentials
        self.state = SaslState.HANDSHAKE_OR_VERSIONS
        self.mechanism: str | None = None
        self.raw_tokens = False  # after SaslHandshake v0: tokens come without Kafka headers
        self.principal: KafkaPrincipal | None = None
        self.expires_at: float | None = None  # time.monotonic() when the session ends
        self.client_supports_reauth = False  # the client sent SaslAuthenticate v1+
        self._server: MechanismServer | None = None
        self._reauth_from: KafkaPrincipal | None = None  # the principal a re-authentication must keep
        self._reauth_started = 0.0
        self._bad_mechanism: str | None = None  # a re-authentication asked for another mechanism

    # -- what may be sent when ------------------------------------------------------------
    @property
    def exchanging(self) -> bool:
        """A mechanism was chosen and its tokens are being exchanged."""
        return self.state is SaslState.AUTHENTICATE

    @property
    def failed(self) -> bool:
        return self.state is SaslState.FAILED

    @property
    def authenticated(self) -> bool:
        return self.state == SaslState.COMPLETE

    def refusal(self, api_key: int) -> str | None:
        """Why a request of `api_key` is refused in the current state (the connection is then
        closed, as Kafka's authenticator does), or None when it may go on."""
        state = self.state
        if state == SaslState.COMPLETE:
            return None
        if state == SaslState.HANDSHAKE_OR_VERSIONS and api_key in (ApiKey.API_VERSIONS, ApiKey.SASL_HANDSHAKE):
            return None
        if state == SaslState.HANDSHAKE and api_key == ApiKey.SASL_HANDSHAKE:
            return None
        if state == SaslState.AUTHENTICATE and api_key == ApiKey.SASL_AUTHENTICATE:
            return None
        name = ApiKey(api_key).name if api_key in ApiKey._value2member_map_ else str(api_key)
        during = "SASL authentication" if state == SaslState.AUTHENTICATE else "SASL handshake"
        return f"Unexpected Kafka request of type {name} during {during}."

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at is not None and (now or time.monotonic()) >= self.expires_at

    def versions_answered(self) -> None:
        if self.state == SaslState.HANDSHAKE_OR_VERSIONS:
            self.state = SaslState.HANDSHAKE

    def begin_reauthentication(self, now: float | None = None) -> bool:
        """A SaslHandshake on an authenticated connection: Kafka (KafkaChannel) re-authenticates only
        a session that expires, and not twice within a second; False leaves the state alone (the
        handshake is then answered ILLEGAL_SASL_STATE)."""
        now = now or time.monotonic()
        if not (self.authenticated and self.expires_at is not None and self.mechanism):
            return False
        if self._reauth_started and now - self._reauth_started < MIN_REAUTH_INTERVAL_S:
            return False
        self._reauth_started = now
        self._reauth_from = self.principal
        self.state = SaslState.HANDSHAKE
        return True

    # -- the exchange ---------------------------------------------------------------------
    def handshake(self, mechanism: str, version: int) -> int:
        """SaslHandshake: NONE and the mechanism's server, or UNSUPPORTED_SASL_MECHANISM (FAILED)."""
        if mechanism not in self.config.enabled_mechanisms:
            self.state = SaslState.FAILED
            return Errors.UNSUPPORTED_SASL_MECHANISM
        if self._reauth_from is not None and mechanism != self.mechanism:
            self._bad_mechanism = (f"SASL mechanism '{mechanism}' requested by client is not supported for "
                                   f"re-authentication of mechanism '{self.mechanism}'")
        self.mechanism = mechanism
        self.raw_tokens = version == 0
        self._server = self._mechanism_server(mechanism)
        self.state = SaslState.AUTHENTICATE
        return Errors.NONE

    def _mechanism_server(self, mechanism: str) -> MechanismServer:
        if mechanism == PLAIN:
            return PlainServer(self.config.plain_users)
        scram = SCRAM_MECHANISMS[mechanism]
        return ScramServer(scram, lambda user: self.credentials(mechanism, user))

    def authenticate(self, token: bytes, version: int = 0) -> AuthenticateResult:
        """One client token: the server's answer, or SASL_AUTHENTICATION_FAILED with Kafka's
        message (the state is FAILED then, and the connection must close)."""
        server, mechanism = self._server, self.mechanism
        if self.state != SaslState.AUTHENTICATE or server is None or mechanism is None:
            self.state = SaslState.FAILED
            return AuthenticateResult(Errors.ILLEGAL_SASL_STATE, "Unexpected SaslAuthenticate request")
        if version > 0:
            self.client_supports_reauth = True
        doing = "re-authentication" if self._reauth_from is not None else "authentication"
        try:
            if self._bad_mechanism is not None:
                raise SaslAuthenticationError(self._bad_mechanism)
            answer = server.evaluate(bytes(token))
            if server.complete:
                principal = KafkaPrincipal(USER_TYPE, server.authorization_id)
                if self._reauth_from is not None and principal != self._reauth_from:
                    previous = self._reauth_from
                    raise SaslAuthenticationError(
                        f"Cannot change principals during re-authentication from {previous.principal_type}."
                        f"{previous.name}: {principal.principal_type}.{principal.name}")
        except SaslAuthenticationError as exc:
            return self._failed(str(exc))
        except SaslError as exc:  # its reason stays here: Kafka tells the client nothing of it
            log.debug("SASL %s %s failed: %s", mechanism, doing, exc)
            return self._failed(f"Authentication failed during {doing} due to invalid credentials with SASL "
                                f"mechanism {mechanism}")
        if not server.complete:
            return AuthenticateResult(Errors.NONE, None, answer)
        return AuthenticateResult(Errors.NONE, None, answer, self._complete(principal))

    def fail(self) -> None:
        """The exchange is over: the connection closes (a stray request during it, as in Kafka)."""
        self.state = SaslState.FAILED
        self._server = None

    def _failed(self, message: str) -> AuthenticateResult:
        self.fail()
        return AuthenticateResult(Errors.SASL_AUTHENTICATION_FAILED, message)

    def _complete(self, principal: KafkaPrincipal) -> int:
        """The session's lifetime in ms (0: none), as Kafka computes it without expiring credentials."""
        self.principal = principal
        self.state = SaslState.COMPLETE
        self._server = None
        self._reauth_from = None
        lifetime = max(0, self.config.reauth_ms.get(self.mechanism or "", 0))
        self.expires_at = time.monotonic() + lifetime / 1000 if lifetime > 0 else None
        return lifetime
