"""LeaderEpochFileCache: the (leader epoch, start offset) history of one partition, persisted in
its `leader-epoch-checkpoint` (KAFKA-FACTS §3, §4).

Answers OffsetForLeaderEpoch (`end_offset_for`) and ListOffsets' leader epochs, and follows the
log when it is truncated at either end. Only this one file; the log calls it.
"""

from __future__ import annotations

import bisect
import logging
import os
from typing import NamedTuple

from kbroker.log.checkpoint import (
    LEADER_EPOCH_CHECKPOINT_FILE,
    MalformedCheckpointError,
    read_checkpoint,
    write_checkpoint,
)

log = logging.getLogger(__name__)

UNDEFINED_EPOCH = -1
UNDEFINED_EPOCH_OFFSET = -1


class EpochEntry(NamedTuple):
    epoch: int
    start_offset: int


class LeaderEpochFileCache:
    """Epochs with strictly increasing start offsets, newest last."""

    def __init__(self, directory: str):
        self.path = os.path.join(directory, LEADER_EPOCH_CHECKPOINT_FILE)
        self._entries: list[EpochEntry] = []
        self.was_malformed = False
        try:
            for entry in read_checkpoint(self.path) or []:
                if len(entry) != 2:
                    raise MalformedCheckpointError(f"{self.path}: malformed line {' '.join(entry)!r}")
                self._entries.append(EpochEntry(int(entry[0]), int(entry[1])))
        except (MalformedCheckpointError, ValueError) as err:
            # The owner rebuilds the history from the batches' partitionLeaderEpoch fields.
            log.warning("ignoring %s: %s", self.path, err)
            self._entries = []
            self.was_malformed = True

    @property
    def entries(self) -> list[EpochEntry]:
        return list(self._entries)

    def latest_epoch(self) -> int | None:
        return self._entries[-1].epoch if self._entries else None

    def earliest_entry(self) -> EpochEntry | None:
        return self._entries[0] if self._entries else None

    def assign(self, epoch: int, start_offset: int) -> None:
        """Record that `epoch` starts at `start_offset`; drops entries this one contradicts."""
        if epoch < 0 or start_offset < 0:
            raise ValueError(f"cannot assign epoch {epoch} at offset {start_offset}")
        if not self._is_update_needed(epoch, start_offset):
            return
        while self._entries and (
            self._entries[-1].epoch >= epoch or self._entries[-1].start_offset >= start_offset
        ):
            self._entries.pop()
        self._entries.append(EpochEntry(epoch, start_offset))
        self._flush()

    def _is_update_needed(self, epoch: int, start_offset: int) -> bool:
        if not self._entries:
            return True
        latest = self._entries[-1]
        return epoch != latest.epoch or start_offset < latest.start_offset

    def end_offset_for(self, requested_epoch: int, log_end_offset: int) -> tuple[int, int]:
        """(epoch, end offset) for OffsetForLeaderEpoch: the latest epoch ends at the LEO; an older
        one ends where the next higher epoch starts, paired with the largest epoch <= requested."""
        if requested_epoch == UNDEFINED_EPOCH:
            return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
        if self._entries and self._entries[-1].epoch == requested_epoch:
            return requested_epoch, log_end_offset
        epochs = [entry.epoch for entry in self._entries]
        higher = bisect.bisect_right(epochs, requested_epoch)
        if higher == len(epochs):
            return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
        if higher == 0:
            return requested_epoch, self._entries[0].start_offset
        return self._entries[higher - 1].epoch, self._entries[higher].start_offset

    def epoch_for_offset(self, offset: int) -> int | None:
        """The epoch whose range contains `offset`."""
        result = None
        for entry in self._entries:
            if entry.start_offset > offset:
                break
            result = entry.epoch
        return result

    def truncate_from_end(self, end_offset: int) -> None:
        """Forget epochs starting at or after `end_offset` (log truncated to it)."""
        kept = [entry for entry in self._entries if entry.start_offset < end_offset]
        if len(kept) != len(self._entries):
            self._entries = kept
            self._flush()

    def truncate_from_start(self, start_offset: int) -> None:
        """Drop epochs wholly before `start_offset`; the one covering it now starts there."""
        before = [entry for entry in self._entries if entry.start_offset <= start_offset]
        if not before:
            return
        covering = before[-1]
        kept = [EpochEntry(covering.epoch, start_offset)] + self._entries[len(before) :]
        if kept != self._entries:
            self._entries = kept
            self._flush()

    def clear(self) -> None:
        self._entries = []
        self._flush()

    def _flush(self) -> None:
        write_checkpoint(self.path, [f"{entry.epoch} {entry.start_offset}" for entry in self._entries])
