"""AppendOrigin: who is appending to a log (Kafka's AppendOrigin).

A module of its own so that the replica layer can name an origin without importing the
validator, and with it the record and log modules, before the first log exists (start-up).
"""

from __future__ import annotations

import enum


class AppendOrigin(enum.Enum):
    """Who is appending: client-only rules apply to CLIENT."""

    CLIENT = "client"
    COORDINATOR = "coordinator"
    REPLICATION = "replication"
