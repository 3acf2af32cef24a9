"""KafkaPrincipal: the identity a request is authorized as, `User:alice` in Kafka's spelling.

A connection starts as ANONYMOUS (Kafka's principal on PLAINTEXT listeners); TLS client
certificates and SASL authentication replace it with the principal they establish. The api
layer hands it to handlers in RequestContext.principal and to the authorizer.
"""

from __future__ import annotations

from typing import NamedTuple

USER_TYPE = "User"


class KafkaPrincipal(NamedTuple):  # a NamedTuple: frozen and hashable, and cheap to define at start
    principal_type: str
    name: str

    def __str__(self) -> str:
        return f"{self.principal_type}:{self.name}"

    @classmethod
    def parse(cls, text: str) -> KafkaPrincipal:
        """`User:alice` -> KafkaPrincipal("User", "alice"); ValueError without a type."""
        principal_type, sep, name = text.partition(":")
        if not sep or not principal_type:
            raise ValueError(f"expected a principal of the form Type:name, got {text!r}")
        return cls(principal_type, name)


ANONYMOUS = KafkaPrincipal(USER_TYPE, "ANONYMOUS")
