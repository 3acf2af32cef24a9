"""SaslAuthenticate (36): carries one SASL token each way once SaslHandshake v1+ chose a mechanism.

- Versions: 0-2 served and advertised.
- Behaviour:
  - PLAIN (users from the listener's JAAS `user_<name>` options) and SCRAM-SHA-256/512
    (credentials from /config/users): the mechanism's answer in auth_bytes; on completion the
    connection's principal becomes `User:<name>`.
  - v1+: session_lifetime_ms is connections.max.reauth.ms (0: none); past it the connection is
    closed on its next request other than SaslHandshake (KIP-368), a re-authentication resets it.
  - A failed exchange answers SASL_AUTHENTICATION_FAILED with Kafka's message (PLAIN's
    "Authentication failed: Invalid username or password", otherwise "Authentication failed
    during authentication due to invalid credentials with SASL mechanism <M>"), and the
    connection is closed after connection.failed.authentication.delay.ms. A re-authentication
    as another principal fails the same way ("Cannot change principals during re-authentication...").
  - On a non-SASL listener or after authentication: ILLEGAL_SASL_STATE, "SaslAuthenticate request
    received after successful authentication".
- Gaps: no delegation-token SCRAM logins (tokenauth extension).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.api.request_context import RequestContext
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors

if TYPE_CHECKING:
    from kbroker.protocol.message_types import SaslAuthenticateRequest, SaslAuthenticateResponse

API_KEY = ApiKey.SASL_AUTHENTICATE
VERSIONS = (0, 2)


async def handle(ctx: RequestContext, request: SaslAuthenticateRequest) -> SaslAuthenticateResponse:
    session = ctx.session
    authenticator = session.sasl if session is not None else None
    if session is None or authenticator is None or authenticator.authenticated:
        return {"error_code": Errors.ILLEGAL_SASL_STATE, "auth_bytes": b"",
                "error_message": "SaslAuthenticate request received after successful authentication"}
    result = authenticator.authenticate(request["auth_bytes"], ctx.api_version)
    if authenticator.authenticated and authenticator.principal is not None:
        session.principal = authenticator.principal
    return {"error_code": result.error_code, "error_message": result.error_message, "auth_bytes": result.token,
            "session_lifetime_ms": result.session_lifetime_ms}
