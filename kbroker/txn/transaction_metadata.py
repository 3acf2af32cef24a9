"""TransactionMetadata: one transactional id's state, and its transitions (Kafka's
TransactionMetadata.scala and TransactionState.scala, KAFKA-FACTS §13).

A change is made in two steps, as in Kafka: `prepare_*` checks that the transition is allowed,
marks the metadata with the `pending_state` and returns a TxnTransitMetadata (what will be
written to `__transaction_state`); once the write succeeded `complete_transition_to` applies
it, and `clear_pending` drops it when the write failed. While a state is pending, other
requests for the id get CONCURRENT_TRANSACTIONS: the one event loop needs no lock for that.
Plain data: no log, no sockets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

TopicPartition = tuple[str, int]

NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
INT16_MAX = 32767


class TransactionState(IntEnum):
    """Kafka's TransactionState, with the ids written as TransactionLogValue.TransactionStatus."""

    EMPTY = 0
    ONGOING = 1
    PREPARE_COMMIT = 2
    PREPARE_ABORT = 3
    COMPLETE_COMMIT = 4
    COMPLETE_ABORT = 5
    DEAD = 6
    PREPARE_EPOCH_FENCE = 7

    @property
    def display_name(self) -> str:
        """Kafka's name of the state, as DescribeTransactions and ListTransactions report it."""
        return _DISPLAY_NAMES[self]

    @classmethod
    def from_display_name(cls, name: str) -> TransactionState | None:
        return _BY_DISPLAY_NAME.get(name)


_DISPLAY_NAMES = {
    TransactionState.EMPTY: "Empty",
    TransactionState.ONGOING: "Ongoing",
    TransactionState.PREPARE_COMMIT: "PrepareCommit",
    TransactionState.PREPARE_ABORT: "PrepareAbort",
    TransactionState.COMPLETE_COMMIT: "CompleteCommit",
    TransactionState.COMPLETE_ABORT: "CompleteAbort",
    TransactionState.DEAD: "Dead",
    TransactionState.PREPARE_EPOCH_FENCE: "PrepareEpochFence",
}
_BY_DISPLAY_NAME = {name: state for state, name in _DISPLAY_NAMES.items()}

_S = TransactionState
_COMPLETED = frozenset({_S.EMPTY, _S.COMPLETE_COMMIT, _S.COMPLETE_ABORT})
# Kafka's validPreviousStates of each state.
VALID_PREVIOUS_STATES: dict[TransactionState, frozenset[TransactionState]] = {
    _S.EMPTY: _COMPLETED,
    _S.ONGOING: _COMPLETED | {_S.ONGOING},
    _S.PREPARE_COMMIT: frozenset({_S.ONGOING}),
    _S.PREPARE_ABORT: _COMPLETED | {_S.ONGOING, _S.PREPARE_EPOCH_FENCE},
    _S.COMPLETE_COMMIT: frozenset({_S.PREPARE_COMMIT}),
    _S.COMPLETE_ABORT: frozenset({_S.PREPARE_ABORT}),
    _S.DEAD: _COMPLETED,
    _S.PREPARE_EPOCH_FENCE: frozenset({_S.ONGOING}),
}


def is_epoch_exhausted(epoch: int) -> bool:
    """Kafka keeps the last epoch free so that a fence can still bump it once."""
    return epoch >= INT16_MAX - 1


class IllegalTransitionError(RuntimeError):
    """A transition Kafka's state machine does not allow: a bug, never a client's mistake."""


@dataclass(frozen=True, slots=True)
class TxnTransitMetadata:
    """What a transition will make of the metadata, and what is written to the log for it."""

    producer_id: int
    last_producer_id: int
    producer_epoch: int
    last_producer_epoch: int
    txn_timeout_ms: int
    state: TransactionState
    topic_partitions: frozenset[TopicPartition]
    txn_start_timestamp: int
    txn_last_update_timestamp: int


