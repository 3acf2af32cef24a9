"""LogLoader: opening a partition directory's segments at start-up (Kafka's LogLoader).

It finishes or drops what a crash cut short (a compaction swap: `.cleaned`, `.swap`, `.deleted`
files; `.tmp` files; indexes without their log), opens the segments, recovers those an unclean
shutdown may have torn (from the recovery point on) and any whose indexes do not fit (their
`.txnindex` too, replaying the segment into a producer state of its own), and rebuilds the leader
epoch cache and producer state, giving back the offsets the log starts with.

`rebuild_producer_state` (Kafka's UnifiedLog.rebuildProducerState) and the producer-state
helpers it shares with appends (`complete_txn`, `first_control_marker`, `is_cleaned_away_marker`)
live here too, so that UnifiedLog imports this module and not the other way round.

Must not touch: anything outside its partition directory, the high watermark's later life, or
appends and reads (UnifiedLog's).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

from kbroker.log.append_origin import AppendOrigin
from kbroker.log.config import LogConfig
from kbroker.log.errors import LogError
from kbroker.log.index import (
    INDEX_FILE_SUFFIX,
    TIME_INDEX_FILE_SUFFIX,
    TXN_INDEX_FILE_SUFFIX,
    AbortedTxn,
    CorruptIndexError,
)
from kbroker.log.leader_epoch import LeaderEpochFileCache
from kbroker.log.log_segments import LogSegments, open_segment
from kbroker.log.producer_state import CompletedTxn, ProducerStateManager
from kbroker.log.records import (
    BatchHeader,
    Buffer,
    ControlRecordType,
    CorruptRecordError,
    iter_records,
    parse_control_record,
)
from kbroker.log.segment import (
    CLEANED_FILE_SUFFIX,
    DELETED_FILE_SUFFIX,
    LOG_FILE_SUFFIX,
    SWAP_FILE_SUFFIX,
    LogOffsetMetadata,
    LogSegment,
    filename_prefix_from_offset,
)
from kbroker.protocol.errors import Errors

log = logging.getLogger(__name__)

SEGMENT_FILE_SUFFIXES = (LOG_FILE_SUFFIX, INDEX_FILE_SUFFIX, TIME_INDEX_FILE_SUFFIX, TXN_INDEX_FILE_SUFFIX)


@dataclass(slots=True)
class LoadedLogOffsets:
    """What loading found (Kafka's LoadedLogOffsets)."""

    log_start_offset: int
    recovery_point: int
    next_offset_metadata: LogOffsetMetadata


class LogLoader:
    """Loads one partition directory into `segments` (empty on entry), `leader_epoch_cache` and
    `producer_state_manager`. `had_clean_shutdown=False` recovers segments from `recovery_point` on."""

    def __init__(
        self,
        directory: str,
        config: LogConfig,
        segments: LogSegments,
        leader_epoch_cache: LeaderEpochFileCache,
        producer_state_manager: ProducerStateManager,
        *,
        log_start_offset: int,
        recovery_point: int,
        had_clean_shutdown: bool,
    ) -> None:
        self.directory = directory
        self.config = config
        self.segments = segments
        self.leader_epoch_cache = leader_epoch_cache
        self.producer_state_manager = producer_state_manager
        self.log_start_offset = log_start_offset
        self.recovery_point = recovery_point
        self.had_clean_shutdown = had_clean_shutdown

    def load(self, now: int) -> LoadedLogOffsets:
        self._open_segments(self._remove_temporary_files())
        if not len(self.segments):
            self.segments.add(open_segment(self.directory, self.config, self.log_start_offset))
        needs_recovery = self._segments_needing_recovery()
        for segment in needs_recovery:
            if segment.base_offset not in self.segments:
                continue  # deleted after an earlier segment was truncated
            self._recover_segment(segment, now)
        next_offset = self._recover_active_tail(now)
        active = self.segments.active_segment
        log_start_offset = min(
            max(self.log_start_offset, self.segments.first_segment.base_offset), next_offset
        )
        recovery_point = (
            next_offset
            if self.had_clean_shutdown and not needs_recovery
            else min(self.recovery_point, next_offset)
        )
        cache = self.leader_epoch_cache
        if cache.was_malformed:
            self._rebuild_leader_epoch_cache(log_start_offset)
        cache.truncate_from_end(next_offset)
        cache.truncate_from_start(log_start_offset)
        # The high watermark starts at the log start offset (the replica layer raises it).
        rebuild_producer_state(
            self.segments, self.producer_state_manager, log_start_offset, next_offset, log_start_offset, now
        )
        return LoadedLogOffsets(
            log_start_offset, recovery_point, LogOffsetMetadata(next_offset, active.base_offset, active.size)
        )

    def _recover_active_tail(self, now: int) -> int:
        """The next offset after the active segment, recovering it if its tail is damaged anyway
        (a "clean" log whose last batch is torn)."""
        active = self.segments.active_segment
        active.offset_index.resize(self.config.segment_index_bytes)
        active.time_index.resize(self.config.segment_index_bytes)
        try:
            next_offset, end = active.scan_tail()
            if end != active.size:
                raise CorruptRecordError(f"{active.size - end} bytes after the last complete batch")
        except CorruptRecordError as err:
            log.warning("recovering %s in %s: %s", active, self.directory, err)
            self._recover_segment(active, now)
            next_offset = active.read_next_offset()
        return next_offset

    def _rebuild_leader_epoch_cache(self, log_start_offset: int) -> None:
        cache = self.leader_epoch_cache
        for _segment, header in iter_headers_from(self.segments, log_start_offset):
            latest = cache.latest_epoch()
            if header.partition_leader_epoch >= 0 and (
                latest is None or header.partition_leader_epoch > latest
            ):
                cache.assign(header.partition_leader_epoch, header.base_offset)
        cache.was_malformed = False

    def _remove_temporary_files(self) -> list[str]:
        """Finish or drop what an interrupted delete, clean or swap left behind.

        A `.log.swap` is a cleaned segment whose files were all complete (indexes are renamed to
        `.swap` before the log): it replaces every segment whose base offset lies in its offset
        range, then loses its suffix. An index `.swap` without its `.log.swap` belongs to a swap
        that had already moved its log into place (finish it), or to one that never got that far
        (its `.log.cleaned` is still there: drop it). Then `.cleaned`, `.deleted` and `.tmp` go.
        Returns the directory's names afterwards: one listing when there is nothing to remove (the
        usual start, for each of thousands of partitions)."""
        names = os.listdir(self.directory)
        if not _has_leftovers(names):
            return names
        swap_log_suffix = LOG_FILE_SUFFIX + SWAP_FILE_SUFFIX
        for name in sorted(n for n in names if n.endswith(swap_log_suffix)):
            self._complete_swap(int(name[:20]))
        names = os.listdir(self.directory)
        for name in names:
            path = os.path.join(self.directory, name)
            if name.endswith(SWAP_FILE_SUFFIX):
                final = path[: -len(SWAP_FILE_SUFFIX)]
                cleaned_log = os.path.join(self.directory, name[:20] + LOG_FILE_SUFFIX + CLEANED_FILE_SUFFIX)
                if os.path.exists(cleaned_log) or os.path.exists(final):
                    os.remove(path)
                else:
                    os.replace(path, final)
        for name in os.listdir(self.directory):
            if name.endswith((DELETED_FILE_SUFFIX, CLEANED_FILE_SUFFIX, ".tmp")):
                os.remove(os.path.join(self.directory, name))
        log_bases = {name[:20] for name in os.listdir(self.directory) if name.endswith(LOG_FILE_SUFFIX)}
        for name in os.listdir(self.directory):
            if name.endswith((INDEX_FILE_SUFFIX, TIME_INDEX_FILE_SUFFIX, TXN_INDEX_FILE_SUFFIX)):
                if name[:20] not in log_bases:
                    os.remove(os.path.join(self.directory, name))
        return os.listdir(self.directory)

    def _complete_swap(self, base_offset: int) -> None:
        """Delete the segments a swap segment replaces ([base, its next offset)), then rename it.
        Its files are found by base offset and the swap suffix, as Kafka's LogLoader does."""
        swapped = open_segment(
            self.directory, self.config, base_offset, file_suffix=SWAP_FILE_SUFFIX, writable_indexes=False
        )
        try:
            next_offset = max(swapped.read_next_offset(), base_offset + 1)
        except CorruptRecordError:
            next_offset = base_offset + 1  # cannot be: the swap was fsynced; replace its namesake only
        finally:
            swapped.close_handlers()
        for name in os.listdir(self.directory):
            in_range = name[:20].isdigit() and base_offset <= int(name[:20]) < next_offset
            if name.endswith(SEGMENT_FILE_SUFFIXES) and in_range:
                log.info("deleting %s in %s: replaced by a cleaned segment", name, self.directory)
                os.remove(os.path.join(self.directory, name))
        prefix = filename_prefix_from_offset(base_offset)
        for suffix in SEGMENT_FILE_SUFFIXES:
            path = os.path.join(self.directory, prefix + suffix + SWAP_FILE_SUFFIX)
            if os.path.exists(path):
                os.replace(path, path[: -len(SWAP_FILE_SUFFIX)])

    def _open_segments(self, names: list[str]) -> None:
        bases = sorted(
            int(name[:20])
            for name in names
            if name.endswith(LOG_FILE_SUFFIX)
            and len(name) == 20 + len(LOG_FILE_SUFFIX)
            and name[:20].isdigit()
        )
        for base in bases:
            self.segments.add(
                open_segment(self.directory, self.config, base, writable_indexes=base == bases[-1])
            )

    def _segments_needing_recovery(self) -> list[LogSegment]:
        """After an unclean shutdown, segments from the recovery point on; always, any segment
        whose index is missing or does not fit its log."""
        result = []
        for segment in self.segments.values():
            following = self.segments.higher_segment(segment.base_offset)
            next_base = following.base_offset if following is not None else None
            unflushed = next_base is None or next_base > self.recovery_point
            if not self.had_clean_shutdown and unflushed:
                result.append(segment)
            elif not _indexes_look_sane(segment, next_base, is_active=next_base is None):
                log.warning("rebuilding the indexes of %s in %s", segment, self.directory)
                result.append(segment)
        return result

    def _recover_segment(self, segment: LogSegment, now: int) -> None:
        """Rebuild the segment's indexes, its .txnindex included, as Kafka's recoverSegment: a
        producer state of its own, rebuilt up to the segment (dropping the snapshots past it,
        which may not vouch for what follows), sees each batch, so the aborts whose markers lie
        here are indexed again. A rolled segment's snapshot at its end (where rolling wrote one)
        saves replaying it twice; the active segment's batches are replayed again by the final
        rebuild, which keeps their metadata (a snapshot keeps only each producer's last batch)."""
        psm = ProducerStateManager(self.directory, self.producer_state_manager.producer_id_expiration_ms)
        rebuild_producer_state(self.segments, psm, self.log_start_offset, segment.base_offset,
                               self.log_start_offset, now)

        def on_batch(header: BatchHeader, data: bytes) -> None:
            epoch = header.partition_leader_epoch
            latest = self.leader_epoch_cache.latest_epoch()
            if epoch >= 0 and (latest is None or epoch > latest):
                self.leader_epoch_cache.assign(epoch, header.base_offset)
            if header.has_producer_id and not is_cleaned_away_marker(header):
                marker = first_control_marker(data, header) if header.is_control else None
                completed = psm.apply_batch(header, marker, AppendOrigin.REPLICATION)
                if completed is not None:
                    complete_txn(psm, segment, completed, self.log_start_offset)

        truncated = segment.recover(on_batch)
        following = self.segments.higher_segment(segment.base_offset)
        if truncated == 0 and following is not None:
            psm.update_map_end_offset(following.base_offset)
            psm.take_snapshot()
        if truncated > 0:
            log.warning(
                "truncated %d invalid bytes at the end of %s in %s", truncated, segment, self.directory
            )
            for later in self.segments.higher_segments(segment.base_offset):
                log.warning(
                    "deleting segment %d after the truncation point in %s", later.base_offset, self.directory
                )
                self.segments.remove(later.base_offset).delete()


_LEFTOVER_SUFFIXES = (SWAP_FILE_SUFFIX, DELETED_FILE_SUFFIX, CLEANED_FILE_SUFFIX, ".tmp")
_INDEX_SUFFIXES = (INDEX_FILE_SUFFIX, TIME_INDEX_FILE_SUFFIX, TXN_INDEX_FILE_SUFFIX)


def _has_leftovers(names: list[str]) -> bool:
    """Whether `_remove_temporary_files` has anything to do: a temporary file, or an index
    without its .log."""
    if any(name.endswith(_LEFTOVER_SUFFIXES) for name in names):
        return True
    log_bases = {name[:20] for name in names if name.endswith(LOG_FILE_SUFFIX)}
    return any(name.endswith(_INDEX_SUFFIXES) and name[:20] not in log_bases for name in names)


def _indexes_look_sane(segment: LogSegment, next_base: int | None, is_active: bool) -> bool:
    if segment.size > 0 and not os.path.exists(segment.offset_index.path):
        return False
    try:
        if is_active:
            segment.sanity_check()
        else:
            segment.offset_index.quick_check(segment.size, next_base)
            segment.time_index.quick_check(next_base)
    except (CorruptIndexError, CorruptRecordError) as err:
        log.warning("%s", err)
        return False
    return True


# ---------------------------------------------------------------------------------------------
# Producer state from the log: loading and truncation replay batches; appends complete transactions


def iter_headers_from(segments: LogSegments, offset: int) -> Iterator[tuple[LogSegment, BatchHeader]]:
    """Every batch header from the one holding `offset` on, with its segment."""
    for segment in segments.segments_from(offset):
        start = segment.offset_index.lookup(offset).position if offset > segment.base_offset else 0
        for header in segment.iter_batch_headers(start):
            yield segment, header


def rebuild_producer_state(
    segments: LogSegments,
    producer_state_manager: ProducerStateManager,
    log_start_offset: int,
    last_offset: int,
    high_watermark: int,
    now: int,
) -> None:
    """Latest snapshot, then the batches after it up to `last_offset` (headers only; markers need
    their record)."""
    psm = producer_state_manager
    psm.truncate_and_reload(log_start_offset, last_offset, now)
    start = max(psm.map_end_offset, log_start_offset)
    if start >= last_offset:
        psm.update_map_end_offset(last_offset)
        return
    replayed = False
    for segment, header in iter_headers_from(segments, start):
        if header.base_offset >= last_offset:
            break
        if header.last_offset < start or is_cleaned_away_marker(header):
            continue
        completed = psm.apply_batch(
            header, _control_marker_from_file(segment, header), AppendOrigin.REPLICATION
        )
        if completed is not None:
            complete_txn(psm, segment, completed, high_watermark, only_if_missing=True)
        replayed = True
    psm.update_map_end_offset(last_offset)
    if replayed:
        psm.take_snapshot()


def complete_txn(
    producer_state_manager: ProducerStateManager,
    segment: LogSegment,
    completed: CompletedTxn,
    high_watermark: int,
    only_if_missing: bool = False,
) -> None:
    """A transaction ended in `segment`: an abort goes into its .txnindex (unless already there
    when replaying), and producer state forgets the transaction."""
    psm = producer_state_manager
    last_stable_offset = psm.last_stable_offset(completed)
    if completed.is_aborted:
        txn = AbortedTxn(
            completed.producer_id, completed.first_offset, completed.last_offset, last_stable_offset
        )
        if not (only_if_missing and segment.txn_index.covers(txn.last_offset)):
            segment.txn_index.append(txn)
    psm.complete_txn(completed)
    psm.on_high_watermark_updated(high_watermark)


def _control_marker_from_file(
    segment: LogSegment, header: BatchHeader
) -> tuple[ControlRecordType, int] | None:
    if not (header.is_control and header.has_producer_id):
        return None
    data = segment.read_bytes(header.position, header.size)
    return first_control_marker(data, header._replace(position=0))


def is_cleaned_away_marker(header: BatchHeader) -> bool:
    """A control batch the log cleaner emptied: its transaction is gone from the log, so producer
    state ignores it (as Kafka's ProducerAppendInfo does)."""
    return header.is_control and header.record_count == 0


def first_control_marker(buf: Buffer, header: BatchHeader) -> tuple[ControlRecordType, int] | None:
    """The (type, coordinator epoch) of a control batch's marker record."""
    try:
        for record in iter_records(buf, header):
            return parse_control_record(record)
    except CorruptRecordError as err:
        raise LogError(
            Errors.CORRUPT_MESSAGE, f"invalid control batch at offset {header.base_offset}: {err}"
        ) from err
    return None
