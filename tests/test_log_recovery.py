"""UnifiedLog lifecycle on real files: retention by time and size, DeleteRecords, truncation,
the leader epoch cache, and recovery (torn tails, corrupt indexes, clean reopen without rescan)."""

from __future__ import annotations

import os

import pytest

from kbroker.log.config import LogConfig
from kbroker.log.errors import LogError
from kbroker.log.leader_epoch import LeaderEpochFileCache
from kbroker.log.records import SimpleRecord, build_batch
from kbroker.log.unified_log import UnifiedLog
from kbroker.protocol.errors import Errors
from kbroker.testing.batches import batches_with_positions, index_entries, producer_batch, read_batches

T0 = 1_700_000_000_000
DAY = 24 * 3600 * 1000


def open_log(path, clean=True, recovery_point=0, **config) -> UnifiedLog:
    return UnifiedLog(
        str(path / "orders-3"),
        LogConfig(**config),
        had_clean_shutdown=clean,
        recovery_point=recovery_point,
        now=T0,
    )


def fill(log: UnifiedLog, count: int, timestamp=lambda n: T0 + n, epoch=0) -> None:
    for n in range(count):
        log.append_as_leader(producer_batch([b"r" * 200] * 2, timestamp=timestamp(n)), epoch, now=T0)


def all_offsets(log: UnifiedLog) -> list[int]:
    offsets = []
    for segment in log.log_segments():
        for _position, _batch, records in batches_with_positions(segment.log_path):
            offsets.extend(r.offset for r in records)
    return offsets


# --- retention ---------------------------------------------------------------------------


def test_retention_by_time_deletes_old_segments_and_moves_the_log_start(tmp_path):
    log = open_log(tmp_path, segment_bytes=2000, retention_ms=DAY, file_delete_delay_ms=1000)
    fill(log, 12, timestamp=lambda n: T0 - 3 * DAY if n < 8 else T0)
    log.update_high_watermark(log.log_end_offset)
    before = [s.base_offset for s in log.log_segments()]
    deleted = log.delete_old_segments(now=T0)
    assert deleted >= 1
    assert log.log_start_offset == log.log_segments()[0].base_offset > 0
    # Every remaining segment holds a recent record or is the one straddling the boundary.
    assert all(s.largest_timestamp == T0 or s is log.log_segments()[0] for s in log.log_segments())
    assert log.log_start_offset <= 16 and all_offsets(log) == list(range(log.log_start_offset, 24))
    # Files wait as .deleted for file.delete.delay.ms, then go.
    pending = [n for n in os.listdir(log.directory) if n.endswith(".deleted")]
    assert len(pending) == 3 * deleted
    assert log.delete_pending_files(now=T0) == 0
    assert log.delete_pending_files(now=T0 + 10**12) == deleted
    assert not [n for n in os.listdir(log.directory) if n.endswith(".deleted")]
    assert before[deleted:] == [s.base_offset for s in log.log_segments()]
    with pytest.raises(LogError) as caught:
        log.read(0, 100)
    assert caught.value.code == Errors.OFFSET_OUT_OF_RANGE


def test_retention_never_passes_the_high_watermark(tmp_path):
    log = open_log(tmp_path, segment_bytes=2000, retention_ms=DAY)
    fill(log, 12, timestamp=lambda _n: T0 - 3 * DAY)  # fill asks per record n; all are old
    log.update_high_watermark(0)
    assert log.delete_old_segments(now=T0) == 0
    log.update_high_watermark(log.log_segments()[2].base_offset)
    assert log.delete_old_segments(now=T0) == 2


def test_retention_of_everything_rolls_a_fresh_segment(tmp_path):
    log = open_log(tmp_path, retention_ms=DAY)
    fill(log, 3, timestamp=lambda _n: T0 - 3 * DAY)  # fill asks per record n; all are old
    log.update_high_watermark(log.log_end_offset)
    assert log.delete_old_segments(now=T0) == 1
    assert [s.base_offset for s in log.log_segments()] == [6]
    assert (log.log_start_offset, log.log_end_offset) == (6, 6)
    log.append_as_leader(producer_batch([b"x"]), 0)
    assert log.log_end_offset == 7


def test_retention_by_size(tmp_path):
    log = open_log(tmp_path, segment_bytes=2000, retention_bytes=5000)
    fill(log, 20)
    log.update_high_watermark(log.log_end_offset)
    total_before = log.size
    log.delete_old_segments(now=T0)
    assert log.size <= 5000 + 2000 and log.size < total_before
    # Removing one more segment would have gone below retention.bytes.
    assert log.size - log.log_segments()[0].size < 5000
    assert log.log_start_offset == log.log_segments()[0].base_offset


