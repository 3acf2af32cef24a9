"""Idempotent and transactional producer state through UnifiedLog: duplicates, sequence and epoch
errors, snapshots in Kafka's format, survival across clean and crash restarts, aborted
transactions and the last stable offset."""

from __future__ import annotations

import os
import struct

import crc32c
import pytest

from kbroker.log.append_origin import AppendOrigin
from kbroker.log.config import LogConfig
from kbroker.log.errors import LogError
from kbroker.log.index import AbortedTxn
from kbroker.log.producer_state import CompletedTxn, ProducerStateManager
from kbroker.log.records import ControlRecordType, build_control_batch
from kbroker.log.unified_log import UnifiedLog
from kbroker.protocol.errors import Errors
from kbroker.testing.batches import index_entries, producer_batch

T0 = 1_700_000_000_000
PID = 4000


def open_log(path, clean=True, **config) -> UnifiedLog:
    return UnifiedLog(str(path / "payments-0"), LogConfig(**config), had_clean_shutdown=clean, now=T0)


def idempotent(
    log: UnifiedLog, seq: int, count: int = 2, epoch: int = 0, pid: int = PID, transactional=False
):
    batch = producer_batch(
        [b"p%d" % (seq + i) for i in range(count)],
        producer_id=pid,
        producer_epoch=epoch,
        base_sequence=seq,
        transactional=transactional,
    )
    return log.append_as_leader(batch, leader_epoch=0, now=T0)


def error_code(call) -> Errors:
    with pytest.raises(LogError) as caught:
        call()
    return caught.value.code


def test_retried_batches_get_their_original_offsets(tmp_path):
    log = open_log(tmp_path)
    originals = [idempotent(log, seq) for seq in range(0, 12, 2)]  # six batches
    end = log.log_end_offset
    for original, seq in zip(originals[1:], range(2, 12, 2), strict=True):  # the last five are retained
        retry = idempotent(log, seq)
        assert retry.duplicate and (retry.base_offset, retry.last_offset) == (
            original.base_offset,
            original.last_offset,
        )
    assert log.log_end_offset == end
    # The sixth-newest batch is forgotten: its retry is out of order, not a duplicate.
    assert error_code(lambda: idempotent(log, 0)) == Errors.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert log.log_end_offset == end


def test_sequence_gaps_and_epoch_fencing(tmp_path):
    log = open_log(tmp_path)
    idempotent(log, 0, epoch=3)
    assert error_code(lambda: idempotent(log, 5, epoch=3)) == Errors.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert error_code(lambda: idempotent(log, 2, epoch=2)) == Errors.INVALID_PRODUCER_EPOCH
    assert error_code(lambda: idempotent(log, 7, epoch=4)) == Errors.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert log.log_end_offset == 2
    assert idempotent(log, 0, epoch=4).base_offset == 2  # a new epoch starts at sequence 0
    assert idempotent(log, 2, epoch=4).base_offset == 4
    # A producer the partition has never seen may start anywhere.
    assert idempotent(log, 1234, pid=PID + 1).base_offset == 6


def test_sequence_wraps_after_int32_max(tmp_path):
    log = open_log(tmp_path)
    idempotent(log, 2**31 - 2, count=1, pid=77)
    idempotent(log, 2**31 - 1, count=1, pid=77)
    assert idempotent(log, 0, count=1, pid=77).base_offset == 2


def read_snapshot_independently(path: str) -> list[tuple]:
    with open(path, "rb") as file:
        data = file.read()
    version, crc, count = struct.unpack_from(">hIi", data)
    assert version == 1 and crc == crc32c.crc32c(data[6:])
    return [struct.unpack_from(">qhiqiqiq", data, 10 + 46 * n) for n in range(count)]


def test_state_survives_a_clean_restart_through_a_snapshot(tmp_path):
    log = open_log(tmp_path)
    for seq in range(0, 6, 2):
        last = idempotent(log, seq)
    log.close()
    snapshot = os.path.join(log.directory, "00000000000000000006.snapshot")
    [(pid, epoch, last_seq, last_offset, offset_delta, timestamp, coordinator_epoch, txn_first)] = (
        read_snapshot_independently(snapshot)
    )
    assert (pid, epoch, last_seq, last_offset, offset_delta) == (PID, 0, 5, 5, 1)
    assert (coordinator_epoch, txn_first) == (-1, -1) and timestamp == T0 + 1
    reopened = open_log(tmp_path)
    retry = idempotent(reopened, 4)
    assert retry.duplicate and retry.base_offset == last.base_offset
    assert error_code(lambda: idempotent(reopened, 10)) == Errors.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert idempotent(reopened, 6).base_offset == 6


