"""The log side of transactions through UnifiedLog on real files: the aborted-transaction index
(`.txnindex`, read back with struct as an independent decoder), its recovery after a crash, the
ongoing transactions carried by producer state snapshots across a clean restart, aborted
transactions whose markers lie in a later segment than their data, and KIP-890's
VerificationGuard (a verified append is valid only for the verification it was given).

Data batches are written by kafka-python's builder; markers are the control batches the broker
writes for WriteTxnMarkers (origin COORDINATOR). Expected behaviour is Apache Kafka 3.9's
(TransactionIndex, AbortedTxn, LogLoader.recoverSegment, ProducerStateManager snapshot v1).
"""

from __future__ import annotations

import os
import struct

import crc32c
import pytest

from kbroker.log.append_origin import AppendOrigin
from kbroker.log.config import LogConfig
from kbroker.log.errors import LogError
from kbroker.log.index import AbortedTxn
from kbroker.log.producer_state import SENTINEL, VerificationGuard
from kbroker.log.records import ControlRecordType, build_control_batch
from kbroker.log.unified_log import UnifiedLog
from kbroker.testing.batches import producer_batch

T0 = 1_700_000_000_000
PID = 9000


def open_log(path, clean: bool = True, **config) -> UnifiedLog:
    return UnifiedLog(str(path / "orders-0"), LogConfig(**config), had_clean_shutdown=clean, now=T0)


def txn_data(log: UnifiedLog, pid: int, seq: int, count: int = 2, epoch: int = 0,
             guard: VerificationGuard | None = None) -> int:
    batch = producer_batch([b"v%d" % (seq + i) for i in range(count)], producer_id=pid, producer_epoch=epoch,
                           base_sequence=seq, transactional=True, timestamp=T0)
    return log.append_as_leader(batch, leader_epoch=0, now=T0, verification_guard=guard).base_offset


def end_txn(log: UnifiedLog, pid: int, control: ControlRecordType, epoch: int = 0) -> int:
    batch = build_control_batch(control, pid, epoch, 0, timestamp=T0)
    offset = log.append_as_leader(batch, leader_epoch=0, origin=AppendOrigin.COORDINATOR, now=T0).base_offset
    log.update_high_watermark(log.log_end_offset)
    return offset


def plain(log: UnifiedLog, count: int = 1) -> None:
    log.append_as_leader(producer_batch([b"x" * 40] * count, timestamp=T0), leader_epoch=0, now=T0)
    log.update_high_watermark(log.log_end_offset)


def decode_txn_index(path: str) -> list[tuple[int, int, int, int, int]]:
    """(version, producer id, first offset, last offset, last stable offset) per 34-byte entry."""
    with open(path, "rb") as file:
        data = file.read()
    assert len(data) % 34 == 0, f"{path} holds {len(data)} bytes, not whole entries"
    return [struct.unpack_from(">hqqqq", data, at) for at in range(0, len(data), 34)]


def txn_index_files(log: UnifiedLog) -> dict[str, list[tuple[int, int, int, int, int]]]:
    return {name: decode_txn_index(os.path.join(log.directory, name))
            for name in sorted(os.listdir(log.directory)) if name.endswith(".txnindex")}


def test_an_abort_writes_one_34_byte_entry_in_kafkas_format(tmp_path):
    log = open_log(tmp_path)
    plain(log)  # offset 0
    first = txn_data(log, PID, 0)  # 1-2, open
    other = txn_data(log, PID + 1, 0)  # 3-4, open
    abort = end_txn(log, PID, ControlRecordType.ABORT)  # 5: the other transaction still holds the LSO at 3
    commit = end_txn(log, PID + 1, ControlRecordType.COMMIT)
    assert (first, other, abort, commit) == (1, 3, 5, 6)
    assert txn_index_files(log) == {"00000000000000000000.txnindex": [(0, PID, 1, 5, 3)]}
    assert log.last_stable_offset == log.log_end_offset == 7