def test_delete_records_moves_log_start_then_retention_drops_segments(tmp_path):
    log = open_log(tmp_path, segment_bytes=2000)
    fill(log, 12)
    log.update_high_watermark(20)
    with pytest.raises(LogError) as caught:
        log.maybe_increment_log_start_offset(21)
    assert caught.value.code == Errors.OFFSET_OUT_OF_RANGE
    assert log.maybe_increment_log_start_offset(11)
    assert log.log_start_offset == 11
    assert log.read(11, 100).size > 0
    with pytest.raises(LogError):
        log.read(10, 100)
    assert log.fetch_offset_by_timestamp(-2).offset == 11
    log.delete_old_segments(now=T0)
    assert log.log_segments()[0].base_offset <= 11 < log.log_segments()[1].base_offset
    assert log.log_start_offset == 11


# --- truncation and leader epochs ---------------------------------------------------------


def test_truncate_to_drops_later_segments_and_epochs(tmp_path):
    log = open_log(tmp_path, segment_bytes=2000)
    fill(log, 6, epoch=1)
    fill(log, 6, epoch=2)
    assert log.leader_epoch_cache.entries == [(1, 0), (2, 12)]
    log.update_high_watermark(24)
    assert log.truncate_to(10)
    assert log.log_end_offset == 10 and log.high_watermark == 10
    assert all_offsets(log) == list(range(10))
    assert log.leader_epoch_cache.entries == [(1, 0)]
    assert log.end_offset_for_epoch(1) == (1, 10)
    info = log.append_as_leader(producer_batch([b"again"]), 3)
    assert info.base_offset == 10
    assert log.leader_epoch_cache.entries == [(1, 0), (3, 10)]
    assert not log.truncate_to(50)


def test_truncate_fully_and_start_at(tmp_path):
    log = open_log(tmp_path, segment_bytes=2000)
    fill(log, 8)
    log.truncate_fully_and_start_at(100)
    assert (log.log_start_offset, log.log_end_offset, log.number_of_segments) == (100, 100, 1)
    assert log.append_as_leader(producer_batch([b"x"]), 0).base_offset == 100
    assert os.path.exists(os.path.join(log.directory, "00000000000000000100.log"))


def test_leader_epoch_cache_rules_and_file(tmp_path):
    cache = LeaderEpochFileCache(str(tmp_path))
    cache.assign(1, 0)
    cache.assign(1, 5)  # same epoch, later offset: no change
    cache.assign(3, 10)
    cache.assign(5, 20)
    with open(tmp_path / "leader-epoch-checkpoint") as file:
        assert file.read() == "0\n3\n1 0\n3 10\n5 20\n"
    assert cache.end_offset_for(5, 99) == (5, 99)
    assert cache.end_offset_for(3, 99) == (3, 20)
    assert cache.end_offset_for(4, 99) == (3, 20)
    assert cache.end_offset_for(0, 99) == (0, 0)
    assert cache.end_offset_for(-1, 99) == (-1, -1)
    assert cache.end_offset_for(7, 99) == (-1, -1)
    assert cache.epoch_for_offset(15) == 3
    cache.assign(4, 15)  # an epoch below the latest removes the entries it contradicts
    assert cache.entries == [(1, 0), (3, 10), (4, 15)]
    cache.truncate_from_start(12)
    assert cache.entries == [(3, 12), (4, 15)]
    cache.truncate_from_end(15)
    assert LeaderEpochFileCache(str(tmp_path)).entries == [(3, 12)]


def test_follower_append_keeps_leader_offsets_and_epochs(tmp_path):
    log = open_log(tmp_path)
    first = build_batch(
        [SimpleRecord(b"a", b"1"), SimpleRecord(b"b", b"2")], base_offset=0, partition_leader_epoch=2
    )
    second = build_batch([SimpleRecord(b"c", b"3")], base_offset=2, partition_leader_epoch=3)
    info = log.append_as_follower(first + second)
    assert (info.base_offset, info.last_offset, log.log_end_offset) == (0, 2, 3)
    assert log.leader_epoch_cache.entries == [(2, 0), (3, 2)]
    with pytest.raises(LogError):
        log.append_as_follower(
            build_batch([SimpleRecord(b"d", b"4")], base_offset=1, partition_leader_epoch=3)
        )


# --- recovery ---------------------------------------------------------------------------


def test_torn_tail_is_truncated_on_unclean_reopen(tmp_path):
    log = open_log(tmp_path)
    fill(log, 10)
    path = log.active_segment.log_path
    good_size = os.path.getsize(path)
    log.close_handlers()  # crash: no close, no trimming
    with open(path, "r+b") as file:
        file.truncate(good_size - 150)  # cut the last batch in the middle
        file.seek(0, os.SEEK_END)
        file.write(os.urandom(500))  # and garbage after it
    reopened = open_log(tmp_path, clean=False)
    assert reopened.log_end_offset == 18
    assert os.path.getsize(path) < good_size
    assert [b.last_offset for _, b, _ in batches_with_positions(path)][-1] == 17
    assert reopened.append_as_leader(producer_batch([b"next"]), 0).base_offset == 18
    assert all_offsets(reopened) == list(range(19))


