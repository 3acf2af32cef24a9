"""OffsetAndMetadata: a committed offset as the group coordinator keeps it and OffsetCommit and
OffsetFetch carry it (Kafka's OffsetAndMetadata). A module of its own so that the offset
handlers, which load at start-up, import nothing else of kbroker/group: the coordinator itself is
imported when a group first needs it."""

from __future__ import annotations

from typing import NamedTuple

NO_TIMESTAMP = -1
NO_LEADER_EPOCH = -1


class OffsetAndMetadata(NamedTuple):
    """A committed offset; expire_timestamp is None unless an old client asked for its own
    retention time."""

    offset: int
    leader_epoch: int = NO_LEADER_EPOCH
    metadata: str = ""
    commit_timestamp: int = NO_TIMESTAMP
    expire_timestamp: int | None = None
