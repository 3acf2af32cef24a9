"""Segments and indexes on disk: what kbroker writes is read back with independent parsers
(kafka-python for .log files, struct for .index/.timeindex), rolls happen on each condition,
reads return the right file regions."""

from __future__ import annotations

import os
import socket

import pytest

from kbroker.log.config import LogConfig
from kbroker.log.errors import LogError
from kbroker.log.records import CorruptRecordError, SimpleRecord, build_batch
from kbroker.log.segment import RECENT_APPENDS, RecentAppends
from kbroker.log.unified_log import UnifiedLog
from kbroker.protocol.errors import Errors
from kbroker.testing.batches import (
    COMPRESSIBLE,
    batches_with_positions,
    index_entries,
    producer_batch,
    read_batches,
)

T0 = 1_700_000_000_000


def open_log(tmp_path, **config) -> UnifiedLog:
    return UnifiedLog(str(tmp_path / "topic-0"), LogConfig(**config), had_clean_shutdown=True, now=T0)


def append_batches(
    log: UnifiedLog, count: int, *, size: int = 300, records: int = 3, timestamp=None, epoch=0
):
    infos = []
    for n in range(count):
        ts = T0 + n * 10 if timestamp is None else timestamp(n)
        infos.append(
            log.append_as_leader(producer_batch([b"v" * size] * records, timestamp=ts), epoch, now=T0)
        )
    return infos


def segment_files(log: UnifiedLog, suffix: str) -> list[str]:
    return sorted(os.path.join(log.directory, n) for n in os.listdir(log.directory) if n.endswith(suffix))


def test_log_file_is_kafkas_format_with_offsets_and_epoch(tmp_path):
    log = open_log(tmp_path)
    infos = append_batches(log, 10, epoch=4)
    assert [(i.base_offset, i.last_offset) for i in infos] == [(3 * n, 3 * n + 2) for n in range(10)]
    [path] = segment_files(log, ".log")
    assert os.path.basename(path) == "00000000000000000000.log"
    batches = batches_with_positions(path)
    assert [b.base_offset for _, b, _ in batches] == [3 * n for n in range(10)]
    assert {b.leader_epoch for _, b, _ in batches} == {4}
    assert [r.offset for _, _, records in batches for r in records] == list(range(30))
    assert log.log_end_offset == 30


@pytest.mark.parametrize("codec", [1, 2, 3, 4])
def test_every_codec_round_trips_through_the_log(tmp_path, codec):
    log = open_log(tmp_path)
    values = [COMPRESSIBLE + b"%d" % i for i in range(40)]
    log.append_as_leader(producer_batch([b"first"]), 0)
    log.append_as_leader(producer_batch(values, codec=codec, keys=[b"k%d" % i for i in range(40)]), 0)
    log.update_high_watermark(log.log_end_offset)
    fetched = log.read(1, 1 << 20).read_bytes()
    [(batch, records)] = read_batches(fetched)
    assert batch.compression_type == codec and batch.base_offset == 1
    assert [r.value for r in records] == values
    assert [r.offset for r in records] == list(range(1, 41))


def expected_index_entries(
    batch_sizes: list[int], last_offsets: list[int], interval: int
) -> list[tuple[int, int]]:
    """Kafka's rule, simulated: an entry (last offset, position) is added before an append once
    more than `interval` bytes were written since the previous entry."""
    entries, since_last, position = [], 0, 0
    for size, last_offset in zip(batch_sizes, last_offsets, strict=True):
        if since_last > interval:
            entries.append((last_offset, position))
            since_last = 0
        since_last += size
        position += size
    return entries


def test_offset_and_time_index_entries_match_the_batches(tmp_path):
    log = open_log(tmp_path, index_interval_bytes=1000)
    # Timestamps go up and down so that "max timestamp so far" matters.
    append_batches(log, 40, timestamp=lambda n: T0 + (n * 37) % 23 * 1000)
    log.close()
    [log_path] = segment_files(log, ".log")
    batches = batches_with_positions(log_path)
    offsets = index_entries(log_path[:-4] + ".index", ">ii")
    expected = expected_index_entries(
        [b.size_in_bytes for _, b, _ in batches], [b.last_offset for _, b, _ in batches], 1000
    )
    assert [(relative, position) for relative, position in offsets] == expected
    assert len(offsets) > 5
    by_last_offset = {b.last_offset: b for _, b, _ in batches}
    times = index_entries(log_path[:-4] + ".timeindex", ">qi")
    assert times == sorted(times) and len({t for t, _ in times}) == len(times)
    for timestamp, relative in times:
        batch = by_last_offset[relative]
        assert batch.max_timestamp == timestamp
        assert all(b.max_timestamp <= timestamp for b in by_last_offset.values() if b.last_offset <= relative)
    # The final entry (written on close) holds the segment's max timestamp.
    assert times[-1][0] == max(b.max_timestamp for _, b, _ in batches)


