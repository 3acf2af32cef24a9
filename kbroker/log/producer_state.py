"""Idempotent and transactional producer state of one partition (Kafka's ProducerStateManager,
ProducerAppendInfo, ProducerStateEntry; KAFKA-FACTS §8).

Per producer id: its epoch and the metadata of its last 5 batches, so a retried batch is answered
with its original offsets; sequence and epoch checks give OUT_OF_ORDER_SEQUENCE_NUMBER and
INVALID_PRODUCER_EPOCH. Open transactions give the first unstable offset (last stable offset).
State is snapshotted to `<20-digit offset>.snapshot` files in Kafka's format (version 1, CRC-32C)
on roll and clean close, and rebuilt from the latest snapshot plus the log after it.

Works from batch headers only; reads no log files itself (the log feeds it batches).
"""

from __future__ import annotations

import itertools
import logging
import os
import struct
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from kbroker.log import io_faults
from kbroker.log.append_origin import AppendOrigin
from kbroker.log.checkpoint import read_small_file
from kbroker.log.config import DEFAULT_PRODUCER_ID_EXPIRATION_MS
from kbroker.log.crc import crc32c
from kbroker.log.errors import LogError
from kbroker.log.records import (
    INT32_MAX,
    NO_PRODUCER_EPOCH,
    NO_SEQUENCE,
    BatchHeader,
    ControlRecordType,
)
from kbroker.protocol.errors import Errors

log = logging.getLogger(__name__)

SNAPSHOT_FILE_SUFFIX = ".snapshot"
NUM_BATCHES_TO_RETAIN = 5

_SNAPSHOT_VERSION = 1
_SNAPSHOT_HEADER = struct.Struct(">hIi")  # version, crc, entry count
_SNAPSHOT_ENTRY = struct.Struct(">qhiqiqiq")
_CRC_START = 6  # the CRC covers everything after version and crc


_guard_ids = itertools.count(1)


class VerificationGuard:
    """KIP-890's token for one verification of a partition with the transaction coordinator
    (Kafka's VerificationGuard): a transactional batch that opens a transaction here is appended
    only with the guard the partition handed out before it asked the coordinator, and only while
    the partition still holds that guard. A marker or the transaction's first batch clears it, so
    a verification that raced with the end of its transaction can open nothing (no hanging
    transaction). SENTINEL is "no verification": it verifies nothing."""

    __slots__ = ("value",)

    def __init__(self, value: int | None = None):
        self.value = next(_guard_ids) if value is None else value

    def verify(self, presented: VerificationGuard) -> bool:
        return presented is not SENTINEL and presented is self

    def __repr__(self) -> str:
        return f"VerificationGuard({self.value})"


SENTINEL = VerificationGuard(0)


@dataclass
class VerificationStateEntry:
    """A producer's pending verification on this partition (Kafka's VerificationStateEntry)."""

    timestamp: int
    epoch: int
    guard: VerificationGuard = field(default_factory=VerificationGuard)


class BatchMetadata(NamedTuple):
    last_seq: int
    last_offset: int
    offset_delta: int
    timestamp: int

    @property
    def first_seq(self) -> int:
        return decrement_sequence(self.last_seq, self.offset_delta)

    @property
    def first_offset(self) -> int:
        return self.last_offset - self.offset_delta


def decrement_sequence(sequence: int, decrement: int) -> int:
    if sequence < decrement:
        return INT32_MAX - (decrement - sequence) + 1
    return sequence - decrement


class CompletedTxn(NamedTuple):
    producer_id: int
    first_offset: int
    last_offset: int
    is_aborted: bool


