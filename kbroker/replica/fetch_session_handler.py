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
It knows partitions' fetch data as plain tuples; the fetcher builds requests from them.
"""

from __future__ import annotations

import logging
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

    def handle_response(self, error_code: int, session_id: int) -> bool:
        """Moves the session on from the answer; False when its partitions are not to be read."""
        if error_code != Errors.NONE:
            log.info("%s: the leader could not process the fetch with session %d epoch %d: %s", self.name,
                     self.session_id, self.epoch, Errors(error_code).name)
            if error_code == Errors.FETCH_SESSION_ID_NOT_FOUND:
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

    def handle_error(self) -> None:
        """No answer (a lost connection): the next fetch closes the session and opens a new one."""
        self.epoch = INITIAL_EPOCH
