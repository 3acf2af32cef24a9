"""TLS contexts from Kafka's `ssl.*` settings (Kafka's DefaultSslEngineFactory), for SSL and
SASL_SSL listeners and for this broker's own connections to other brokers.

Each listener reads `listener.name.<listener>.ssl.<setting>` over `ssl.<setting>`, as Kafka does;
the inter-broker client reads those of the listener it connects to. Key stores: PKCS12 (read
with `cryptography`), JKS (Kafka's default type, read by jks.py; either type reads either
format, as Java's keystore.type.compat does: keytool has written PKCS12 where the type says JKS
since Java 9) and PEM (a file with the key and its chain, or inline `ssl.keystore.key` and
`ssl.keystore.certificate.chain`, the key optionally encrypted under `ssl.key.password`). Trust stores likewise (`ssl.truststore.*`);
without one the system's CAs are trusted, as the JVM's cacerts are.

`ssl.client.auth` none/requested/required (on a SASL_SSL listener only its listener-prefixed
form counts, as in Kafka since KIP-684); `ssl.enabled.protocols` and `ssl.protocol` bound the
TLS versions (`ssl.protocol` is the highest a connection may use); `ssl.cipher.suites` takes
Kafka's (IANA) names or OpenSSL's for TLS 1.2 suites; TLS 1.3 suites cannot be narrowed with
Python's ssl module, so a list that names some but not all of them is refused, and one naming
none turns TLS 1.3 off (as a JVM with no TLS 1.3 suite enabled does). The client side checks
the peer's host name when `ssl.endpoint.identification.algorithm` is `https` (the default) and
not when it is empty.

Python's ssl module loads a key only from a file: the key is written, encrypted under a random
one-time passphrase, to a private temporary file that is removed as soon as it is loaded.
Problems are ConfigErrors with Kafka's messages: the broker refuses to start.
"""

from __future__ import annotations

import os
import re
import secrets
import ssl
import tempfile
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from kbroker.config import BROKER_CONFIG_BY_NAME, ConfigError, Password
from kbroker.config.validators import check_setting
from kbroker.security.jks import is_jks, load_jks
from kbroker.security.session import Session
from kbroker.security.ssl_principal import SslPrincipalMapper

if TYPE_CHECKING:
    from kbroker.config import Endpoint, KafkaConfig