def test_index_lookup_and_translate_offset(tmp_path):
    log = open_log(tmp_path, index_interval_bytes=500)
    append_batches(log, 30)
    segment = log.active_segment
    positions = {b.last_offset: p for p, b, _ in batches_with_positions(segment.log_path)}
    for target in range(0, 90, 7):
        entry = segment.offset_index.lookup(target)
        assert entry.offset <= target and entry.position <= positions[target - target % 3 + 2]
        found = segment.translate_offset(target)
        assert found.position == positions[target - target % 3 + 2]
        assert found.offset == target - target % 3 + 2
    assert segment.translate_offset(90) is None


def test_active_index_is_preallocated_and_trimmed_on_roll_and_close(tmp_path):
    log = open_log(tmp_path, segment_bytes=4000, index_interval_bytes=400, segment_index_bytes=4096)
    append_batches(log, 30)
    assert log.number_of_segments > 2
    indexes = segment_files(log, ".index")
    for path in indexes[:-1]:
        assert os.path.getsize(path) == len(index_entries(path, ">ii")) * 8
        assert os.path.getsize(path[:-6] + ".timeindex") % 12 == 0
    assert os.path.getsize(indexes[-1]) == 4096
    assert os.path.getsize(indexes[-1][:-6] + ".timeindex") == 4096 - 4096 % 12
    log.close()
    assert os.path.getsize(indexes[-1]) == log.active_segment.offset_index.entries * 8
    assert os.path.getsize(indexes[-1]) < 4096


def test_roll_on_segment_bytes(tmp_path):
    log = open_log(tmp_path, segment_bytes=3000)
    append_batches(log, 20)
    sizes = [os.path.getsize(p) for p in segment_files(log, ".log")]
    assert len(sizes) > 3 and all(s <= 3000 for s in sizes)
    names = [os.path.basename(p)[:20] for p in segment_files(log, ".log")]
    assert names == [f"{s.base_offset:020d}" for s in log.log_segments()]
    # Every segment starts where the previous one ended.
    for previous, following in zip(log.log_segments(), log.log_segments()[1:], strict=False):
        assert previous.read_next_offset() == following.base_offset
    assert len(log.snapshot_files()) == log.number_of_segments - 1


def test_roll_on_segment_ms_by_message_timestamps(tmp_path):
    log = open_log(tmp_path, segment_ms=60_000)
    append_batches(log, 3, timestamp=lambda n: T0 + n * 1000)
    assert log.number_of_segments == 1
    append_batches(log, 1, timestamp=lambda _n: T0 + 61_000)  # asked per batch n; one batch here
    assert log.number_of_segments == 2 and log.active_segment.base_offset == 9


def test_each_segment_draws_its_own_roll_jitter_below_segment_jitter_ms(tmp_path):
    """Kafka's randomSegmentJitter: drawn when a segment is created, in [0, min(jitter, segment.ms));
    the segment rolls once its age passes segment.ms less its own jitter."""
    log = open_log(tmp_path, segment_ms=60_000, segment_jitter_ms=50_000)
    jitters = set()
    first = T0  # the timestamp of the active segment's first batch
    append_batches(log, 1, timestamp=lambda _n: first)
    for n in range(12):
        jitter = log.active_segment.roll_jitter_ms
        assert 0 <= jitter < 50_000
        jitters.add(jitter)
        append_batches(log, 1, timestamp=lambda _n: first + 60_000 - jitter)  # noqa: B023 (called at once)
        assert log.number_of_segments == n + 1  # not past segment.ms - jitter: no roll yet
        first += 60_001 - jitter  # this batch rolls, and is the new segment's first
        append_batches(log, 1, timestamp=lambda _n: first)  # noqa: B023
        assert log.number_of_segments == n + 2
    assert len(jitters) > 1  # random per segment, not segment.jitter.ms every time
    assert open_log(tmp_path / "none", segment_ms=60_000).active_segment.roll_jitter_ms == 0


