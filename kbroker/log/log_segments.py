"""LogSegments: a partition's segments in base offset order (Kafka's LogSegments), with the lookups
the log needs: the segment that may hold an offset (floor), the ones after it (higher), the active
(last) one, the segments covering an offset range. Plus `open_segment`, which opens or creates a
segment with the index settings of a LogConfig.

It keeps the segments in a list sorted by base offset (the read path slices it) beside a dict by
base offset (membership and `get` in O(1)); adding and removing segments is rare (rolls,
retention, truncation, compaction swaps), so they pay for the sorting.

Must not touch: files other than through LogSegment, the log's offsets, producer state or
anything outside kbroker/log.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator

from kbroker.log.config import LogConfig
from kbroker.log.segment import LogSegment


def open_segment(
    directory: str,
    config: LogConfig,
    base_offset: int,
    *,
    file_suffix: str = "",
    writable_indexes: bool = True,
) -> LogSegment:
    """The segment at `base_offset` in `directory` (files created if missing), indexed as
    `config` says (index.interval.bytes, segment.index.bytes); a .log created here is
    preallocated to segment.bytes when `config.preallocate` (Kafka's LogConfig.initFileSize), and
    the segment draws its roll jitter (segment.jitter.ms)."""
    return LogSegment(
        directory,
        base_offset,
        index_interval_bytes=config.index_interval_bytes,
        max_index_size=config.segment_index_bytes,
        file_suffix=file_suffix,
        writable_indexes=writable_indexes,
        init_file_size=config.segment_bytes if config.preallocate else 0,
        roll_jitter_ms=config.random_segment_jitter(),
    )


class LogSegments:
    """Base offset -> LogSegment, iterated in offset order. Not thread-safe: the log's owner (the
    event loop) is its only user."""

    __slots__ = ("_base_offsets", "_segments", "_by_base_offset")

    def __init__(self) -> None:
        self._base_offsets: list[int] = []
        self._segments: list[LogSegment] = []
        self._by_base_offset: dict[int, LogSegment] = {}

    def add(self, segment: LogSegment) -> None:
        """Add a segment; one already at its base offset is replaced (a compaction swap)."""
        base = segment.base_offset
        if base in self._by_base_offset:
            self._segments[self._base_offsets.index(base)] = segment
        else:
            index = bisect_right(self._base_offsets, base)
            self._base_offsets.insert(index, base)
            self._segments.insert(index, segment)
        self._by_base_offset[base] = segment

    def remove(self, base_offset: int) -> LogSegment:
        segment = self._by_base_offset.pop(base_offset)
        index = self._base_offsets.index(base_offset)
        del self._base_offsets[index]
        del self._segments[index]
        return segment

    def get(self, base_offset: int) -> LogSegment | None:
        return self._by_base_offset.get(base_offset)

    def __contains__(self, base_offset: object) -> bool:
        return base_offset in self._by_base_offset

    def __len__(self) -> int:
        return len(self._segments)

    def __iter__(self) -> Iterator[LogSegment]:
        return iter(self._segments)

    def values(self) -> list[LogSegment]:
        """Every segment in offset order (a copy: callers may delete segments while iterating)."""
        return list(self._segments)

    def base_offsets(self) -> list[int]:
        return list(self._base_offsets)

    @property
    def first_segment(self) -> LogSegment:
        return self._segments[0]

    @property
    def active_segment(self) -> LogSegment:
        """The last segment, the one appends go to."""
        return self._segments[-1]

    def floor_segment(self, offset: int) -> LogSegment | None:
        """The segment with the largest base offset <= `offset`: the one that may hold it."""
        index = bisect_right(self._base_offsets, offset) - 1
        return self._segments[index] if index >= 0 else None

    def higher_segment(self, base_offset: int) -> LogSegment | None:
        """The first segment whose base offset is > `base_offset`."""
        index = bisect_right(self._base_offsets, base_offset)
        return self._segments[index] if index < len(self._segments) else None

    def higher_segments(self, offset: int) -> list[LogSegment]:
        """The segments whose base offset is > `offset`."""
        return self._segments[bisect_right(self._base_offsets, offset) :]

    def segments_from(self, offset: int) -> list[LogSegment]:
        """The segment that may hold `offset` and every later one (all of them if it lies before
        the first): where a read or a scan from `offset` looks."""
        # On every read: bisect inline rather than through floor_segment.
        return self._segments[max(bisect_right(self._base_offsets, offset) - 1, 0) :]

    def values_between(self, from_offset: int, to_offset: int) -> list[LogSegment]:
        """Segments that may hold offsets in [from_offset, to_offset) (Kafka's values(from, to)):
        the one holding `from_offset` and every later one starting below `to_offset`."""
        return [segment for segment in self.segments_from(from_offset) if segment.base_offset < to_offset]

    @property
    def size_in_bytes(self) -> int:
        return sum(segment.size for segment in self._segments)