TLS_PROTOCOLS = ("SSL", "SASL_SSL")
PEM_TYPE = "PEM"
_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.DOTALL)
_VERSIONS = {
    "TLSv1": ssl.TLSVersion.TLSv1, "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}  # fmt: skip
# ssl.protocol names an SSLContext in Java; these allow every version up to the highest.
_UNCAPPED_PROTOCOLS = ("TLS", "SSL", "SSLv3", "TLSv1.3")
_CLIENT_AUTH = {"none": ssl.CERT_NONE, "requested": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}
# The settings a listener may override with listener.name.<listener>.<setting>.
LISTENER_SSL_SETTINGS = (
    "ssl.protocol", "ssl.enabled.protocols", "ssl.cipher.suites", "ssl.client.auth",
    "ssl.endpoint.identification.algorithm", "ssl.principal.mapping.rules",
    "ssl.keystore.type", "ssl.keystore.location", "ssl.keystore.password", "ssl.key.password",
    "ssl.keystore.key", "ssl.keystore.certificate.chain",
    "ssl.truststore.type", "ssl.truststore.location", "ssl.truststore.password", "ssl.truststore.certificates",
)  # fmt: skip


def ssl_settings(config: KafkaConfig, listener_name: str) -> dict[str, Any]:
    """The ssl.* settings of one listener: listener.name.<listener>.ssl.* over ssl.*."""
    prefix = f"listener.name.{listener_name.lower()}."
    settings = {}
    for name in LISTENER_SSL_SETTINGS:
        text = config.listener_settings.get(prefix + name)
        if text is None:
            settings[name] = config.get(name)
        else:
            key = BROKER_CONFIG_BY_NAME[name]
            settings[name] = check_setting(prefix + name, key.type, key.validator, text)
    # KIP-684: on SASL_SSL listeners only the listener's own ssl.client.auth asks for certificates.
    settings["listener.ssl.client.auth"] = config.listener_settings.get(prefix + "ssl.client.auth")
    return settings


def server_context(settings: Mapping[str, Any], security_protocol: str = "SSL") -> ssl.SSLContext:
    """The context of a TLS listener."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _apply_common(context, settings)
    key_store = _key_store(settings)
    if key_store is None:
        raise ConfigError("SSL key store is not specified: a TLS listener needs ssl.keystore.location, or "
                          "ssl.keystore.key and ssl.keystore.certificate.chain")
    _load_key_store(context, *key_store)
    client_auth = settings["ssl.client.auth"]
    if security_protocol == "SASL_SSL":
        client_auth = (settings["listener.ssl.client.auth"] or "none").strip().lower()
        if client_auth not in _CLIENT_AUTH:
            raise ConfigError(f"Invalid value {client_auth!r} for configuration ssl.client.auth: "
                              "String must be one of: required, requested, none")
    context.verify_mode = _CLIENT_AUTH[client_auth]
    if context.verify_mode != ssl.CERT_NONE:
        _load_trust_store(context, settings, ssl.Purpose.CLIENT_AUTH)
    return context


def client_context(settings: Mapping[str, Any]) -> ssl.SSLContext:
    """The context of this broker's connections to another broker's TLS listener."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _apply_common(context, settings)
    algorithm = (settings["ssl.endpoint.identification.algorithm"] or "").strip()
    if algorithm.lower() not in ("", "https"):
        raise ConfigError(f"Invalid value {algorithm!r} for configuration ssl.endpoint.identification.algorithm: "
                          "kbroker knows HTTPS (check the host name) and the empty string (do not)")
    context.check_hostname = bool(algorithm)
    context.verify_mode = ssl.CERT_REQUIRED
    key_store = _key_store(settings)
    if key_store is not None:
        _load_key_store(context, *key_store)
    _load_trust_store(context, settings, ssl.Purpose.SERVER_AUTH)
    return context


def listener_server_context(config: KafkaConfig, endpoint: Endpoint) -> ssl.SSLContext:
    return server_context(ssl_settings(config, endpoint.listener_name), endpoint.security_protocol)


def inter_broker_client_context(config: KafkaConfig, listener_name: str) -> ssl.SSLContext | None:
    """The client context for connections to other brokers' `listener_name`; None if it is not TLS."""
    if config.listener_security_protocol_map.get(listener_name) not in TLS_PROTOCOLS:
        return None
    return client_context(ssl_settings(config, listener_name))


def session_factory(config: KafkaConfig, listener_name: str) -> Callable[[bytes | None], Session]:
    """An SSL listener's sessions: the principal of the client certificate (DER, or None for
    ANONYMOUS) through that listener's ssl.principal.mapping.rules."""
    rules = ssl_settings(config, listener_name)["ssl.principal.mapping.rules"]
    try:
        mapper = SslPrincipalMapper(rules)
    except ValueError as exc:
        raise ConfigError(f"Invalid value {rules!r} for configuration ssl.principal.mapping.rules: {exc}") from None
    return lambda certificate: Session(mapper.principal(certificate))


# -- versions and cipher suites ---------------------------------------------------------------
def _apply_common(context: ssl.SSLContext, settings: Mapping[str, Any]) -> None:
    enabled = [p.strip() for p in settings["ssl.enabled.protocols"] or [] if p.strip()]
    unknown = [p for p in enabled if p not in _VERSIONS]
    if unknown or not enabled:
        raise ConfigError(f"Invalid value {','.join(enabled)!r} for configuration ssl.enabled.protocols: "
                          f"kbroker knows {', '.join(_VERSIONS)}")
    protocol = (settings["ssl.protocol"] or "TLS").strip()
    if protocol not in _UNCAPPED_PROTOCOLS and protocol not in _VERSIONS:
        raise ConfigError(f"Invalid value {protocol!r} for configuration ssl.protocol: "
                          f"kbroker knows TLS, {', '.join(_VERSIONS)}")
    cap = ssl.TLSVersion.TLSv1_3 if protocol in _UNCAPPED_PROTOCOLS else _VERSIONS[protocol]
    versions = sorted(v for v in (_VERSIONS[p] for p in enabled) if v <= cap)
    if not versions:
        raise ConfigError(f"ssl.enabled.protocols {','.join(enabled)} names no version up to ssl.protocol {protocol}")
    suites = [s.strip() for s in settings["ssl.cipher.suites"] or [] if s.strip()]
    if suites:
        tls12_on, tls13_on = _set_cipher_suites(context, suites)
        versions = [v for v in versions if (tls13_on if v == ssl.TLSVersion.TLSv1_3 else tls12_on)]
        if not versions:
            raise ConfigError(f"ssl.cipher.suites {','.join(suites)} names no suite of the versions in "
                              f"ssl.enabled.protocols {','.join(enabled)}")
    context.minimum_version, context.maximum_version = versions[0], versions[-1]


def _set_cipher_suites(context: ssl.SSLContext, suites: list[str]) -> tuple[bool, bool]:
    """Enables the TLS 1.2 suites named; returns whether TLS 1.2 and older, and TLS 1.3, keep a
    suite (TLS 1.3 only when the list names all of its suites, or no list narrows them)."""
    tls13 = {c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.3"}
    named13 = {s for s in suites if s in tls13}
    if named13 and named13 != tls13:
        raise ConfigError(f"Invalid value {','.join(suites)!r} for configuration ssl.cipher.suites: TLS 1.3 "
                          f"suites cannot be narrowed here; name all of {', '.join(sorted(tls13))} or none")
    older = [s for s in suites if s not in tls13]
    if older:
        openssl_names = [_openssl_cipher_name(s) for s in older]
        try:
            context.set_ciphers(":".join(openssl_names))
        except ssl.SSLError:
            raise ConfigError(f"Invalid value {','.join(suites)!r} for configuration ssl.cipher.suites: "
                              "no cipher suite named there is available") from None
        available = {c["name"] for c in context.get_ciphers()}
        missing = [s for s, name in zip(older, openssl_names, strict=True) if name not in available]
        if missing:
            raise ConfigError(f"Invalid value {','.join(suites)!r} for configuration ssl.cipher.suites: "
                              f"unknown or unavailable: {', '.join(missing)}")
    return bool(older), bool(named13)


def _openssl_cipher_name(name: str) -> str:
    """Kafka's (IANA) suite name in OpenSSL's spelling: TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 ->
    ECDHE-RSA-AES128-GCM-SHA256. Names already in OpenSSL's form pass through."""
    if not name.startswith("TLS_") or "_WITH_" not in name:
        return name
    exchange, _, cipher = name[4:].partition("_WITH_")
    parts = cipher.split("_")
    if parts[0] in ("AES", "CAMELLIA", "ARIA") and len(parts) >= 3:
        mode = parts[2]
        parts = [parts[0] + parts[1], *([] if mode == "CBC" else [mode]), *parts[3:]]
    if parts[-1] == "SHA256" and "POLY1305" in parts:
        parts = parts[:-1]  # OpenSSL's CHACHA20-POLY1305 names no hash
    prefix = [] if exchange == "RSA" else exchange.split("_")
    return "-".join(prefix + parts)


# -- key and trust stores ---------------------------------------------------------------------
def _secret(value: Any) -> str | None:
    if value is None:
        return None
    return value.value if isinstance(value, Password) else str(value)


def _key_store(settings: Mapping[str, Any]) -> tuple[Any, list] | None:
    """(private key, certificate chain) per Kafka's createKeystore rules, or None when none is set."""
    store_type = (settings["ssl.keystore.type"] or "JKS").strip().upper()
    path = settings["ssl.keystore.location"]
    password = _secret(settings["ssl.keystore.password"])
    key_password = _secret(settings["ssl.key.password"])
    private_key = _secret(settings["ssl.keystore.key"])
    chain = _secret(settings["ssl.keystore.certificate.chain"])
    if private_key is not None:
        if store_type != PEM_TYPE:
            raise ConfigError(f"SSL private key can be specified only for PEM, but key store type is {store_type}.")
        if chain is None:
            raise ConfigError("SSL private key is specified, but certificate chain is not specified.")
        if path is not None:
            raise ConfigError("Both SSL key store location and separate private key are specified.")
        if password is not None:
            raise ConfigError("SSL key store password cannot be specified with PEM format, only key password "
                              "may be specified.")
        return _pem_key_and_chain(private_key, chain, key_password, "ssl.keystore.key")
    if chain is not None:
        raise ConfigError("SSL certificate chain is specified, but private key is not specified")
    if store_type == PEM_TYPE and path is not None:
        if password is not None:
            raise ConfigError("SSL key store password cannot be specified with PEM format, only key password "
                              "may be specified")
        text = _read(path, "PEM SSL keystore").decode("utf-8", errors="replace")
        return _pem_key_and_chain(text, text, key_password, path)
    if path is None and password is not None:
        raise ConfigError("SSL key store is not specified, but key store password is specified.")
    if path is not None and password is None:
        raise ConfigError("SSL key store is specified, but key store password is not specified.")
    if path is None:
        return None
    key, chain_certs, _ = _store_file(path, store_type, password, key_password, "SSL keystore")
    if key is None or not chain_certs:
        raise ConfigError(f"Failed to load SSL keystore {path} of type {store_type}: no private key with its "
                          "certificate in it")
    return key, chain_certs


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as exc:
        raise ConfigError(f"Failed to load {what} {path}: {exc.strerror or exc}") from None


def _store_file(path: str, store_type: str, password: str | None, key_password: str | None,
                what: str) -> tuple[Any, list, list]:
    """(private key or None, its chain, other certificates) of a JKS or PKCS12 file. Like Java's
    keystore.type.compat, either type reads either format: keytool writes PKCS12 where the type
    says JKS since Java 9, and Kafka's default type is JKS."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_der_private_key, pkcs12

    data = _read(path, what)
    failed = f"Failed to load {what} {path} of type {store_type}"
    if store_type not in ("PKCS12", "JKS"):
        raise ConfigError(f"{failed}: kbroker reads JKS, PKCS12 and PEM stores")
    if is_jks(data):
        try:
            store = load_jks(data, password, key_password)
            keys = [(load_der_private_key(key, None), [x509.load_der_x509_certificate(c) for c in chain])
                    for key, chain in store.private_keys]
            others = [x509.load_der_x509_certificate(c) for c in store.certificates]
        except ValueError as exc:
            raise ConfigError(f"{failed}: {exc}") from None
        key, chain = keys[0] if keys else (None, [])
        return key, chain, others + [c for _, more in keys[1:] for c in more]
    last_error: Exception | None = None
    for candidate in dict.fromkeys((password, key_password)):  # Java lets the key have its own password
        try:
            key, cert, more = pkcs12.load_key_and_certificates(
                data, None if candidate is None else candidate.encode())
        except ValueError as exc:
            last_error = exc
            continue
        certificates = [c for c in (cert, *more) if c is not None]
        return (key, certificates, []) if key is not None else (None, [], certificates)
    raise ConfigError(f"{failed}: {last_error}")


def _pem_key_and_chain(key_text: str, chain_text: str, key_password: str | None, where: str) -> tuple[Any, list]:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key_pem = _pem_blocks(key_text, "PRIVATE KEY")
    if len(key_pem) != 1:
        raise ConfigError(f"Failed to load PEM SSL keystore {where}: expected one private key, found {len(key_pem)}")
    try:
        key = load_pem_private_key(key_pem[0].encode(), None if key_password is None else key_password.encode())
        chain = x509.load_pem_x509_certificates("".join(_pem_blocks(chain_text, "CERTIFICATE")).encode())
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"Failed to load PEM SSL keystore {where}: {exc}") from None
    return key, chain


def _pem_blocks(text: str, kind: str) -> list[str]:
    """The PEM blocks whose label ends with `kind` (PRIVATE KEY matches ENCRYPTED/RSA/EC PRIVATE KEY),
    re-wrapped: a properties file's continued lines give Kafka one line with spaces for newlines."""
    blocks = []
    for match in _PEM_BLOCK.finditer(text):
        label, body = match.group(1), "".join(match.group(2).split())
        if label.endswith(kind):
            lines = [body[i : i + 64] for i in range(0, len(body), 64)]
            blocks.append("\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----"]) + "\n")
    return blocks