def test_a_compacted_topic_rolls_by_max_compaction_lag_ms_too(tmp_path):
    """Kafka's LogConfig.maxSegmentMs: min(max.compaction.lag.ms, segment.ms) when compacting, so
    the active segment's records become cleanable within the lag."""
    compacted = open_log(tmp_path / "c", segment_ms=600_000, cleanup_policy="compact", max_compaction_lag_ms=60_000)
    deleted = open_log(tmp_path / "d", segment_ms=600_000, max_compaction_lag_ms=60_000)
    for log in (compacted, deleted):
        log.append_as_leader(producer_batch([b"v"], keys=[b"k"], timestamp=T0), 0, now=T0)
        log.append_as_leader(producer_batch([b"v"], keys=[b"k"], timestamp=T0 + 61_000), 0, now=T0)
    assert compacted.number_of_segments == 2
    assert deleted.number_of_segments == 1  # max.compaction.lag.ms means nothing without compaction


def test_roll_on_segment_ms_by_wall_clock_without_timestamps(tmp_path):
    log = open_log(tmp_path, segment_ms=60_000)
    no_timestamp = build_batch([SimpleRecord(b"k", b"v", (), -1)])
    log.append_as_leader(no_timestamp, 0, now=T0)
    log.active_segment.created_ms = T0
    log.append_as_leader(no_timestamp, 0, now=T0 + 30_000)
    assert log.number_of_segments == 1
    log.append_as_leader(no_timestamp, 0, now=T0 + 61_000)
    assert log.number_of_segments == 2


def test_roll_when_the_offset_index_is_full(tmp_path):
    log = open_log(tmp_path, segment_index_bytes=24, index_interval_bytes=1)
    append_batches(log, 12)
    assert log.number_of_segments >= 3
    for path in segment_files(log, ".index")[:-1]:
        assert len(index_entries(path, ">ii")) <= 3


def test_roll_when_offsets_do_not_fit_relative(tmp_path):
    log = open_log(tmp_path)
    log.append_as_follower(build_batch([SimpleRecord(b"k", b"v")], base_offset=0, partition_leader_epoch=0))
    far = 2**31 + 10
    log.truncate_to(1)  # no-op, keeps the segment
    info = log.append_as_follower(
        build_batch([SimpleRecord(b"k", b"v")], base_offset=far, partition_leader_epoch=0)
    )
    assert info.base_offset == far
    assert [s.base_offset for s in log.log_segments()] == [0, far]


def test_batch_larger_than_a_segment_is_rejected(tmp_path):
    log = open_log(tmp_path, segment_bytes=1000, max_message_bytes=100_000)
    with pytest.raises(LogError) as caught:
        log.append_as_leader(producer_batch([b"x" * 2000]), 0)
    assert caught.value.code == Errors.RECORD_LIST_TOO_LARGE
    assert log.log_end_offset == 0


def test_read_respects_max_bytes_min_one_message_and_high_watermark(tmp_path):
    log = open_log(tmp_path)
    append_batches(log, 10, size=1000)
    batch_size = os.path.getsize(log.active_segment.log_path) // 10
    log.update_high_watermark(15)
    # KIP-74: the first batch comes whole even when larger than max_bytes.
    small = log.read(0, 100)
    assert small.size == batch_size and small.first_entry_incomplete is False
    assert log.read(0, 100, min_one_message=False).size == 100
    assert log.read(0, 100, min_one_message=False).first_entry_incomplete
    # max_offset stops at the high watermark (a batch boundary).
    consumer = log.read(0, 1 << 20, max_offset=log.high_watermark)
    assert [b.base_offset for b, _ in read_batches(consumer.read_bytes())] == [0, 3, 6, 9, 12]
    assert consumer.high_watermark == 15 and consumer.log_end_offset == 30
    assert log.read(15, 1 << 20, max_offset=15).size == 0
    # A fetch offset inside a batch starts at that batch.
    inside = log.read(4, 1 << 20)
    assert read_batches(inside.read_bytes())[0][0].base_offset == 3
    # Followers read to the log end.
    assert len(read_batches(log.read(0, 1 << 20).read_bytes())) == 10
    assert log.read(30, 1 << 20).size == 0
    for bad in (-1, 31):
        with pytest.raises(LogError) as caught:
            log.read(bad, 100)
        assert caught.value.code == Errors.OFFSET_OUT_OF_RANGE


