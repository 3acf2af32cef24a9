"""The Errors member of an error code read from another broker's answer (Fetch,
OffsetForLeaderEpoch, ListOffsets, AlterPartition)."""

from __future__ import annotations

from kbroker.protocol.errors import Errors


def error_for_code(code: int) -> Errors:
    """Errors(code), ValueError for a code Kafka does not define."""
    # Errors builds its members from (code, message) in __new__, so mypy reads a one-argument
    # call as that constructor missing its message; at run time it is Enum's lookup by value.
    return Errors(code)  # type: ignore[call-arg]