def _load_key_store(context: ssl.SSLContext, key: Any, chain: list) -> None:
    """Hands key and chain to OpenSSL through a private temporary file (the only way Python's ssl
    module loads a key), the key encrypted under a one-time passphrase; removed once loaded."""
    from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, Encoding, PrivateFormat

    passphrase = secrets.token_hex(16).encode()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(passphrase))
    pem += b"".join(cert.public_bytes(Encoding.PEM) for cert in chain)
    fd, path = tempfile.mkstemp(prefix="kbroker-key-", suffix=".pem")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(pem)
        context.load_cert_chain(path, password=passphrase)
    except ssl.SSLError as exc:
        raise ConfigError(f"the SSL key store's key does not fit its certificate chain: {exc}") from None
    finally:
        os.unlink(path)


def _load_trust_store(context: ssl.SSLContext, settings: Mapping[str, Any], purpose: ssl.Purpose) -> None:
    """ssl.truststore.* per Kafka's createTruststore rules; none set: the system's trusted CAs."""
    store_type = (settings["ssl.truststore.type"] or "JKS").strip().upper()
    path = settings["ssl.truststore.location"]
    password = _secret(settings["ssl.truststore.password"])
    certificates = _secret(settings["ssl.truststore.certificates"])
    if certificates is not None:
        if store_type != PEM_TYPE:
            raise ConfigError(f"SSL trust store certs can be specified only for PEM, but trust store type is "
                              f"{store_type}.")
        if path is not None:
            raise ConfigError("Both SSL trust store location and separate trust certificates are specified.")
        if password is not None:
            raise ConfigError("SSL trust store password cannot be specified for PEM format.")
        _trust_pem(context, certificates, "ssl.truststore.certificates")
    elif store_type == PEM_TYPE and path is not None:
        if password is not None:
            raise ConfigError("SSL trust store password cannot be specified for PEM format.")
        _trust_pem(context, _read(path, "PEM SSL truststore").decode("utf-8", errors="replace"), path)
    elif path is None and password is not None:
        raise ConfigError("SSL trust store is not specified, but trust store password is specified.")
    elif path is not None:
        _trust_store_file(context, path, store_type, password)
    else:
        context.load_default_certs(purpose)


def _trust_pem(context: ssl.SSLContext, text: str, where: str) -> None:
    blocks = _pem_blocks(text, "CERTIFICATE")
    if not blocks:
        raise ConfigError(f"Failed to load PEM SSL truststore {where}: no certificate in it")
    try:
        context.load_verify_locations(cadata="".join(blocks))
    except ssl.SSLError as exc:
        raise ConfigError(f"Failed to load PEM SSL truststore {where}: {exc}") from None


def _trust_store_file(context: ssl.SSLContext, path: str, store_type: str, password: str | None) -> None:
    from cryptography.hazmat.primitives.serialization import Encoding

    _, chain, others = _store_file(path, store_type, password, None, "SSL truststore")
    if not chain and not others:
        raise ConfigError(f"Failed to load SSL truststore {path} of type {store_type}: no certificate in it")
    context.load_verify_locations(cadata=b"".join(c.public_bytes(Encoding.DER) for c in (*chain, *others)))
