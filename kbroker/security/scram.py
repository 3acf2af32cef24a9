"""SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka implements them.

Credentials are kept as Kafka keeps them in `/config/users/<user>`:
`salt=<base64>,stored_key=<base64>,server_key=<base64>,iterations=<n>` (ScramCredentialUtils).
ScramServer is the server side of one exchange (client-first, server-first, client-final,
server-final); ScramClient is the client side the broker uses towards other brokers. hashlib's
pbkdf2_hmac and hmac do the cryptography.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from dataclasses import dataclass

from kbroker.security.sasl import SaslAuthenticationError, SaslError

MIN_ITERATIONS = 4096  # ScramMechanism.minIterations, both mechanisms
MAX_ITERATIONS = 16384  # AlterUserScramCredentials refuses more ("Too many iterations")
NONCE_BYTES = 24


@dataclass(frozen=True)
class ScramMechanism:
    mechanism_name: str
    hash_name: str
    type_code: int  # the `mechanism` int8 of Describe/AlterUserScramCredentials

    def hmac(self, key: bytes, data: bytes) -> bytes:
        return hmac.new(key, data, self.hash_name).digest()

    def hash(self, data: bytes) -> bytes:
        return hashlib.new(self.hash_name, data).digest()

    def salted_password(self, password: str, salt: bytes, iterations: int) -> bytes:
        return hashlib.pbkdf2_hmac(self.hash_name, password.encode(), salt, iterations)


SCRAM_SHA_256 = ScramMechanism("SCRAM-SHA-256", "sha256", 1)
SCRAM_SHA_512 = ScramMechanism("SCRAM-SHA-512", "sha512", 2)
SCRAM_MECHANISMS = {m.mechanism_name: m for m in (SCRAM_SHA_256, SCRAM_SHA_512)}
SCRAM_BY_TYPE = {m.type_code: m for m in (SCRAM_SHA_256, SCRAM_SHA_512)}


@dataclass(frozen=True)
class ScramCredential:
    salt: bytes
    stored_key: bytes
    server_key: bytes
    iterations: int

    def to_config_value(self) -> str:
        """Kafka's string form in /config/users/<user> (ScramCredentialUtils.credentialToString)."""
        b64 = base64.b64encode
        return (f"salt={b64(self.salt).decode()},stored_key={b64(self.stored_key).decode()},"
                f"server_key={b64(self.server_key).decode()},iterations={self.iterations}")

    @classmethod
    def from_config_value(cls, text: str) -> ScramCredential:
        """ValueError when it is not Kafka's form."""
        fields = dict(item.split("=", 1) for item in text.split(",") if "=" in item)
        try:
            return cls(base64.b64decode(fields["salt"], validate=True),
                       base64.b64decode(fields["stored_key"], validate=True),
                       base64.b64decode(fields["server_key"], validate=True), int(fields["iterations"]))
        except (KeyError, ValueError) as exc:
            raise ValueError(f"invalid SCRAM credential: {exc}") from None


def credential_from_salted_password(mechanism: ScramMechanism, salt: bytes, salted_password: bytes,
                                    iterations: int) -> ScramCredential:
    client_key = mechanism.hmac(salted_password, b"Client Key")
    server_key = mechanism.hmac(salted_password, b"Server Key")
    return ScramCredential(salt, mechanism.hash(client_key), server_key, iterations)


def credential_from_password(mechanism: ScramMechanism, password: str, iterations: int = MIN_ITERATIONS,
                             salt: bytes | None = None) -> ScramCredential:
    salt = salt if salt is not None else os.urandom(32)
    return credential_from_salted_password(mechanism, salt, mechanism.salted_password(password, salt, iterations),
                                           iterations)


_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def _nonce() -> str:
    """Letters and digits only, as Kafka's ScramFormatter.secureRandomString (130 random bits in
    base 36): librdkafka 2.0 mangles a server nonce holding '-' or '_'."""
    value = int.from_bytes(os.urandom(NONCE_BYTES), "big")
    digits = []
    while value:
        value, digit = divmod(value, 36)
        digits.append(_BASE36[digit])
    return "".join(digits) or "0"


def _decode_saslname(name: str) -> str:
    """RFC 5802 saslname: `=2C` is a comma and `=3D` an equals sign; any other `=` is malformed."""
    if re.search(r"=(?!2C|3D)", name):
        raise SaslError("Invalid username: " + name)
    return name.replace("=2C", ",").replace("=3D", "=")


def _encode_saslname(name: str) -> str:
    return name.replace("=", "=3D").replace(",", "=2C")


def _attributes(message: str) -> dict[str, str]:
    attrs: dict[str, str] = {}
    for item in message.split(","):
        key, sep, value = item.partition("=")
        if not sep or len(key) != 1:
            raise SaslError(f"Invalid SCRAM message: {message!r}")
        attrs.setdefault(key, value)
    return attrs


