"""The SASL mechanisms' shared parts: their errors and the PLAIN mechanism (RFC 4616).

Kafka tells the two kinds of failure apart: a SaslAuthenticationError's message goes to the
client as is (PlainSaslServer's "Authentication failed: Invalid username or password"); any
other SaslError is answered with the generic "Authentication failed during authentication due
to invalid credentials with SASL mechanism <M>", so that nothing about a user leaks.
"""

from __future__ import annotations

import hmac


class SaslError(Exception):
    """A failed exchange whose details stay in the broker (Kafka's javax SaslException)."""


class SaslAuthenticationError(SaslError):
    """A failed exchange whose message the client is told (Kafka's SaslAuthenticationException)."""


class PlainServer:
    """PLAIN, server side: one message `authzid NUL username NUL password`, checked against the
    JAAS users (`user_<name>="<password>"`)."""

    def __init__(self, users: dict[str, str]) -> None:
        self.users = users
        self.complete = False
        self.authorization_id = ""

    def evaluate(self, token: bytes) -> bytes:
        if self.complete:
            raise SaslError("PLAIN exchange already complete")
        try:
            text = token.decode()
        except UnicodeDecodeError:
            raise SaslError("Invalid SASL/PLAIN response: not UTF-8") from None
        parts = text.split("\0")
        if len(parts) != 3:
            raise SaslError(f"Invalid SASL/PLAIN response: expected 3 tokens, got {len(parts)}")
        authzid, username, password = parts
        if not username:
            raise SaslAuthenticationError("Authentication failed: username not specified")
        if not password:
            raise SaslAuthenticationError("Authentication failed: password not specified")
        expected = self.users.get(username)
        # compare_digest either way, so an unknown user takes as long as a wrong password
        matches = hmac.compare_digest(password.encode(), (expected or "").encode())
        if expected is None or not matches:
            raise SaslAuthenticationError("Authentication failed: Invalid username or password")
        if authzid and authzid != username:
            raise SaslAuthenticationError(
                "Authentication failed: Client requested an authorization id that is different from username")
        self.authorization_id = username
        self.complete = True
        return b""


class PlainClient:
    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self.password = password
        self.complete = False

    def initial_response(self) -> bytes:
        return f"\0{self.username}\0{self.password}".encode()

    def evaluate(self, _challenge: bytes) -> bytes:
        self.complete = True
        return b""