@dataclass
class ProducerStateEntry:
    producer_id: int
    producer_epoch: int = NO_PRODUCER_EPOCH
    batch_metadata: deque[BatchMetadata] = field(default_factory=lambda: deque(maxlen=NUM_BATCHES_TO_RETAIN))
    coordinator_epoch: int = -1
    last_timestamp: int = -1
    current_txn_first_offset: int | None = None

    @property
    def is_empty(self) -> bool:
        return not self.batch_metadata

    @property
    def last_seq(self) -> int:
        return self.batch_metadata[-1].last_seq if self.batch_metadata else NO_SEQUENCE

    @property
    def last_data_offset(self) -> int:
        return self.batch_metadata[-1].last_offset if self.batch_metadata else -1

    @property
    def last_offset_delta(self) -> int:
        return self.batch_metadata[-1].offset_delta if self.batch_metadata else 0

    def copy_without_batches(self) -> ProducerStateEntry:
        return ProducerStateEntry(
            self.producer_id,
            self.producer_epoch,
            coordinator_epoch=self.coordinator_epoch,
            last_timestamp=self.last_timestamp,
            current_txn_first_offset=self.current_txn_first_offset,
        )

    def maybe_update_producer_epoch(self, producer_epoch: int) -> bool:
        """A new epoch forgets the old epoch's batches."""
        if self.producer_epoch != producer_epoch:
            self.batch_metadata.clear()
            self.producer_epoch = producer_epoch
            return True
        return False

    def add_batch(
        self, producer_epoch: int, last_seq: int, last_offset: int, offset_delta: int, timestamp: int
    ) -> None:
        self.maybe_update_producer_epoch(producer_epoch)
        self.batch_metadata.append(BatchMetadata(last_seq, last_offset, offset_delta, timestamp))
        self.last_timestamp = timestamp

    def update(self, next_entry: ProducerStateEntry) -> None:
        self.maybe_update_producer_epoch(next_entry.producer_epoch)
        self.batch_metadata.extend(next_entry.batch_metadata)
        self.coordinator_epoch = next_entry.coordinator_epoch
        self.current_txn_first_offset = next_entry.current_txn_first_offset
        self.last_timestamp = next_entry.last_timestamp

    def find_duplicate_batch(self, batch: BatchHeader) -> BatchMetadata | None:
        if batch.producer_epoch != self.producer_epoch:
            return None
        first_seq, last_seq = batch.base_sequence, batch.last_sequence
        for metadata in self.batch_metadata:
            if metadata.first_seq == first_seq and metadata.last_seq == last_seq:
                return metadata
        return None


def in_sequence(last_seq: int, next_seq: int) -> bool:
    return next_seq == last_seq + 1 or (next_seq == 0 and last_seq == INT32_MAX)