def test_garbage_batch_with_a_bad_crc_stops_recovery(tmp_path):
    log = open_log(tmp_path)
    fill(log, 4)
    path = log.active_segment.log_path
    log.close_handlers()
    fake = bytearray(producer_batch([b"z"]))
    fake[-1] ^= 0xFF  # valid framing, wrong CRC
    with open(path, "ab") as file:
        file.write(fake)
    reopened = open_log(tmp_path, clean=False)
    assert reopened.log_end_offset == 8
    assert len(batches_with_positions(path)) == 4


def test_clean_reopen_does_not_rescan_but_unclean_reopen_does(tmp_path):
    log = open_log(tmp_path, segment_bytes=2000)
    fill(log, 12)
    first_segment = log.log_segments()[0].log_path
    log.close()
    # Flip a byte inside the second batch of the first (inactive) segment.
    positions = [p for p, _, _ in batches_with_positions(first_segment)]
    with open(first_segment, "r+b") as file:
        file.seek(positions[1] + 70)
        byte = file.read(1)
        file.seek(positions[1] + 70)
        file.write(bytes([byte[0] ^ 0xFF]))
    clean = open_log(tmp_path, clean=True)
    assert clean.log_end_offset == 24 and clean.number_of_segments > 2
    assert os.path.getsize(first_segment) > positions[2]  # untouched
    clean.close()
    unclean = open_log(tmp_path, clean=False, recovery_point=0)
    assert unclean.log_end_offset == 2 and unclean.number_of_segments == 1
    assert os.path.getsize(first_segment) == positions[1]


def test_unclean_reopen_only_rescans_from_the_recovery_point(tmp_path):
    log = open_log(tmp_path, segment_bytes=2000)
    fill(log, 12)
    segments = log.log_segments()
    log.flush()
    recovery_point = log.recovery_point
    assert recovery_point == 24
    log.close_handlers()
    first = segments[0].log_path
    with open(first, "r+b") as file:
        file.seek(100)
        file.write(b"\x00" * 8)  # damage below the recovery point goes unnoticed, as in Kafka
    reopened = open_log(tmp_path, clean=False, recovery_point=segments[-1].base_offset)
    assert reopened.log_end_offset == 24


def test_corrupt_index_is_rebuilt(tmp_path):
    config = {"segment_bytes": 4000, "index_interval_bytes": 500}
    log = open_log(tmp_path, **config)
    fill(log, 20)
    log.close()
    index_path = log.log_segments()[0].offset_index.path
    good = index_entries(index_path, ">ii")
    assert len(good) >= 3
    with open(index_path, "r+b") as file:
        file.seek(len(good) * 8 - 8)
        file.write(b"\x7f\x00\x00\x00\x7f\x00\x00\x00")  # last entry points far past the segment
    reopened = open_log(tmp_path, clean=True, **config)
    assert index_entries(index_path, ">ii") == good
    assert reopened.read(15, 1 << 20).read_bytes()[:8] == (14).to_bytes(8, "big")
    reopened.close()
    # A missing index is rebuilt too.
    os.remove(index_path)
    open_log(tmp_path, clean=True, **config).close()
    assert index_entries(index_path, ">ii") == good


def test_untrimmed_active_index_after_a_crash_is_rebuilt(tmp_path):
    log = open_log(tmp_path, index_interval_bytes=500)
    fill(log, 10)
    index_path = log.active_segment.offset_index.path
    entries = log.active_segment.offset_index.entries
    log.close_handlers()
    assert os.path.getsize(index_path) == 10 * 1024 * 1024  # still preallocated
    reopened = open_log(tmp_path, clean=False, index_interval_bytes=500)
    assert reopened.active_segment.offset_index.entries == entries
    assert reopened.read(9, 1 << 20).size > 0
    assert read_batches(reopened.read(9, 1 << 20).read_bytes())[0][0].base_offset == 8


def test_a_torn_tail_is_repaired_even_when_the_shutdown_looked_clean(tmp_path):
    log = open_log(tmp_path)
    fill(log, 5)
    log.close()
    path = log.active_segment.log_path
    with open(path, "ab") as file:
        file.write(producer_batch([b"half"])[:40])
    reopened = open_log(tmp_path, clean=True)
    assert reopened.log_end_offset == 10
    reopened.append_as_leader(producer_batch([b"whole"]), 0)
    assert all_offsets(reopened) == list(range(11))


def test_a_malformed_leader_epoch_checkpoint_is_rebuilt_from_the_batches(tmp_path):
    log = open_log(tmp_path)
    fill(log, 2, epoch=1)
    fill(log, 2, epoch=4)
    log.close()
    with open(os.path.join(log.directory, "leader-epoch-checkpoint"), "w") as file:
        file.write("0\n7\nnonsense\n")
    reopened = open_log(tmp_path)
    assert reopened.leader_epoch_cache.entries == [(1, 0), (4, 4)]
    assert LeaderEpochFileCache(reopened.directory).entries == [(1, 0), (4, 4)]
