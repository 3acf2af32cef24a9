"""Kafka's record formats in `__transaction_state` (TransactionLog.scala, KAFKA-FACTS §13).

A record's key is an int16 version (0) then TransactionLogKey {transactional_id}; its value an
int16 version then TransactionLogValue {producer_id, producer_epoch, transaction_timeout_ms,
transaction_status, transaction_partitions [topic, partition_ids] (null when Empty),
transaction_last_update_timestamp_ms, transaction_start_timestamp_ms}, version 1 adding tagged
fields (KIP-890). We write what Kafka 3.9 writes without transaction.version 2 (value v0) and
read both. A null value is a tombstone (the id expired). The layouts are compiled from Kafka's
own schema files (vendored with the protocol schemas), not written by hand here.
Plain bytes in and out: no log, no sockets.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterable
from typing import Any

from kbroker.protocol.compiler import CodecError
from kbroker.protocol.messages import data_codec
from kbroker.txn.transaction_metadata import (
    NO_PRODUCER_EPOCH,
    TopicPartition,
    TransactionState,
    TxnTransitMetadata,
)

KEY_VERSION = 0
VALUE_VERSION = 0
_HIGHEST_VALUE_VERSION = 1
_I16 = struct.Struct(">h")


class TransactionLogError(ValueError):
    """A key or value in __transaction_state that does not parse."""


@functools.lru_cache(maxsize=4096)  # the same id's key is written three times per transaction
def key_to_bytes(transactional_id: str) -> bytes:
    return _I16.pack(KEY_VERSION) + data_codec("TransactionLogKey", KEY_VERSION).encode(
        {"transactional_id": transactional_id})


def value_to_bytes(transit: TxnTransitMetadata) -> bytes:
    """Kafka's valueToBytes: an Empty transaction has no partitions (a null array)."""
    partitions: list[dict[str, Any]] | None = None
    if transit.state != TransactionState.EMPTY:
        partitions = [{"topic": topic, "partition_ids": ids} for topic, ids in group_by_topic(transit.topic_partitions)]
    elif transit.topic_partitions:
        raise ValueError(f"an Empty transaction has no partitions: {sorted(transit.topic_partitions)}")
    return _I16.pack(VALUE_VERSION) + data_codec("TransactionLogValue", VALUE_VERSION).encode({
        "producer_id": transit.producer_id,
        "producer_epoch": transit.producer_epoch,
        "transaction_timeout_ms": transit.txn_timeout_ms,
        "transaction_status": int(transit.state),
        "transaction_partitions": partitions,
        "transaction_last_update_timestamp_ms": transit.txn_last_update_timestamp,
        "transaction_start_timestamp_ms": transit.txn_start_timestamp,
    })


def group_by_topic(partitions: Iterable[TopicPartition]) -> list[tuple[str, list[int]]]:
    """Partitions grouped by topic, both sorted (the order Kafka's tools print does not matter)."""
    by_topic: dict[str, list[int]] = {}
    for topic, partition in partitions:
        by_topic.setdefault(topic, []).append(partition)
    return [(topic, sorted(ids)) for topic, ids in sorted(by_topic.items())]


def _version(data: bytes, what: str, highest: int) -> int:
    if len(data) < 2:
        raise TransactionLogError(f"{what} of {len(data)} bytes has no version")
    (version,) = _I16.unpack_from(data, 0)
    if not 0 <= version <= highest:
        raise TransactionLogError(f"unknown {what} version {version}")
    return version


def read_key(data: bytes) -> str:
    """The transactional id of a key."""
    version = _version(data, "transaction log key", KEY_VERSION)
    try:
        key, _ = data_codec("TransactionLogKey", version).decode(data, 2)
    except (CodecError, struct.error, IndexError, UnicodeDecodeError) as exc:
        raise TransactionLogError(f"bad transaction log key: {exc}") from None
    return key["transactional_id"]


def read_value(data: bytes) -> TxnTransitMetadata:
    """A value as the transition it recorded (last producer epoch unknown, as in Kafka)."""
    version = _version(data, "transaction log value", _HIGHEST_VALUE_VERSION)
    try:
        value, _ = data_codec("TransactionLogValue", version).decode(data, 2)
        state = TransactionState(value["transaction_status"])
    except (CodecError, struct.error, IndexError, UnicodeDecodeError, ValueError) as exc:
        raise TransactionLogError(f"bad transaction log value: {exc}") from None
    partitions = frozenset((entry["topic"], p) for entry in value["transaction_partitions"] or ()
                           for p in entry["partition_ids"])
    return TxnTransitMetadata(value["producer_id"], value["producer_id"], value["producer_epoch"],
                              NO_PRODUCER_EPOCH, value["transaction_timeout_ms"], state, partitions,
                              value["transaction_start_timestamp_ms"], value["transaction_last_update_timestamp_ms"])