class ProducerAppendInfo:
    """Checks and collects one producer's batches of one append before they are committed."""

    def __init__(self, producer_id: int, current_entry: ProducerStateEntry, origin: AppendOrigin):
        self.producer_id = producer_id
        self.current_entry = current_entry
        self.origin = origin
        self.updated_entry = current_entry.copy_without_batches()
        self.started_transactions: list[int] = []
        self.transactional = False  # a transactional batch (data or marker) was appended

    def append(
        self, batch: BatchHeader, control_marker: tuple[ControlRecordType, int] | None
    ) -> CompletedTxn | None:
        """Apply one batch (offsets already assigned); `control_marker` is (type, coordinator epoch)
        for a control batch."""
        if batch.is_transactional:
            self.transactional = True
        if batch.is_control:
            if control_marker is None:
                raise ValueError("a control batch needs its marker")
            marker_type, coordinator_epoch = control_marker
            return self.append_end_txn_marker(
                marker_type, coordinator_epoch, batch.producer_epoch, batch.base_offset, batch.max_timestamp
            )
        self.append_data_batch(
            batch.producer_epoch,
            batch.base_sequence,
            batch.last_sequence,
            batch.max_timestamp,
            batch.base_offset,
            batch.last_offset,
            batch.is_transactional,
        )
        return None

    def append_data_batch(
        self,
        epoch: int,
        first_seq: int,
        last_seq: int,
        last_timestamp: int,
        first_offset: int,
        last_offset: int,
        is_transactional: bool,
    ) -> None:
        self._check_producer_epoch(epoch, first_offset)
        if self.origin is AppendOrigin.CLIENT:
            self._check_sequence(epoch, first_seq, first_offset)
        self.updated_entry.add_batch(epoch, last_seq, last_offset, last_offset - first_offset, last_timestamp)
        ongoing = self.updated_entry.current_txn_first_offset
        if ongoing is not None and not is_transactional:
            raise LogError(
                Errors.INVALID_TXN_STATE,
                f"expected transactional write from producer {self.producer_id} at offset {first_offset}",
            )
        if ongoing is None and is_transactional:
            self.updated_entry.current_txn_first_offset = first_offset
            self.started_transactions.append(first_offset)

    def append_end_txn_marker(
        self,
        marker_type: ControlRecordType,
        coordinator_epoch: int,
        producer_epoch: int,
        offset: int,
        timestamp: int,
    ) -> CompletedTxn | None:
        self._check_producer_epoch(producer_epoch, offset)
        if self.updated_entry.coordinator_epoch > coordinator_epoch:
            message = (
                f"invalid coordinator epoch {coordinator_epoch} for producer {self.producer_id} at offset {offset}; "
                f"the last seen coordinator epoch is {self.updated_entry.coordinator_epoch}"
            )
            if self.origin is not AppendOrigin.REPLICATION:
                raise LogError(Errors.TRANSACTION_COORDINATOR_FENCED, message)
            log.warning(message)
        completed = None
        first_offset = self.updated_entry.current_txn_first_offset
        if first_offset is not None:
            completed = CompletedTxn(
                self.producer_id, first_offset, offset, marker_type == ControlRecordType.ABORT
            )
        self.updated_entry.maybe_update_producer_epoch(producer_epoch)
        self.updated_entry.current_txn_first_offset = None
        self.updated_entry.coordinator_epoch = coordinator_epoch
        self.updated_entry.last_timestamp = timestamp
        return completed

    def _check_producer_epoch(self, producer_epoch: int, offset: int) -> None:
        current = self.updated_entry.producer_epoch
        if producer_epoch < current:
            message = (
                f"epoch of producer {self.producer_id} at offset {offset} is {producer_epoch}, "
                f"which is smaller than the last seen epoch {current}"
            )
            if self.origin is AppendOrigin.REPLICATION:
                log.warning(message)
            else:
                raise LogError(Errors.INVALID_PRODUCER_EPOCH, message)

    def _check_sequence(self, producer_epoch: int, first_seq: int, offset: int) -> None:
        if producer_epoch != self.updated_entry.producer_epoch:
            if first_seq != 0 and self.updated_entry.producer_epoch != NO_PRODUCER_EPOCH:
                raise LogError(
                    Errors.OUT_OF_ORDER_SEQUENCE_NUMBER,
                    f"invalid sequence number for new epoch of producer {self.producer_id} at offset {offset}: "
                    f"{producer_epoch} (request epoch), {first_seq} (seq. number), "
                    f"{self.updated_entry.producer_epoch} (current producer epoch)",
                )
            return
        if not self.updated_entry.is_empty:
            current_last_seq = self.updated_entry.last_seq
        elif producer_epoch == self.current_entry.producer_epoch:
            current_last_seq = self.current_entry.last_seq
        else:
            current_last_seq = NO_SEQUENCE
        # No known epoch (state lost to retention or DeleteRecords): any sequence is accepted.
        if self.current_entry.producer_epoch != NO_PRODUCER_EPOCH and not in_sequence(
            current_last_seq, first_seq
        ):
            raise LogError(
                Errors.OUT_OF_ORDER_SEQUENCE_NUMBER,
                f"out of order sequence number for producer {self.producer_id} at offset {offset}: "
                f"{first_seq} (incoming seq. number), {current_last_seq} (current end sequence number)",
            )