def test_state_is_rebuilt_from_the_log_after_a_crash(tmp_path):
    log = open_log(tmp_path, segment_bytes=300)
    infos = [idempotent(log, seq) for seq in range(0, 20, 2)]
    assert log.number_of_segments > 2
    latest_snapshot = int(log.snapshot_files()[-1][:20])
    log.close_handlers()  # crash: no snapshot at the log end
    reopened = open_log(tmp_path, clean=False, segment_bytes=300)
    # Snapshots keep each producer's last batch; the batches after the latest snapshot are replayed.
    replayed = [
        (info, seq)
        for info, seq in zip(infos, range(0, 20, 2), strict=True)
        if info.base_offset >= latest_snapshot
    ]
    assert 2 <= len(replayed) + 1 <= 5
    for info, seq in [(infos[len(infos) - len(replayed) - 1], 18 - 2 * len(replayed))] + replayed:
        retry = idempotent(reopened, seq)
        assert retry.duplicate and retry.base_offset == info.base_offset
    assert error_code(lambda: idempotent(reopened, 30)) == Errors.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert idempotent(reopened, 20).base_offset == 20


def test_snapshots_are_taken_on_roll_and_removed_with_their_segment(tmp_path):
    log = open_log(tmp_path, segment_bytes=300, retention_ms=1000)
    for seq in range(0, 12, 2):
        idempotent(log, seq)
    bases = [s.base_offset for s in log.log_segments()]
    assert log.snapshot_files() == [f"{base:020d}.snapshot" for base in bases[1:]]
    log.update_high_watermark(log.log_end_offset)
    log.roll()
    log.delete_old_segments(now=T0 + 10_000)
    remaining = {f"{s.base_offset:020d}.snapshot" for s in log.log_segments()}
    assert set(log.snapshot_files()) <= remaining


def test_expired_producers_are_forgotten(tmp_path):
    log = open_log(tmp_path)
    idempotent(log, 0)
    log.remove_expired_producers(now=T0 + 1000)
    assert error_code(lambda: idempotent(log, 9)) == Errors.OUT_OF_ORDER_SEQUENCE_NUMBER
    log.remove_expired_producers(now=T0 + 2 * 24 * 3600 * 1000)
    assert idempotent(log, 9).base_offset == 2


# --- transactions -------------------------------------------------------------------------


def marker(log: UnifiedLog, control: ControlRecordType, pid: int = PID, coordinator_epoch: int = 1):
    batch = build_control_batch(control, pid, 0, coordinator_epoch, timestamp=T0)
    return log.append_as_leader(batch, leader_epoch=0, origin=AppendOrigin.COORDINATOR, now=T0)


def test_aborted_transactions_are_indexed_and_hold_the_last_stable_offset(tmp_path):
    log = open_log(tmp_path)
    log.append_as_leader(producer_batch([b"plain"]), 0)
    idempotent(log, 0, transactional=True)  # offsets 1-2
    idempotent(log, 0, pid=PID + 1, transactional=True)  # offsets 3-4
    log.update_high_watermark(log.log_end_offset)
    assert log.last_stable_offset == 1
    assert error_code(lambda: idempotent(log, 2)) == Errors.INVALID_TXN_STATE
    abort = marker(log, ControlRecordType.ABORT)  # offset 5
    assert abort.base_offset == 5
    log.update_high_watermark(log.log_end_offset)
    assert log.last_stable_offset == 3  # the other producer's transaction is still open
    commit = marker(log, ControlRecordType.COMMIT, pid=PID + 1)
    log.update_high_watermark(commit.last_offset)  # the commit marker itself is not replicated yet
    assert log.last_stable_offset == 3
    log.update_high_watermark(log.log_end_offset)
    assert log.last_stable_offset == 7
    txn_index = log.active_segment.txn_index.path
    entries = index_entries(txn_index, ">hqqqq")
    assert entries == [(0, PID, 1, 5, 3)]
    fetched = log.read(0, 1 << 20, max_offset=log.last_stable_offset, include_aborted_transactions=True)
    assert fetched.aborted_transactions == [AbortedTxn(PID, 1, 5, 3)]
    assert log.read(6, 1 << 20, include_aborted_transactions=True).aborted_transactions == []


def test_stale_coordinator_epoch_is_fenced(tmp_path):
    log = open_log(tmp_path)
    idempotent(log, 0, transactional=True)
    marker(log, ControlRecordType.COMMIT, coordinator_epoch=5)
    idempotent(log, 2, transactional=True)
    assert error_code(lambda: marker(log, ControlRecordType.COMMIT, coordinator_epoch=4)) == (
        Errors.TRANSACTION_COORDINATOR_FENCED
    )


def test_open_transactions_survive_a_crash(tmp_path):
    log = open_log(tmp_path)
    idempotent(log, 0, transactional=True)
    idempotent(log, 2, transactional=True)
    idempotent(log, 0, pid=PID + 1, transactional=True)
    marker(log, ControlRecordType.ABORT, pid=PID + 1)
    log.close_handlers()
    reopened = open_log(tmp_path, clean=False)
    reopened.update_high_watermark(reopened.log_end_offset)
    assert reopened.last_stable_offset == 0
    assert reopened.collect_aborted_transactions(0, 100) == [AbortedTxn(PID + 1, 4, 6, 0)]
    marker(reopened, ControlRecordType.COMMIT)
    reopened.update_high_watermark(reopened.log_end_offset)
    assert reopened.last_stable_offset == reopened.log_end_offset == 8


