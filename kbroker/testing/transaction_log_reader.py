"""An independent reader of `__transaction_state` segment files, for the transaction tests.

It shares no code with kbroker's log or codec: record batches (magic 2, uncompressed, as the
coordinator writes them) and records are parsed with struct and varints here, and keys and
values follow Apache Kafka's TransactionLogKey/TransactionLogValue schemas by hand (key v0
{transactional_id}; value v0 {producer_id, producer_epoch, transaction_timeout_ms,
transaction_status, transaction_partitions [topic, [partition]] nullable,
transaction_last_update_timestamp_ms, transaction_start_timestamp_ms}), so Kafka's own tools
would read the same records from our files.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

_BATCH_HEADER = struct.Struct(">qiibIhiqqqhii")  # baseOffset .. recordCount (61 bytes)
CONTROL_ATTRIBUTE = 0x20
STATES = ["Empty", "Ongoing", "PrepareCommit", "PrepareAbort", "CompleteCommit", "CompleteAbort", "Dead",
          "PrepareEpochFence"]


@dataclass(frozen=True)
class TxnLogRecord:
    offset: int
    transactional_id: str
    value: dict | None  # None: a tombstone


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (result >> 1) ^ -(result & 1), pos
        shift += 7


def _string(data: bytes, pos: int) -> tuple[str, int]:
    (length,) = struct.unpack_from(">h", data, pos)
    return data[pos + 2:pos + 2 + length].decode("utf-8"), pos + 2 + length


def decode_key(data: bytes) -> str:
    version, = struct.unpack_from(">h", data, 0)
    assert version == 0, f"TransactionLogKey version {version}"
    transactional_id, end = _string(data, 2)
    assert end == len(data)
    return transactional_id


def decode_value(data: bytes) -> dict:
    version, = struct.unpack_from(">h", data, 0)
    assert version == 0, f"TransactionLogValue version {version} (Kafka 3.9 writes 0)"
    producer_id, epoch, timeout_ms, status = struct.unpack_from(">qhib", data, 2)
    pos = 2 + 15
    (count,) = struct.unpack_from(">i", data, pos)
    pos += 4
    partitions: list[tuple[str, int]] | None = None if count < 0 else []
    for _ in range(max(count, 0)):
        topic, pos = _string(data, pos)
        (n,) = struct.unpack_from(">i", data, pos)
        ids = struct.unpack_from(f">{n}i", data, pos + 4)
        pos += 4 + 4 * n
        partitions += [(topic, p) for p in ids]  # type: ignore[operator]
    last_update, start = struct.unpack_from(">qq", data, pos)
    assert pos + 16 == len(data), "bytes left after TransactionLogValue"
    return {"producer_id": producer_id, "producer_epoch": epoch, "timeout_ms": timeout_ms, "state": STATES[status],
            "partitions": None if partitions is None else sorted(partitions), "last_update_ms": last_update,
            "start_ms": start}


def read_segment(path: Path) -> list[TxnLogRecord]:
    data = path.read_bytes()
    out = []
    pos = 0
    while pos + _BATCH_HEADER.size <= len(data):
        (base_offset, length, _ple, magic, _crc, attributes, _lod, _first_ts, _max_ts, _pid, _epoch, _seq,
         count) = _BATCH_HEADER.unpack_from(data, pos)
        if length == 0:  # zero-filled tail of a preallocated segment (log.preallocate=true)
            break
        end = pos + 12 + length
        assert magic == 2 and attributes & 0x07 == 0, "the coordinator writes uncompressed magic-2 batches"
        cursor = pos + _BATCH_HEADER.size
        for _ in range(count):
            size, cursor = _varint(data, cursor)
            record_end = cursor + size
            cursor += 1  # attributes
            _ts_delta, cursor = _varint(data, cursor)
            offset_delta, cursor = _varint(data, cursor)
            key_len, cursor = _varint(data, cursor)
            key = data[cursor:cursor + key_len]
            cursor += key_len
            value_len, cursor = _varint(data, cursor)
            value = None if value_len < 0 else data[cursor:cursor + value_len]
            if not attributes & CONTROL_ATTRIBUTE:
                out.append(TxnLogRecord(base_offset + offset_delta, decode_key(key),
                                        None if value is None else decode_value(value)))
            cursor = record_end
        pos = end
    return out


def read_transaction_log(log_dir: Path) -> list[TxnLogRecord]:
    """Every record of every `__transaction_state-N` partition under a broker's log dir."""
    records = []
    for partition_dir in sorted(log_dir.glob("__transaction_state-*")):
        for segment in sorted(partition_dir.glob("*.log")):
            records += read_segment(segment)
    return records