def test_read_cut_by_max_bytes_ends_at_the_last_whole_batch(tmp_path):
    """Kafka slices max_bytes and may end in a partial batch that the client drops and fetches
    again; kbroker's slice stops at the last batch that fits (the first one still whole when
    larger, KIP-74), found from the offset index without reading every header."""
    log = open_log(tmp_path, index_interval_bytes=4096)
    sizes = [300 * (1 + n % 7) for n in range(60)]  # batches of uneven sizes, several per index entry
    for n, size in enumerate(sizes):
        log.append_as_leader(producer_batch([b"v" * size] * 3, timestamp=T0 + n), 0, now=T0)
    ends = batch_ends(log)
    total = ends[-1]
    for max_bytes in range(ends[0] - 1, total + 200, 331):
        fetched = log.read(0, max_bytes)
        expected = max([end for end in ends if end <= max_bytes], default=ends[0])
        assert fetched.size == expected, max_bytes
        assert [b.base_offset for b, _ in read_batches(fetched.read_bytes())] == [3 * n for n in range(ends.index(expected) + 1)]
    # From a later offset too, and the log end (not the limit) still ends a read anywhere.
    start = ends[9]
    assert log.read(30, ends[20] - start + 5).size == ends[20] - start
    assert log.read(30, total).size == total - start
    # Without min_one_message a limit inside the first batch still cuts it (first_entry_incomplete).
    assert log.read(0, 100, min_one_message=False).size == 100


def batch_ends(log: UnifiedLog) -> list[int]:
    """The file position after each batch of the single segment, from the length fields."""
    [path] = segment_files(log, ".log")
    with open(path, "rb") as file:
        data = file.read()
    ends, position = [], 0
    while position < len(data):
        position += int.from_bytes(data[position + 8 : position + 12], "big") + 12
        ends.append(position)
    return ends


def test_read_continues_in_the_next_segment(tmp_path):
    log = open_log(tmp_path, segment_bytes=2500)
    append_batches(log, 10)
    first, second = log.log_segments()[:2]
    fetched = log.read(second.base_offset - 1, 1 << 20)
    assert fetched.fetch_offset_metadata.segment_base_offset == first.base_offset
    after = log.read(second.base_offset, 1 << 20)
    assert after.fetch_offset_metadata.segment_base_offset == second.base_offset
    assert read_batches(after.read_bytes())[0][0].base_offset == second.base_offset


def test_file_region_can_be_sent_with_sendfile(tmp_path):
    log = open_log(tmp_path)
    append_batches(log, 5)
    region = log.read(3, 1 << 20).records
    left, right = socket.socketpair()
    with left, right:
        sent = os.sendfile(left.fileno(), region.fileno(), region.position, region.length)
        received = b""
        while len(received) < sent:
            received += right.recv(1 << 16)
    assert sent == region.length and received == region.read_bytes()
    assert [b.base_offset for b, _ in read_batches(received)] == [3, 6, 9, 12]


def file_bytes(region) -> bytes:
    return os.pread(region.fileno(), region.length, region.position)


def test_a_read_within_the_latest_large_append_carries_its_bytes(tmp_path):
    """RECENT_APPENDS: what a follower fetches right after a large append is sent from memory;
    those bytes are the file's, and a read reaching before that append reads the file."""
    log = open_log(tmp_path)
    append_batches(log, 2)  # small: not kept
    big = log.append_as_leader(producer_batch([os.urandom(40_000), os.urandom(40_000)], timestamp=T0), 3, now=T0)
    region = log.read(big.base_offset, 1 << 20).records
    assert region.data is not None and bytes(region.data) == file_bytes(region) == region.read_bytes()
    assert [b.base_offset for b, _ in read_batches(bytes(region.data))] == [big.base_offset]
    assert log.read(0, 1 << 20).records.data is None  # starts in the small batches before it
    assert log.read(0, 100, min_one_message=True).records.data is None


def test_the_header_of_the_latest_large_append_is_read_from_memory(tmp_path):
    """A follower's fetch of what was just appended finds its batch header in RECENT_APPENDS
    rather than with a pread of the file (one per fetch): shown by changing the file's copy,
    which appended bytes never are otherwise, under the kept one."""
    log = open_log(tmp_path)
    append_batches(log, 2)
    big = log.append_as_leader(producer_batch([os.urandom(70_000)], timestamp=T0), 3, now=T0)
    region = log.read(big.base_offset, 1 << 20).records
    kept = bytes(region.data)
    os.pwrite(region.fileno(), b"\xff" * 64, region.position)  # the file's header, not the kept one
    again = log.read(big.base_offset, 1 << 20).records
    assert (again.position, again.length) == (region.position, region.length) and bytes(again.data) == kept
    RECENT_APPENDS.forget(log.active_segment)
    with pytest.raises(CorruptRecordError):  # without the kept bytes the header is the file's
        log.read(big.base_offset, 1 << 20)