class ProducerStateManager:
    """All producers of one partition, the open transactions, and the snapshot files."""

    def __init__(self, directory: str, producer_id_expiration_ms: int = DEFAULT_PRODUCER_ID_EXPIRATION_MS):
        self.directory = directory
        self.producer_id_expiration_ms = producer_id_expiration_ms
        self.producers: dict[int, ProducerStateEntry] = {}
        self.ongoing_txns: dict[int, int] = {}  # first offset -> producer id
        self.unreplicated_txns: dict[int, tuple[int, int]] = {}  # first offset -> (producer id, last offset)
        self.map_end_offset = 0
        self.last_snap_offset = 0
        self.verification_states: dict[int, VerificationStateEntry] = {}

    # -- lookups

    def last_entry(self, producer_id: int) -> ProducerStateEntry | None:
        return self.producers.get(producer_id)

    def first_unstable_offset(self) -> int | None:
        """First offset of the oldest transaction not both completed and replicated."""
        ongoing, unreplicated = self.ongoing_txns, self.unreplicated_txns
        if not unreplicated:  # every fetch asks: without transactions in flight, no work
            return min(ongoing) if ongoing else None
        first = min(unreplicated)
        return min(first, min(ongoing)) if ongoing else first

    def last_stable_offset(self, completed: CompletedTxn) -> int:
        """LSO right after `completed`: the first offset of another open transaction, if any."""
        others = [first for first, pid in self.ongoing_txns.items() if pid != completed.producer_id]
        return min(others) if others else completed.last_offset + 1

    # -- KIP-890 verification

    def maybe_create_verification_state_entry(self, producer_id: int, epoch: int,
                                              now_ms: int) -> VerificationStateEntry:
        """The producer's pending verification, created if it has none: one guard serves
        concurrent requests of the same verification, as in Kafka."""
        entry = self.verification_states.get(producer_id)
        if entry is None:
            entry = self.verification_states[producer_id] = VerificationStateEntry(now_ms, epoch)
        return entry

    def verification_guard(self, producer_id: int) -> VerificationGuard:
        entry = self.verification_states.get(producer_id)
        return SENTINEL if entry is None else entry.guard

    def clear_verification_state_entry(self, producer_id: int) -> None:
        self.verification_states.pop(producer_id, None)

    # -- updates

    def prepare_update(self, producer_id: int, origin: AppendOrigin) -> ProducerAppendInfo:
        current = self.producers.get(producer_id) or ProducerStateEntry(producer_id)
        return ProducerAppendInfo(producer_id, current, origin)

    def update(self, append_info: ProducerAppendInfo) -> None:
        entry = self.producers.get(append_info.producer_id)
        if entry is None:
            entry = ProducerStateEntry(append_info.producer_id)
            self.producers[append_info.producer_id] = entry
        entry.update(append_info.updated_entry)
        for first_offset in append_info.started_transactions:
            self.ongoing_txns[first_offset] = append_info.producer_id

    def complete_txn(self, completed: CompletedTxn) -> None:
        if self.ongoing_txns.pop(completed.first_offset, None) is None:
            raise ValueError(f"no ongoing transaction starting at {completed.first_offset}")
        self.unreplicated_txns[completed.first_offset] = (completed.producer_id, completed.last_offset)

    def on_high_watermark_updated(self, high_watermark: int) -> None:
        """Forget the completed transactions the high watermark has passed. They complete in the
        order of their markers, so the map's last offsets ascend: stop at the first one still
        ahead. The loader calls this once per replayed transaction with the log start offset as
        the high watermark, where a full scan each time made loading quadratic in the
        transactions of the unflushed log (seconds at a restart after kill -9)."""
        unreplicated = self.unreplicated_txns
        if not unreplicated:  # every acks=1 produce passes here: nothing to forget, nothing built
            return
        replicated = []
        for first_offset, (_pid, last_offset) in unreplicated.items():
            if last_offset >= high_watermark:
                break
            replicated.append(first_offset)
        for first_offset in replicated:
            del unreplicated[first_offset]

    def update_map_end_offset(self, offset: int) -> None:
        self.map_end_offset = offset

    def apply_batch(
        self, batch: BatchHeader, control_marker: tuple[ControlRecordType, int] | None, origin: AppendOrigin
    ) -> CompletedTxn | None:
        """prepare_update + append + update for one batch (replay and follower paths)."""
        completed = None
        if batch.has_producer_id:
            info = self.prepare_update(batch.producer_id, origin)
            completed = info.append(batch, control_marker)
            self.update(info)
        self.map_end_offset = batch.next_offset
        return completed

    def remove_expired_producers(self, now_ms: int) -> None:
        expired = [
            pid
            for pid, entry in self.producers.items()
            if entry.current_txn_first_offset is None
            and now_ms - entry.last_timestamp >= self.producer_id_expiration_ms
        ]
        for pid in expired:
            del self.producers[pid]
        # Verifications whose produce never came (Kafka expires them on the same clock).
        lingering = [pid for pid, entry in self.verification_states.items()
                     if now_ms - entry.timestamp >= self.producer_id_expiration_ms]
        for pid in lingering:
            del self.verification_states[pid]

    def truncate_fully_and_start_at(self, offset: int) -> None:
        self._clear()
        for snapshot_offset in self.snapshot_offsets():
            self.remove_and_delete_snapshot(snapshot_offset)
        self.map_end_offset = offset
        self.last_snap_offset = offset

    def _clear(self) -> None:
        self.producers.clear()
        self.ongoing_txns.clear()
        self.unreplicated_txns.clear()

    # -- snapshots

    def snapshot_path(self, offset: int) -> str:
        return os.path.join(self.directory, f"{offset:020d}{SNAPSHOT_FILE_SUFFIX}")

    def snapshot_offsets(self) -> list[int]:
        offsets = []
        for name in os.listdir(self.directory):
            stem = name[: -len(SNAPSHOT_FILE_SUFFIX)]
            if name.endswith(SNAPSHOT_FILE_SUFFIX) and stem.isdigit():
                offsets.append(int(stem))
        return sorted(offsets)

    def latest_snapshot_offset(self) -> int | None:
        offsets = self.snapshot_offsets()
        return offsets[-1] if offsets else None

    def take_snapshot(self, sync: bool = False) -> None:
        """Write `<map end offset>.snapshot` unless one was already written at that offset."""
        if self.map_end_offset == self.last_snap_offset and os.path.exists(
            self.snapshot_path(self.map_end_offset)
        ):
            return
        write_snapshot(self.snapshot_path(self.map_end_offset), self.producers.values(), sync)
        self.last_snap_offset = self.map_end_offset

    def remove_and_delete_snapshot(self, offset: int) -> None:
        try:
            os.remove(self.snapshot_path(offset))
        except FileNotFoundError:
            pass

    def truncate_and_reload(self, log_start_offset: int, log_end_offset: int, now_ms: int) -> None:
        """Drop snapshots past the log end and load the latest remaining one (the caller then
        replays the log from `map_end_offset`)."""
        offsets = self.snapshot_offsets()  # one listing: loading does this for every partition
        for offset in offsets:
            if offset > log_end_offset:
                self.remove_and_delete_snapshot(offset)
        if log_end_offset == self.map_end_offset:
            return
        self._clear()
        self.map_end_offset = log_start_offset
        self.last_snap_offset = log_start_offset
        for offset in reversed([offset for offset in offsets if offset <= log_end_offset]):
            try:
                entries = read_snapshot(self.snapshot_path(offset))
            except ValueError as err:
                log.warning("ignoring corrupt producer snapshot %s: %s", self.snapshot_path(offset), err)
                self.remove_and_delete_snapshot(offset)
                continue
            for entry in entries:
                if (
                    entry.current_txn_first_offset is not None
                    or now_ms - entry.last_timestamp < self.producer_id_expiration_ms
                ):
                    self._load_entry(entry)
            self.map_end_offset = offset
            self.last_snap_offset = offset
            return

    def _load_entry(self, entry: ProducerStateEntry) -> None:
        self.producers[entry.producer_id] = entry
        if entry.current_txn_first_offset is not None:
            self.ongoing_txns[entry.current_txn_first_offset] = entry.producer_id


