"""The fetcher's side of an incremental fetch session (KIP-227): Kafka's FetchSessionHandler.

- The first fetch to a leader is full with epoch 0 (INITIAL_EPOCH), asking for a session. If the
  answer names one, later fetches are incremental: they carry only the partitions that joined the
  session or whose fetch data changed (offset, log start, limits, epochs, topic id), and the
  partitions that left it in `forgotten_topics_data`; the leader answers only the partitions
  whose state changed. Each answer moves the epoch on (after Int.MAX comes 1).
- FETCH_SESSION_ID_NOT_FOUND starts over with a full fetch asking for a new session; any other
  error of the whole fetch (INVALID_FETCH_SESSION_EPOCH, ...) and a failed connection send a full
  fetch that closes the session and asks for a new one (Kafka's nextCloseExisting). An answer
  with session id 0 means the leader keeps no session (full fetches again).
- A change between fetching by topic ids and by names (a partition without a topic id) starts a
  new session, as Kafka's builder does.
- An answer is checked against what was asked, as Kafka's verifyFullFetchResponsePartitions and
  verifyIncrementalFetchResponsePartitions do: a full answer must name exactly the session's
  partitions, an incremental one none outside them, and neither a topic id it was not asked
  about. One that does not fit is not read: after a full one the next fetch asks for a new
  session, after an incremental one it closes the session and asks for another. A full fetch
  answered empty with a throttle time (KIP-219) starts over the same way, without a log line.
It knows partitions' fetch data as plain tuples; the fetcher builds requests from them.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import TYPE_CHECKING, NamedTuple

from kbroker.protocol.errors import Errors
from kbroker.replica.fetch_session import FINAL_EPOCH, INITIAL_EPOCH, INVALID_SESSION_ID, next_epoch

if TYPE_CHECKING:
    import uuid

log = logging.getLogger("kbroker.replica.fetcher")

TopicPartition = tuple[str, int]
# Kafka's FetchRequest.PartitionData, compared whole to find what changed:
# (topic id or None, fetch offset, log start offset, max bytes, current leader epoch, last fetched epoch)
PartitionData = tuple["uuid.UUID | None", int, int, int, int, int]
FETCH_OFFSET, CURRENT_LEADER_EPOCH = 1, 4  # their places in it, for what an answer is checked against

class FetchRequestData(NamedTuple):
    """What one fetch sends (`to_send`, `to_forget`), with the session's partitions as they
    will stand once the leader has it (`session_partitions`: what the answer refers to)."""
    to_send: dict[TopicPartition, PartitionData]
    to_forget: list[tuple[TopicPartition, uuid.UUID | None]]
    session_partitions: dict[TopicPartition, PartitionData]
    session_id: int
    epoch: int


class FetchSessionHandler:
    def __init__(self, name: str) -> None:
        self.name = name
        self.session_id = INVALID_SESSION_ID
        self.epoch = INITIAL_EPOCH
        self.session_partitions: dict[TopicPartition, PartitionData] = {}
        self.uses_topic_ids = False

    @property
    def is_full(self) -> bool:
        return self.epoch in (INITIAL_EPOCH, FINAL_EPOCH)

    def build(self, wanted: dict[TopicPartition, PartitionData], uses_topic_ids: bool) -> FetchRequestData:
        """The next fetch for the partitions `wanted` now (in the order they should be read);
        `wanted` is consumed."""
        if not self.is_full and uses_topic_ids != self.uses_topic_ids:
            self.epoch = INITIAL_EPOCH  # close the session, open one of the other kind
        self.uses_topic_ids = uses_topic_ids
        if self.is_full:
            self.session_partitions = wanted
            return FetchRequestData(wanted, [], wanted, self.session_id, self.epoch)
        session = self.session_partitions
        forget: list[tuple[TopicPartition, uuid.UUID | None]] = []
        for tp in list(session):
            previous = session[tp]
            data = wanted.pop(tp, None)
            if data is None:
                del session[tp]
                forget.append((tp, previous[0]))
            elif data != previous:
                if previous[0] is not None and data[0] is not None and previous[0] != data[0]:
                    forget.append((tp, previous[0]))  # the topic was re-created: the old id leaves
                wanted[tp] = data  # to the end, after the partitions joining the session
                session[tp] = data
        for tp, data in wanted.items():
            if tp not in session:
                session[tp] = data
        return FetchRequestData(wanted, forget, session, self.session_id, self.epoch)

    def handle_response(self, error_code: int, session_id: int, answered: Collection[TopicPartition] = (),
                        unknown_topic_ids: int = 0, throttled: bool = False) -> bool:
        """Moves the session on from the answer; False when its partitions are not to be read.
        `answered`: the partitions the answer names; `unknown_topic_ids`: how many topic ids it
        names that the fetch did not ask about; `throttled`: its throttle time is above 0."""
        if error_code != Errors.NONE:
            log.info("%s: the leader could not process the fetch with session %d epoch %d: %s", self.name,
                     self.session_id, self.epoch, Errors(error_code).name)
            if error_code == Errors.FETCH_SESSION_ID_NOT_FOUND:
                self.session_id = INVALID_SESSION_ID
            self.epoch = INITIAL_EPOCH
            return False
        if self.is_full and throttled and not answered:
            self.session_id, self.epoch = INVALID_SESSION_ID, INITIAL_EPOCH
            return False
        if problem := self._answer_problem(answered, unknown_topic_ids):
            log.info("%s: the leader sent an invalid %s fetch response with %s", self.name,
                     "full" if self.is_full else "incremental", problem)
            if self.is_full:
                self.session_id = INVALID_SESSION_ID
            self.epoch = INITIAL_EPOCH
            return False
        if self.is_full:
            self.session_id = session_id
            self.epoch = INITIAL_EPOCH if session_id == INVALID_SESSION_ID else next_epoch(INITIAL_EPOCH)
        elif session_id == INVALID_SESSION_ID:  # the leader closed the session
            self.session_id, self.epoch = INVALID_SESSION_ID, INITIAL_EPOCH
        else:
            self.epoch = next_epoch(self.epoch)
        return True

    def _answer_problem(self, answered: Collection[TopicPartition], unknown_topic_ids: int) -> str:
        """What does not fit in an answer to the fetch just built ("" when it fits); `answered` is
        a set or another collection with fast membership."""
        session = self.session_partitions
        problems = []
        if self.is_full and (omitted := [tp for tp in session if tp not in answered]):
            problems.append(f"omitted=({_names(omitted)})")
        if extra := [tp for tp in answered if tp not in session]:
            problems.append(f"extra=({_names(extra)})")
        if unknown_topic_ids:
            problems.append(f"{unknown_topic_ids} unknown topic ids")
        return ", ".join(problems)

    def handle_error(self) -> None:
        """No answer (a lost connection): the next fetch closes the session and opens a new one."""
        self.epoch = INITIAL_EPOCH


def _names(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{topic}-{index}" for topic, index in partitions)
