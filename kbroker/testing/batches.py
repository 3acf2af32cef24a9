"""Record batches written and read by kafka-python, an independent oracle for kbroker's log.

kafka-python's DefaultRecordBatchBuilder compresses the way producers do; its MemoryRecords /
DefaultRecordBatch reader checks what we store; `.index`/`.timeindex` entries are read with struct.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

from kafka.record.default_records import DefaultRecordBatchBuilder
from kafka.record.memory_records import MemoryRecords

COMPRESSIBLE = b"kbroker-" * 64


def producer_batch(
    values: Sequence[bytes | None],
    *,
    codec: int = 0,
    keys: Sequence[bytes | None] | None = None,
    timestamp: int = 1_700_000_000_000,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    transactional: bool = False,
    headers: list[tuple[str, bytes]] | None = None,
    timestamps: list[int] | None = None,
) -> bytearray:
    """A batch as a producer sends it (baseOffset 0), written by kafka-python.

    Record i is timestamped `timestamps[i]` when given, else `timestamp + i`.
    """
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=codec,
        is_transactional=transactional,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=base_sequence,
        batch_size=1 << 30,
    )
    keys = keys if keys is not None else [None] * len(values)
    for offset, (key, value) in enumerate(zip(keys, values, strict=True)):
        record_timestamp = timestamps[offset] if timestamps else timestamp + offset
        builder.append(offset, record_timestamp, key, value, headers or [])
    return bytearray(builder.build())


def read_batches(data: bytes) -> list[tuple[Any, list[Any]]]:
    """[(kafka-python batch, its records)] for every batch in `data`, CRCs checked."""
    records = MemoryRecords(bytes(data))
    result = []
    while records.has_next():
        batch = records.next_batch()
        assert batch.validate_crc(), f"bad CRC at offset {batch.base_offset}"
        result.append((batch, list(batch)))
    return result


def batches_with_positions(path: str) -> list[tuple[int, Any, list[Any]]]:
    """[(file position, kafka-python batch, records)] for a whole .log file."""
    with open(path, "rb") as file:
        data = file.read()
    result = []
    position = 0
    for batch, records in read_batches(data):
        result.append((position, batch, records))
        position += batch.size_in_bytes
    assert position == len(data), f"{path}: {len(data) - position} bytes after the last batch"
    return result


def index_entries(path: str, entry_format: str) -> list[tuple[int, ...]]:
    """Entries of an .index (">ii") or .timeindex (">qi") file, parsed with struct alone."""
    with open(path, "rb") as file:
        data = file.read()
    size = struct.calcsize(entry_format)
    assert len(data) % size == 0, f"{path} is not a whole number of entries"
    return [struct.unpack_from(entry_format, data, at) for at in range(0, len(data), size)]
