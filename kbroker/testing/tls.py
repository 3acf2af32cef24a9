"""Certificates for the TLS tests, made by the tests (never committed keys): a CA, and
certificates it signs for brokers (host names and IP addresses in the subjectAltName) and for
clients, written as PEM (key and certificate apart, and together) and as PKCS12.

Imports `cryptography` (a dependency of kbroker's TLS listeners); nothing in the broker imports
this module.
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

STORE_PASSWORD = "store-secret"
KEY_PASSWORD = "key-secret"
_VALIDITY = datetime.timedelta(days=2)


@dataclass(frozen=True)
class Identity:
    """One certificate and its key, in every form the tests hand to brokers and clients."""

    name: str
    subject: str  # as kbroker and Kafka spell it (RFC 2253)
    key_pem: Path  # unencrypted PKCS8
    encrypted_key_pem: Path  # PKCS8 under KEY_PASSWORD
    cert_pem: Path  # the certificate, then the CA's
    keystore_pem: Path  # encrypted key and chain in one file (ssl.keystore.type=PEM)
    pkcs12: Path  # under STORE_PASSWORD

    def key_text(self, encrypted: bool = False) -> str:
        return (self.encrypted_key_pem if encrypted else self.key_pem).read_text()

    def chain_text(self) -> str:
        return self.cert_pem.read_text()


class CertificateAuthority:
    def __init__(self, directory: Path, name: str = "kbroker-test-ca") -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + _VALIDITY)
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                  content_commitment=False, key_encipherment=False,
                                                  data_encipherment=False, key_agreement=False,
                                                  encipher_only=False, decipher_only=False), critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.cert_pem = directory / f"{name}.pem"
        self.cert_pem.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self.truststore_pkcs12 = directory / f"{name}.truststore.p12"
        self.truststore_pkcs12.write_bytes(pkcs12.serialize_key_and_certificates(
            None, None, None, [self.cert],
            serialization.BestAvailableEncryption(STORE_PASSWORD.encode())))

    def issue(self, name: str, attributes: list[tuple[x509.ObjectIdentifier, str]] | None = None,
              hosts: tuple[str, ...] = ("localhost", "127.0.0.1")) -> Identity:
        """A certificate for `name` (CN=name unless `attributes` give the subject, most general first)."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(oid, value) for oid, value in (attributes or [(NameOID.COMMON_NAME, name)])])
        alt_names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                alt_names.append(x509.DNSName(host))
        now = datetime.datetime.now(datetime.UTC)
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(self.cert.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + _VALIDITY)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                         ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
        if alt_names:
            builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        chain_pem = cert.public_bytes(serialization.Encoding.PEM) + self.cert.public_bytes(serialization.Encoding.PEM)
        plain = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
        encrypted = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.BestAvailableEncryption(KEY_PASSWORD.encode()))
        paths = {kind: self.directory / f"{name}.{kind}" for kind in ("key.pem", "enc-key.pem", "cert.pem",
                                                                      "keystore.pem", "p12")}
        paths["key.pem"].write_bytes(plain)
        paths["enc-key.pem"].write_bytes(encrypted)
        paths["cert.pem"].write_bytes(chain_pem)
        paths["keystore.pem"].write_bytes(encrypted + chain_pem)
        paths["p12"].write_bytes(pkcs12.serialize_key_and_certificates(
            name.encode(), key, cert, [self.cert], serialization.BestAvailableEncryption(STORE_PASSWORD.encode())))
        return Identity(name, subject.rfc4514_string(), paths["key.pem"], paths["enc-key.pem"], paths["cert.pem"],
                        paths["keystore.pem"], paths["p12"])


def keytool_unavailable_reason() -> str | None:
    return None if shutil.which("keytool") else "keytool (a JDK) is not installed"


def to_jks(source_pkcs12: Path, target: Path, store_password: str, key_password: str | None = None) -> Path:
    """A JKS key store written by the JDK's own keytool from a PKCS12 one (STORE_PASSWORD)."""
    subprocess.run(["keytool", "-importkeystore", "-noprompt", "-srckeystore", str(source_pkcs12),
                    "-srcstoretype", "PKCS12", "-srcstorepass", STORE_PASSWORD, "-destkeystore", str(target),
                    "-deststoretype", "JKS", "-deststorepass", store_password,
                    "-destkeypass", key_password or store_password],
                   check=True, capture_output=True, timeout=60)
    return target


def jks_truststore(ca_pem: Path, target: Path, store_password: str) -> Path:
    """A JKS trust store holding the CA's certificate, written by keytool."""
    subprocess.run(["keytool", "-importcert", "-noprompt", "-alias", "ca", "-file", str(ca_pem),
                    "-keystore", str(target), "-storetype", "JKS", "-storepass", store_password],
                   check=True, capture_output=True, timeout=60)
    return target