def test_the_index_is_rebuilt_by_recovery_even_when_snapshots_lie_past_the_abort(tmp_path):
    """A crash recovers segments from the recovery point: their .txnindex is rebuilt from the log,
    not from a producer snapshot taken after the abort (which knows nothing of it)."""
    log = open_log(tmp_path, segment_bytes=400)
    txn_data(log, PID, 0)
    other = txn_data(log, PID + 1, 0)
    end_txn(log, PID, ControlRecordType.ABORT)
    for _ in range(6):  # roll a few segments, each with a snapshot at its base
        plain(log, 3)
    open_txn = txn_data(log, PID + 1, 2)  # still part of the transaction begun at `other`
    aborted_later = txn_data(log, PID + 2, 0)
    end_txn(log, PID + 2, ControlRecordType.ABORT)
    assert log.number_of_segments > 2
    before = txn_index_files(log)
    assert sum(len(entries) for entries in before.values()) == 2
    log.close_handlers()  # kill -9: nothing flushed, recovery point 0
    for name in before:
        os.remove(os.path.join(log.directory, name))
    reopened = open_log(tmp_path, clean=False, segment_bytes=400)
    assert txn_index_files(reopened) == before
    reopened.update_high_watermark(reopened.log_end_offset)
    assert reopened.last_stable_offset == other < open_txn
    aborted = reopened.collect_aborted_transactions(0, reopened.log_end_offset)
    assert [(t.producer_id, t.first_offset) for t in aborted] == [(PID, 0), (PID + 2, aborted_later)]


def test_a_clean_restart_finds_the_open_transaction_in_the_snapshot(tmp_path):
    log = open_log(tmp_path)
    plain(log)
    first = txn_data(log, PID, 0)
    plain(log)
    log.close()
    [snapshot] = [name for name in os.listdir(log.directory) if name.endswith(".snapshot")]
    with open(os.path.join(log.directory, snapshot), "rb") as file:
        data = file.read()
    version, crc, count = struct.unpack_from(">hIi", data)
    assert (version, crc, count) == (1, crc32c.crc32c(data[6:]), 1)
    pid, epoch, last_seq, last_offset, _delta, _ts, coordinator_epoch, txn_first = struct.unpack_from(
        ">qhiqiqiq", data, 10)
    assert (pid, epoch, last_seq, last_offset, coordinator_epoch, txn_first) == (PID, 0, 1, 2, -1, first)
    # A clean shutdown's snapshot sits at the log end: loading replays nothing after it.
    assert snapshot == "00000000000000000004.snapshot"
    reopened = open_log(tmp_path)
    assert reopened.last_stable_offset == 0  # the high watermark starts at the log start
    reopened.update_high_watermark(4)
    assert reopened.producer_state_manager.first_unstable_offset() == first
    assert reopened.last_stable_offset == first


def test_aborts_indexed_in_later_segments_reach_fetches_of_earlier_data(tmp_path):
    log = open_log(tmp_path, segment_bytes=300)
    start = txn_data(log, PID, 0)
    while log.number_of_segments < 3:
        plain(log, 2)
    txn_data(log, PID, 2)
    end_txn(log, PID, ControlRecordType.ABORT)
    later = txn_data(log, PID + 1, 0)
    end_txn(log, PID + 1, ControlRecordType.ABORT)
    # Reading the first segment lists the abort indexed two segments later, not the one that
    # starts past that segment (a read never spans segments).
    found = log.read(0, 100, max_offset=log.log_end_offset, include_aborted_transactions=True)
    assert [(t.producer_id, t.first_offset) for t in found.aborted_transactions or []] == [(PID, start)]
    everything = log.collect_aborted_transactions(0, log.log_end_offset)
    assert [t.first_offset for t in everything] == [start, later]
    assert log.collect_aborted_transactions(later + 3, log.log_end_offset) == []
    assert isinstance(everything[0], AbortedTxn)


