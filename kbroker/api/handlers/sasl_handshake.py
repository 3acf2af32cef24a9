"""SaslHandshake (17): chooses the SASL mechanism of a connection on a SASL listener.

- Versions: 0-1 served and advertised.
- Behaviour:
  - Before authentication (kafka_apis.py lets only ApiVersions, once, and SaslHandshake through):
    an enabled mechanism answers NONE with the listener's enabled mechanisms; v1 tokens then come
    in SaslAuthenticate requests, v0 tokens raw and size-prefixed without request headers
    (pre-KIP-152), which kafka_apis.py hands to the mechanism.
  - A mechanism not enabled answers UNSUPPORTED_SASL_MECHANISM with the enabled list; the
    connection is then closed after connection.failed.authentication.delay.ms, as Kafka does.
  - On an authenticated connection whose client spoke SaslAuthenticate v1+ it starts KIP-368
    re-authentication (the same mechanism and principal must follow), at most once a second.
  - On a non-SASL listener, or after authentication otherwise: ILLEGAL_SASL_STATE.
- Gaps: GSSAPI and OAUTHBEARER are not served (refused at start when enabled).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.api.request_context import RequestContext
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors

if TYPE_CHECKING:
    from kbroker.protocol.message_types import SaslHandshakeRequest, SaslHandshakeResponse

API_KEY = ApiKey.SASL_HANDSHAKE
VERSIONS = (0, 1)


async def handle(ctx: RequestContext, request: SaslHandshakeRequest) -> SaslHandshakeResponse:
    authenticator = ctx.session.sasl if ctx.session is not None else None
    if authenticator is None or (authenticator.authenticated and not authenticator.begin_reauthentication()):
        return {"error_code": Errors.ILLEGAL_SASL_STATE, "mechanisms": []}
    error = authenticator.handshake(request["mechanism"], ctx.api_version)
    return {"error_code": error, "mechanisms": list(authenticator.config.enabled_mechanisms)}