def write_snapshot(path: str, entries: Iterable[ProducerStateEntry], sync: bool = False) -> None:
    body = bytearray(_SNAPSHOT_HEADER.size)
    count = 0
    for entry in entries:
        last_offset = entry.last_data_offset
        body += _SNAPSHOT_ENTRY.pack(
            entry.producer_id,
            entry.producer_epoch,
            entry.last_seq,
            last_offset,
            entry.last_offset_delta,
            entry.last_timestamp,
            entry.coordinator_epoch,
            -1 if entry.current_txn_first_offset is None else entry.current_txn_first_offset,
        )
        count += 1
    _SNAPSHOT_HEADER.pack_into(body, 0, _SNAPSHOT_VERSION, 0, count)
    crc = crc32c(memoryview(body)[_CRC_START:])
    struct.pack_into(">I", body, 2, crc)
    tmp_path = path + ".tmp"
    io_faults.check("write", tmp_path)
    with open(tmp_path, "wb") as file:
        file.write(body)
        if sync:
            file.flush()
            os.fsync(file.fileno())
    os.replace(tmp_path, path)


def read_snapshot(path: str) -> list[ProducerStateEntry]:
    data = read_small_file(path)
    if len(data) < _SNAPSHOT_HEADER.size:
        raise ValueError("snapshot file too short")
    version, crc, count = _SNAPSHOT_HEADER.unpack_from(data, 0)
    if version != _SNAPSHOT_VERSION:
        raise ValueError(f"unsupported snapshot version {version}")
    if crc32c(memoryview(data)[_CRC_START:]) != crc:
        raise ValueError("snapshot CRC mismatch")
    if len(data) != _SNAPSHOT_HEADER.size + count * _SNAPSHOT_ENTRY.size:
        raise ValueError("snapshot size does not match its entry count")
    entries = []
    for fields in _SNAPSHOT_ENTRY.iter_unpack(memoryview(data)[_SNAPSHOT_HEADER.size :]):
        pid, epoch, last_seq, last_offset, offset_delta, timestamp, coordinator_epoch, txn_first = fields
        entry = ProducerStateEntry(
            pid,
            epoch,
            coordinator_epoch=coordinator_epoch,
            last_timestamp=timestamp,
            current_txn_first_offset=None if txn_first < 0 else txn_first,
        )
        if last_offset >= 0:
            entry.batch_metadata.append(BatchMetadata(last_seq, last_offset, offset_delta, timestamp))
        entries.append(entry)
    return entries
