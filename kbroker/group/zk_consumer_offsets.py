"""Offsets of OffsetCommit v0 / OffsetFetch v0, kept where Kafka 3.x keeps them: in ZooKeeper
(the embedded store in single-node mode) at /consumers/<group>/offsets/<topic>/<partition>, as
the decimal offset (Kafka's ConsumerOffset znode). No metadata string and no group protocol:
those old clients managed their own consumption, so the group coordinator is not involved.
ZkConsumerOffsets is what the v0 handlers call. It touches only those znodes.
"""

from __future__ import annotations

from typing import Any

from kbroker.group.offset_and_metadata import OffsetAndMetadata
from kbroker.protocol.errors import Errors


def consumer_offset_path(group_id: str, topic: str, partition: int) -> str:
    return f"/consumers/{group_id}/offsets/{topic}/{partition}"


def set_or_create_consumer_offset(store: Any, group_id: str, topic: str, partition: int, offset: int) -> None:
    path = consumer_offset_path(group_id, topic, partition)
    data = str(offset).encode()
    if store.exists(path) is None:
        store.create(path, data, makepath=True)
    else:
        store.set(path, data)


def get_consumer_offset(store: Any, group_id: str, topic: str, partition: int) -> int | None:
    path = consumer_offset_path(group_id, topic, partition)
    if store.exists(path) is None:
        return None
    data, _ = store.get(path)
    try:
        return int(data.decode())
    except ValueError:
        return None


class ZkConsumerOffsets:
    """The v0 offset operations over the metadata store; metadata longer than
    offset.metadata.max.bytes is refused as the group coordinator refuses it."""

    def __init__(self, store: Any, max_metadata_size: int) -> None:
        self.store = store
        self.max_metadata_size = max_metadata_size

    def commit_offsets(self, group_id: str,
                       offsets: dict[tuple[str, int], OffsetAndMetadata]) -> dict[tuple[str, int], Errors]:
        errors = {}
        for (topic, partition), om in offsets.items():
            if len(om.metadata) > self.max_metadata_size:
                errors[(topic, partition)] = Errors.OFFSET_METADATA_TOO_LARGE
                continue
            set_or_create_consumer_offset(self.store, group_id, topic, partition, om.offset)
            errors[(topic, partition)] = Errors.NONE
        return errors

    def fetch_offset(self, group_id: str, topic: str, partition: int) -> int | None:
        """The committed offset, or None when there is none (or it does not parse)."""
        return get_consumer_offset(self.store, group_id, topic, partition)