class ScramServer:
    """One SCRAM exchange, server side. `evaluate` takes each client message and returns the
    server's; SaslError (Kafka's generic failure) or SaslAuthenticationError (its own message)
    end the exchange. `credential_of(user)` looks the user's credential up (None: unknown)."""

    def __init__(self, mechanism: ScramMechanism, credential_of) -> None:
        self.mechanism = mechanism
        self.credential_of = credential_of
        self.complete = False
        self.authorization_id = ""
        self._state = "client-first"
        self._client_first_bare = ""
        self._server_first = ""
        self._nonce = ""
        self._credential: ScramCredential | None = None

    def evaluate(self, token: bytes) -> bytes:
        try:
            message = token.decode()
        except UnicodeDecodeError:
            raise SaslError("Invalid SCRAM message: not UTF-8") from None
        if self._state == "client-first":
            return self._client_first(message)
        if self._state == "client-final":
            return self._client_final(message)
        raise SaslError(f"Unexpected challenge in Sasl server state {self._state}")

    def _client_first(self, message: str) -> bytes:
        self._state = "failed"
        gs2, sep, rest = message.partition(",")
        authzid, sep2, bare = rest.partition(",")
        if not sep or not sep2 or gs2 not in ("n", "y") or (authzid and not authzid.startswith("a=")):
            raise SaslError("Invalid SCRAM client first message")
        attrs = _attributes(bare)
        if "n" not in attrs or "r" not in attrs or not attrs["r"]:
            raise SaslError("Invalid SCRAM client first message")
        username = _decode_saslname(attrs["n"])
        credential = self.credential_of(username) if username else None
        if credential is None:
            raise SaslError("Authentication failed: Invalid user credentials")
        if authzid and authzid[2:] != username:
            raise SaslAuthenticationError(
                "Authentication failed: Client requested an authorization id that is different from username")
        if credential.iterations < MIN_ITERATIONS:
            raise SaslError(f"Iterations {credential.iterations} is less than the minimum {MIN_ITERATIONS} "
                            f"for {self.mechanism.mechanism_name}")
        self._credential = credential
        self.authorization_id = username
        self._client_first_bare = bare
        self._nonce = attrs["r"] + _nonce()
        salt = base64.b64encode(credential.salt).decode()
        self._server_first = f"r={self._nonce},s={salt},i={credential.iterations}"
        self._state = "client-final"
        return self._server_first.encode()

    def _client_final(self, message: str) -> bytes:
        self._state = "failed"
        without_proof, sep, proof_text = message.rpartition(",p=")
        if not sep:
            raise SaslError("Invalid SCRAM client final message")
        attrs = _attributes(without_proof)
        # Kafka 3.9 accepts a nonce that ends with ours (3.8.1's fix for CVE-2024-56128 allowed
        # for librdkafka before 2.6.1, which repeats the client's part); Kafka 4 wants it equal.
        if not attrs.get("r", "").endswith(self._nonce):
            raise SaslError("Invalid client nonce in the final client message.")
        credential = self._credential
        assert credential is not None  # set by the client-first step
        try:
            proof = base64.b64decode(proof_text, validate=True)
        except ValueError:
            raise SaslError("Invalid SCRAM client final message") from None
        auth_message = f"{self._client_first_bare},{self._server_first},{without_proof}".encode()
        mech = self.mechanism
        client_signature = mech.hmac(credential.stored_key, auth_message)
        if len(proof) != len(client_signature):
            raise SaslError("Invalid client credentials")
        client_key = bytes(a ^ b for a, b in zip(proof, client_signature, strict=True))
        if not hmac.compare_digest(mech.hash(client_key), credential.stored_key):
            raise SaslError("Invalid client credentials")
        server_signature = mech.hmac(credential.server_key, auth_message)
        self._credential = None
        self._state = "complete"
        self.complete = True
        return b"v=" + base64.b64encode(server_signature)


class ScramClient:
    """The client side, for the broker's own connections to other brokers and kbroker's tools."""

    def __init__(self, mechanism: ScramMechanism, username: str, password: str) -> None:
        self.mechanism = mechanism
        self.username = username
        self.password = password
        self.complete = False
        self._nonce = _nonce()
        self._client_first_bare = f"n={_encode_saslname(username)},r={self._nonce}"
        self._server_signature = b""
        self._state = "initial"

    def initial_response(self) -> bytes:
        self._state = "server-first"
        return f"n,,{self._client_first_bare}".encode()

    def evaluate(self, challenge: bytes) -> bytes:
        message = challenge.decode()
        if self._state == "server-first":
            attrs = _attributes(message)
            nonce, salt, iterations = attrs.get("r", ""), base64.b64decode(attrs.get("s", "")), int(attrs.get("i", 0))
            if not nonce.startswith(self._nonce) or iterations < MIN_ITERATIONS:
                raise SaslError("Invalid SCRAM server first message")
            mech = self.mechanism
            salted = mech.salted_password(self.password, salt, iterations)
            client_key = mech.hmac(salted, b"Client Key")
            without_proof = f"c=biws,r={nonce}"
            auth_message = f"{self._client_first_bare},{message},{without_proof}".encode()
            signature = mech.hmac(mech.hash(client_key), auth_message)
            proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
            self._server_signature = mech.hmac(mech.hmac(salted, b"Server Key"), auth_message)
            self._state = "server-final"
            return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()
        if self._state == "server-final":
            attrs = _attributes(message)
            if "e" in attrs or base64.b64decode(attrs.get("v", "")) != self._server_signature:
                raise SaslError(f"Invalid SCRAM server final message: {message}")
            self.complete = True
            return b""
        raise SaslError(f"Unexpected SCRAM challenge in state {self._state}")