def test_the_index_goes_with_its_segment_on_retention_and_truncation(tmp_path):
    log = open_log(tmp_path, segment_bytes=300, retention_ms=1000)
    txn_data(log, PID, 0)
    end_txn(log, PID, ControlRecordType.ABORT)  # indexed in segment 0
    while log.number_of_segments < 2:
        plain(log, 2)
    later = txn_data(log, PID + 1, 0)
    abort = end_txn(log, PID + 1, ControlRecordType.ABORT)
    last_base = log.active_segment.base_offset
    assert list(txn_index_files(log)) == ["00000000000000000000.txnindex", f"{last_base:020d}.txnindex"]

    # A follower truncating below the second abort's marker forgets that abort (and its open state).
    log.truncate_to(abort)
    assert [t.producer_id for t in log.collect_aborted_transactions(0, log.log_end_offset)] == [PID]
    assert log.producer_state_manager.first_unstable_offset() == later
    assert list(txn_index_files(log)) == ["00000000000000000000.txnindex"]

    # Retention removes segment 0 with its index: renamed .deleted first, then removed.
    end_txn(log, PID + 1, ControlRecordType.COMMIT)
    log.roll()
    assert log.delete_old_segments(now=T0 + 10_000) >= 1
    assert "00000000000000000000.txnindex.deleted" in os.listdir(log.directory)
    log.delete_pending_files(force=True)
    assert not any(name.startswith("00000000000000000000.") for name in os.listdir(log.directory))
    assert log.collect_aborted_transactions(0, log.log_end_offset) == []


def test_a_verified_append_needs_the_guard_of_its_own_verification(tmp_path):
    log = open_log(tmp_path)
    with pytest.raises(LogError) as refused:  # verification on, nothing verified
        txn_data(log, PID, 0, guard=SENTINEL)
    assert refused.value.code == 48 and "not part of an ongoing transaction" in str(refused.value)
    guard = log.maybe_start_transaction_verification(PID, 0)
    assert guard is not SENTINEL and log.maybe_start_transaction_verification(PID, 0) is guard  # one per producer
    with pytest.raises(LogError):
        txn_data(log, PID, 0, guard=VerificationGuard())  # another verification's guard
    assert log.log_end_offset == 0
    assert txn_data(log, PID, 0, guard=guard) == 0
    # The transaction is open: nothing to verify, later batches go in with the sentinel.
    assert log.maybe_start_transaction_verification(PID, 0) is SENTINEL
    assert txn_data(log, PID, 2, guard=SENTINEL) == 2
    end_txn(log, PID, ControlRecordType.COMMIT)
    # The first append cleared the guard: replaying it after the commit opens nothing.
    with pytest.raises(LogError):
        txn_data(log, PID, 4, guard=guard)
    assert log.log_end_offset == 5
    assert log.last_stable_offset == 5


def test_a_marker_between_verification_and_append_voids_the_guard(tmp_path):
    """The coordinator aborts (timeout) after the leader asked it, before the produce lands: the
    abort marker clears the verification, so the late batch cannot open a hanging transaction."""
    log = open_log(tmp_path)
    guard = log.maybe_start_transaction_verification(PID, 0)
    end_txn(log, PID, ControlRecordType.ABORT)
    with pytest.raises(LogError):
        txn_data(log, PID, 0, guard=guard)
    assert log.log_end_offset == 1 and log.last_stable_offset == 1
    # Verification off (None): the log checks nothing, as Kafka with the setting false.
    assert txn_data(log, PID, 0, guard=None) == 1


def test_lingering_verifications_expire_with_producer_ids(tmp_path):
    log = UnifiedLog(str(tmp_path / "orders-0"), LogConfig(), now=T0, producer_id_expiration_ms=1000)
    guard = log.maybe_start_transaction_verification(PID, 0, now=T0)
    log.remove_expired_producers(now=T0 + 500)
    assert log.producer_state_manager.verification_guard(PID) is guard
    log.remove_expired_producers(now=T0 + 1000)
    assert log.producer_state_manager.verification_guard(PID) is SENTINEL
