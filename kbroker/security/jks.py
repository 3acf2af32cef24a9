"""Java KeyStore (JKS) files, read: Kafka's default `ssl.keystore.type` and `ssl.truststore.type`.

The format is Sun's (sun.security.provider.JavaKeyStore): magic 0xFEEDFEED, a version (1 or 2),
then entries, each a private key (tag 1: its key encrypted with Sun's KeyProtector and its
certificate chain) or a trusted certificate (tag 2), and a SHA-1 over the password, the words
"Mighty Aphrodite" and everything before it, which checks the store password. The KeyProtector
XORs the PKCS8 key with a SHA-1 key stream drawn from the key password and a 20-byte salt, and
appends SHA-1(password + key) to check it. Passwords are hashed as UTF-16BE, as Java's chars.

Plain data in, plain data out: the PKCS8 DER of each key with its chain, and the trusted
certificates, all as DER; `ssl_factory.py` turns them into what OpenSSL loads.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field

from kbroker.security.der import children, read_tlv

JKS_MAGIC = 0xFEEDFEED
_KEY_PROTECTOR_OID = bytes.fromhex("2b060104012a02110101")  # 1.3.6.1.4.1.42.2.17.1.1
_INTEGRITY_WORDS = b"Mighty Aphrodite"
_DIGEST = 20


class KeyStoreError(ValueError):
    """Not a JKS file, a wrong password, or a damaged store."""


@dataclass
class JavaKeyStore:
    private_keys: list[tuple[bytes, list[bytes]]] = field(default_factory=list)  # (PKCS8 DER, chain DER)
    certificates: list[bytes] = field(default_factory=list)  # trusted certificates, DER


def is_jks(data: bytes) -> bool:
    return data[:4] == JKS_MAGIC.to_bytes(4, "big")


def _password_bytes(password: str) -> bytes:
    return password.encode("utf-16-be")


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, count: int) -> bytes:
        if count < 0 or self.pos + count > len(self.data):
            raise KeyStoreError("the key store is truncated")
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def int32(self) -> int:
        return struct.unpack(">i", self.take(4))[0]

    def utf(self) -> str:
        return self.take(struct.unpack(">H", self.take(2))[0]).decode("utf-8", errors="replace")

    def certificate(self, version: int) -> bytes:
        if version == 2:
            self.utf()  # the certificate type, X.509
        return self.take(self.int32())


def load_jks(data: bytes, store_password: str | None, key_password: str | None) -> JavaKeyStore:
    """The keys and certificates of a JKS file. The store password checks integrity (skipped
    without one, as Java does); keys are decrypted with the key password, else the store's."""
    reader = _Reader(data)
    if not is_jks(data):
        raise KeyStoreError("not a JKS key store")
    reader.take(4)
    version = reader.int32()
    if version not in (1, 2):
        raise KeyStoreError(f"unknown JKS version {version}")
    store = JavaKeyStore()
    encrypted_keys: list[tuple[bytes, list[bytes]]] = []
    for _ in range(reader.int32()):
        tag = reader.int32()
        reader.utf()  # alias
        reader.take(8)  # creation time
        if tag == 1:
            key = reader.take(reader.int32())
            chain = [reader.certificate(version) for _ in range(reader.int32())]
            encrypted_keys.append((key, chain))
        elif tag == 2:
            store.certificates.append(reader.certificate(version))
        else:
            raise KeyStoreError(f"unknown JKS entry type {tag}")
    if store_password is not None:
        digest = hashlib.sha1(_password_bytes(store_password) + _INTEGRITY_WORDS + data[: reader.pos]).digest()
        if reader.take(_DIGEST) != digest:
            raise KeyStoreError("Keystore was tampered with, or password was incorrect")
    password = key_password if key_password is not None else store_password
    for key, chain in encrypted_keys:
        if password is None:
            raise KeyStoreError("a private key entry needs a password")
        store.private_keys.append((_recover_key(key, password), chain))
    return store


def _recover_key(encrypted_key_info: bytes, password: str) -> bytes:
    """Sun's KeyProtector.recover: the PKCS8 DER of a protected key."""
    try:
        _, start, end = read_tlv(encrypted_key_info, 0)
        (_, _, alg_start, alg_end), (_, _, data_start, data_end) = children(encrypted_key_info, start, end)[:2]
        _, oid_start, oid_end = read_tlv(encrypted_key_info, alg_start)
    except ValueError as exc:
        raise KeyStoreError(f"unreadable private key entry: {exc}") from None
    if encrypted_key_info[oid_start:oid_end] != _KEY_PROTECTOR_OID:
        raise KeyStoreError("private key entry not protected with Sun's JKS key protector")
    protected = encrypted_key_info[data_start:data_end]
    if len(protected) < 2 * _DIGEST:
        raise KeyStoreError("private key entry too short")
    salt, encrypted, check = protected[:_DIGEST], protected[_DIGEST:-_DIGEST], protected[-_DIGEST:]
    secret = _password_bytes(password)
    stream = bytearray()
    digest = salt
    while len(stream) < len(encrypted):
        digest = hashlib.sha1(secret + digest).digest()
        stream += digest
    plain = bytes(a ^ b for a, b in zip(encrypted, stream, strict=False))
    if hashlib.sha1(secret + plain).digest() != check:
        raise KeyStoreError("Cannot recover key: wrong key password")
    return plain