@dataclass(slots=True, eq=False)
class TransactionMetadata:
    transactional_id: str
    producer_id: int
    last_producer_id: int
    producer_epoch: int
    last_producer_epoch: int
    txn_timeout_ms: int
    state: TransactionState
    topic_partitions: set[TopicPartition] = field(default_factory=set)
    txn_start_timestamp: int = -1
    txn_last_update_timestamp: int = -1
    pending_state: TransactionState | None = None
    # A fence whose write failed keeps its bumped epoch: the next attempt must not bump again.
    has_failed_epoch_fence: bool = False

    @classmethod
    def from_transit(cls, transactional_id: str, transit: TxnTransitMetadata) -> TransactionMetadata:
        """The metadata a loaded record describes."""
        return cls(transactional_id, transit.producer_id, transit.last_producer_id, transit.producer_epoch,
                   transit.last_producer_epoch, transit.txn_timeout_ms, transit.state,
                   set(transit.topic_partitions), transit.txn_start_timestamp, transit.txn_last_update_timestamp)

    @property
    def pending_transition_in_progress(self) -> bool:
        return self.pending_state is not None

    @property
    def is_producer_epoch_exhausted(self) -> bool:
        return is_epoch_exhausted(self.producer_epoch)

    def snapshot(self) -> TxnTransitMetadata:
        """The current state as a transit (written again when a write must be retried)."""
        return TxnTransitMetadata(self.producer_id, self.last_producer_id, self.producer_epoch,
                                  self.last_producer_epoch, self.txn_timeout_ms, self.state,
                                  frozenset(self.topic_partitions), self.txn_start_timestamp,
                                  self.txn_last_update_timestamp)

    # -- the transitions -------------------------------------------------------------------
    def _prepare(self, state: TransactionState, producer_id: int, epoch: int, last_epoch: int, timeout_ms: int,
                 partitions: frozenset[TopicPartition], start_ms: int, update_ms: int) -> TxnTransitMetadata:
        if self.pending_state is not None:
            raise IllegalTransitionError(f"{self.transactional_id}: cannot prepare {state.display_name} while "
                                         f"{self.pending_state.display_name} is pending")
        if state != TransactionState.DEAD and not 0 <= epoch <= INT16_MAX:
            raise IllegalTransitionError(f"{self.transactional_id}: illegal producer epoch {epoch}")
        if self.state not in VALID_PREVIOUS_STATES[state]:
            raise IllegalTransitionError(f"{self.transactional_id}: cannot go from {self.state.display_name} to "
                                         f"{state.display_name}")
        self.pending_state = state
        return TxnTransitMetadata(producer_id, self.producer_id, epoch, last_epoch, timeout_ms, state, partitions,
                                  start_ms, update_ms)

    def prepare_increment_producer_epoch(self, timeout_ms: int, expected_epoch: int | None,
                                         now_ms: int) -> TxnTransitMetadata | None:
        """InitProducerId on a completed transaction: the next epoch, or the current one for a
        retry of a bump already made; None if the expected epoch is a fenced one."""
        bumped = self.producer_epoch + 1
        if expected_epoch is None:
            epochs = (bumped, NO_PRODUCER_EPOCH)  # a producer starting up
        elif self.producer_epoch == NO_PRODUCER_EPOCH or expected_epoch == self.producer_epoch:
            epochs = (bumped, self.producer_epoch)  # KIP-360: the same producer recovering
        elif expected_epoch == self.last_producer_epoch:
            epochs = (self.producer_epoch, self.last_producer_epoch)  # a retry of a bump it never heard of
        else:
            return None
        return self._prepare(TransactionState.EMPTY, self.producer_id, epochs[0], epochs[1], timeout_ms,
                             frozenset(), -1, now_ms)

    def prepare_producer_id_rotation(self, new_producer_id: int, timeout_ms: int, now_ms: int,
                                     record_last_epoch: bool) -> TxnTransitMetadata:
        last_epoch = self.producer_epoch if record_last_epoch else NO_PRODUCER_EPOCH
        return self._prepare(TransactionState.EMPTY, new_producer_id, 0, last_epoch, timeout_ms, frozenset(), -1,
                             now_ms)

    def prepare_fence_producer_epoch(self) -> TxnTransitMetadata:
        """The epoch bump that fences the producer of an ongoing transaction before it is aborted
        (never written: the PrepareAbort that follows carries the bumped epoch)."""
        epoch = self.producer_epoch if self.has_failed_epoch_fence else self.producer_epoch + 1
        return self._prepare(TransactionState.PREPARE_EPOCH_FENCE, self.producer_id, epoch, NO_PRODUCER_EPOCH,
                             self.txn_timeout_ms, frozenset(self.topic_partitions), self.txn_start_timestamp,
                             self.txn_last_update_timestamp)

    def prepare_add_partitions(self, partitions: set[TopicPartition], now_ms: int) -> TxnTransitMetadata:
        start = now_ms if self.state in _COMPLETED else self.txn_start_timestamp
        return self._prepare(TransactionState.ONGOING, self.producer_id, self.producer_epoch,
                             self.last_producer_epoch, self.txn_timeout_ms,
                             frozenset(self.topic_partitions | partitions), start, now_ms)

    def prepare_abort_or_commit(self, state: TransactionState, now_ms: int) -> TxnTransitMetadata:
        return self._prepare(state, self.producer_id, self.producer_epoch, self.last_producer_epoch,
                             self.txn_timeout_ms, frozenset(self.topic_partitions), self.txn_start_timestamp, now_ms)

    def prepare_complete(self, now_ms: int) -> TxnTransitMetadata:
        state = (TransactionState.COMPLETE_COMMIT if self.state == TransactionState.PREPARE_COMMIT
                 else TransactionState.COMPLETE_ABORT)
        return self._prepare(state, self.producer_id, self.producer_epoch, self.last_producer_epoch,
                             self.txn_timeout_ms, frozenset(), self.txn_start_timestamp, now_ms)

    def prepare_dead(self) -> TxnTransitMetadata:
        return self._prepare(TransactionState.DEAD, self.producer_id, self.producer_epoch, self.last_producer_epoch,
                             self.txn_timeout_ms, frozenset(), self.txn_start_timestamp,
                             self.txn_last_update_timestamp)

    def complete_transition_to(self, transit: TxnTransitMetadata) -> None:
        """Applies a transition whose write succeeded."""
        if self.pending_state != transit.state:
            raise IllegalTransitionError(f"{self.transactional_id}: completing {transit.state.display_name} but "
                                         f"{self.pending_state} is pending")
        self.producer_id = transit.producer_id
        self.last_producer_id = transit.last_producer_id
        self.producer_epoch = transit.producer_epoch
        self.last_producer_epoch = transit.last_producer_epoch
        self.txn_timeout_ms = transit.txn_timeout_ms
        self.state = transit.state
        self.topic_partitions = set(transit.topic_partitions)
        self.txn_start_timestamp = transit.txn_start_timestamp
        self.txn_last_update_timestamp = transit.txn_last_update_timestamp
        self.pending_state = None
        self.has_failed_epoch_fence = False

    def clear_pending(self) -> None:
        self.pending_state = None