def test_truncation_drops_the_kept_bytes_and_a_new_append_replaces_them(tmp_path):
    """A leader truncated (it became a follower of a newer epoch) and appending again at the same
    position: a read must never carry the bytes that were truncated away."""
    log = open_log(tmp_path)
    append_batches(log, 1)
    first = log.append_as_leader(producer_batch([b"a" * 70_000], timestamp=T0), 1, now=T0)
    assert log.read(first.base_offset, 1 << 20).records.data is not None
    log.truncate_to(first.base_offset)
    assert not RECENT_APPENDS.entries.keys() & set(log.segments.values())
    second = log.append_as_leader(producer_batch([b"b" * 70_000], timestamp=T0), 2, now=T0)
    assert second.base_offset == first.base_offset
    region = log.read(second.base_offset, 1 << 20).records
    assert region.data is not None and bytes(region.data) == file_bytes(region)
    assert b"b" * 1000 in bytes(region.data) and b"a" * 1000 not in bytes(region.data)
    log.close()
    assert not RECENT_APPENDS.entries.keys() & set(log.segments.values())


def test_a_follower_append_is_not_kept(tmp_path):
    """Nobody fetches from a follower: its appends' buffers are not held."""
    log = open_log(tmp_path)
    info = log.append_as_follower(build_batch([SimpleRecord(b"k", b"a" * 70_000)], partition_leader_epoch=1))
    assert log.read(info.base_offset, 1 << 20).records.data is None


def test_recent_appends_stay_within_their_budget():
    recent = RecentAppends(4 * RecentAppends.MIN_BYTES)
    segments = [object() for _ in range(5)]
    for n, segment in enumerate(segments):
        recent.remember(segment, 0, bytes([n]) * RecentAppends.MIN_BYTES)  # type: ignore[arg-type]
    assert list(recent.entries) == segments[1:] and recent.bytes == 4 * RecentAppends.MIN_BYTES
    assert recent.data(segments[0], 0, 10) is None  # type: ignore[arg-type]
    assert bytes(recent.data(segments[4], 10, 5)) == b"\x04" * 5  # type: ignore[arg-type]
    assert recent.data(segments[4], 10, RecentAppends.MIN_BYTES) is None  # type: ignore[arg-type]
    # A slice of a buffer much larger than itself would hold all of it: not kept.
    frame = bytearray(4 * RecentAppends.MIN_BYTES)
    recent.remember(segments[4], 0, memoryview(frame)[: RecentAppends.MIN_BYTES])  # type: ignore[arg-type]
    assert segments[4] not in recent.entries and recent.bytes == 3 * RecentAppends.MIN_BYTES
    # The log maintenance drops what is no longer recent, oldest first.
    kept_at = recent.entries[segments[3]][3]
    recent.drop_idle(kept_at + RecentAppends.IDLE_S / 2)
    assert list(recent.entries) == segments[1:4]
    recent.drop_idle(kept_at + 2 * RecentAppends.IDLE_S)
    assert recent.entries == {} and recent.bytes == 0


def test_list_offsets(tmp_path):
    log = open_log(tmp_path, segment_bytes=2000)
    # Batch n holds 3 records with timestamps T0 + 100 n + (0, 1, 2); batch 5 carries the maximum.
    for n in range(10):
        ts = T0 + 100 * n + (5000 if n == 5 else 0)
        log.append_as_leader(producer_batch([b"x" * 100] * 3, timestamp=ts), leader_epoch=n // 4)
    assert log.fetch_offset_by_timestamp(-2) == (-1, 0, 0)
    assert log.fetch_offset_by_timestamp(-1) == (-1, 30, 2)
    assert log.fetch_offset_by_timestamp(-3) == (T0 + 5502, 17, 1)
    assert log.fetch_offset_by_timestamp(T0 + 301) == (T0 + 301, 10, 0)
    # The first record in offset order with a timestamp >= target, not the closest timestamp.
    assert log.fetch_offset_by_timestamp(T0 + 899) == (T0 + 5500, 15, 1)
    assert log.fetch_offset_by_timestamp(T0 + 5501) == (T0 + 5501, 16, 1)
    assert log.fetch_offset_by_timestamp(T0) == (T0, 0, 0)
    assert log.fetch_offset_by_timestamp(T0 + 99_999) is None