class CountingDict(dict):
    """Counts the entries iterated through items()."""

    visited = 0

    def items(self):
        for item in super().items():
            CountingDict.visited += 1
            yield item


def test_the_high_watermark_forgets_transactions_in_marker_order_without_rescanning(tmp_path):
    psm = ProducerStateManager(str(tmp_path))
    psm.unreplicated_txns = CountingDict()
    # B (first offset 3) ends before A (first offset 1): the map is in marker order, not first-offset order.
    for first, pid in ((1, PID), (3, PID + 1)):
        psm.ongoing_txns[first] = pid
    psm.complete_txn(CompletedTxn(PID + 1, 3, 5, is_aborted=False))
    psm.complete_txn(CompletedTxn(PID, 1, 6, is_aborted=True))
    psm.on_high_watermark_updated(6)
    assert psm.unreplicated_txns == {1: (PID, 6)} and psm.first_unstable_offset() == 1
    psm.on_high_watermark_updated(7)
    assert psm.unreplicated_txns == {} and psm.first_unstable_offset() is None
    # Loading replays every transaction with the log start offset as the high watermark, once per
    # transaction: each call must look at the oldest entry only (a full scan was quadratic).
    CountingDict.visited = 0
    count = 2000
    for i in range(count):
        psm.ongoing_txns[10 + 2 * i] = PID
        psm.complete_txn(CompletedTxn(PID, 10 + 2 * i, 11 + 2 * i, is_aborted=False))
        psm.on_high_watermark_updated(0)
    assert len(psm.unreplicated_txns) == count and CountingDict.visited == count
    psm.on_high_watermark_updated(11 + 2 * (count // 2))
    assert len(psm.unreplicated_txns) == count // 2 and min(psm.unreplicated_txns) == 10 + 2 * (count // 2)


def replicate(leader: UnifiedLog, follower: UnifiedLog, max_bytes: int) -> None:
    """The follower fetches from the leader as a ReplicaFetcher does, `max_bytes` at a time."""
    while follower.log_end_offset < leader.log_end_offset:
        fetched = leader.read(follower.log_end_offset, max_bytes).read_bytes()
        follower.append_as_follower(fetched, now=T0)


@pytest.mark.parametrize("fetch_bytes", [1, 1 << 20], ids=["a-fetch-per-batch", "one-fetch"])
def test_a_promoted_follower_answers_retries_of_the_last_five_batches_as_duplicates(tmp_path, fetch_bytes):
    """Issue 16's chaos duplicate, the promoted-follower path: a follower that replicated a
    producer's batches becomes leader and gets their retries (the old leader died before the
    acks). Producer state built while replicating must answer each of the last five with its
    original offsets and append nothing (Kafka's ProducerStateEntry keeps five batches)."""
    leader = UnifiedLog(str(tmp_path / "leader" / "payments-0"), LogConfig(), had_clean_shutdown=True, now=T0)
    follower = UnifiedLog(str(tmp_path / "follower" / "payments-0"), LogConfig(), had_clean_shutdown=True, now=T0)
    idempotent(leader, 0, pid=PID + 1)  # another producer first: offsets differ from sequences
    originals = [idempotent(leader, seq, count=3) for seq in range(0, 18, 3)]  # six batches
    replicate(leader, follower, fetch_bytes)
    end = follower.log_end_offset
    for original, seq in zip(originals[1:], range(3, 18, 3), strict=True):
        retry = follower.append_as_leader(producer_batch([b"r%d" % i for i in range(3)], producer_id=PID,
                                                         producer_epoch=0, base_sequence=seq),
                                          leader_epoch=1, now=T0)
        assert retry.duplicate, seq
        assert (retry.base_offset, retry.last_offset) == (original.base_offset, original.last_offset)
    assert follower.log_end_offset == end
    assert idempotent(follower, 18).base_offset == end  # and the next batch is in sequence


def test_a_follower_truncated_then_promoted_still_knows_the_last_five_batches(tmp_path):
    """The truncation path: a follower that truncated away a diverging tail (another producer's
    batch the old leader wrote last) rebuilds producer state from its log, and as leader answers
    the retries of the surviving batches as duplicates."""
    leader = UnifiedLog(str(tmp_path / "leader" / "payments-0"), LogConfig(), had_clean_shutdown=True, now=T0)
    follower = UnifiedLog(str(tmp_path / "follower" / "payments-0"), LogConfig(), had_clean_shutdown=True, now=T0)
    originals = [idempotent(leader, seq) for seq in range(0, 10, 2)]
    idempotent(leader, 0, pid=PID + 1)
    replicate(leader, follower, 1 << 20)
    assert follower.truncate_to(originals[-1].last_offset + 1)
    for original, seq in zip(originals, range(0, 10, 2), strict=True):
        retry = idempotent(follower, seq)
        assert retry.duplicate and retry.base_offset == original.base_offset, seq
