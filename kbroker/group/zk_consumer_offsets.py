"""Offsets of OffsetCommit v0 / OffsetFetch v0, kept where Kafka 3.x keeps them: in ZooKeeper
(the embedded store in single-node mode) at /consumers/<group>/offsets/<topic>/<partition>, as
the decimal offset (Kafka's ConsumerOffset znode). No metadata string and no group protocol:
those old clients managed their own consumption. It touches only those znodes.
"""

from __future__ import annotations

from typing import Any


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
