"""Incremental fetch sessions (KIP-227), the leader's side: Kafka's FetchSession.scala.

- A fetch names a session id and epoch (Fetch v7+; older versions are sessionless). Epoch -1
  (FINAL_EPOCH) is a sessionless full fetch; epoch 0 (INITIAL_EPOCH) a full fetch that asks for
  a new session (and closes the one it names); any other epoch is an incremental fetch of that
  session, which must be the session's current epoch (INVALID_FETCH_SESSION_EPOCH, or
  FETCH_SESSION_ID_NOT_FOUND for an id the cache does not hold; FETCH_SESSION_TOPIC_ID_ERROR
  when the request's version disagrees with the session on topic ids, v13+).
- `FetchManager.new_context` answers the FetchContext for a request, under Kafka's names:
  SessionErrorContext, SessionlessFetchContext, FullFetchContext (its answer creates a session
  when the cache has room, or can evict), IncrementalFetchContext (the request's partitions
  update the session's, `forgotten_topics_data` leaves it, and every partition of the session is
  read; the answer carries only those that changed: records, high watermark, log start offset,
  an error, a diverging epoch, as Kafka's CachedPartition.maybeUpdateResponseData; one with
  records moves to the end of the session, so the next read takes it last).
- FetchSessionCache: `max.incremental.fetch.session.cache.slots` sessions at most. A new
  session may take a full cache's slot from a session unused for more than
  MIN_INCREMENTAL_FETCH_SESSION_EVICTION_MS (Kafka's constant, 120 s), else from the least
  valuable evictable session: followers' sessions (privileged) may evict consumers' sessions at
  any time, and any session one older than the eviction time with fewer partitions. Kafka's
  TreeMaps become scans of the (at most a thousand) sessions, done only when a full cache is
  asked for a new session; Kafka 3.9's shards (one per request handler thread) are not needed on
  one event loop.
It knows partitions' fetch requests and results (delayed_fetch's shapes), not the wire format.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kbroker.protocol.errors import Errors

if TYPE_CHECKING:
    from uuid import UUID

    from kbroker.replica.delayed_fetch import FetchRequestPartition, FetchResult

INVALID_SESSION_ID = 0
INITIAL_EPOCH = 0
FINAL_EPOCH = -1
INT32_MAX = (1 << 31) - 1
DEFAULT_MAX_SESSIONS = 1000  # max.incremental.fetch.session.cache.slots
MIN_INCREMENTAL_FETCH_SESSION_EVICTION_MS = 120_000  # Kafka's KafkaServer constant
FIRST_SESSION_VERSION = 7
FIRST_TOPIC_ID_VERSION = 13

# A session partition's key: (topic id, partition) in sessions of topic ids, else (name, partition).
PartitionKey = tuple["UUID | str", int]


def next_epoch(epoch: int) -> int:
    """Kafka's FetchMetadata.nextEpoch: sessionless stays sessionless; after Int.MAX comes 1."""
    if epoch < 0:
        return FINAL_EPOCH
    return 1 if epoch == INT32_MAX else epoch + 1


@dataclass(slots=True, eq=False)
class CachedPartition:
    """One partition of a fetch, and in a session what its fetcher last heard (Kafka's
    CachedPartition): the high watermark and the leader's log start offset sent last."""
    topic: str | None  # None: a topic id this broker does not know (yet)
    topic_id: UUID
    request: FetchRequestPartition
    high_watermark: int = -1
    local_log_start_offset: int = -1

    def key(self, uses_topic_ids: bool) -> PartitionKey:
        return (self.topic_id if uses_topic_ids else self.topic or "", self.request.partition)

    def maybe_update_response_data(self, result: FetchResult, update: bool) -> bool:
        """Must the partition be in an incremental answer? With `update`, remember what it says."""
        must_respond = result.size > 0 or result.diverging_epoch is not None
        if self.high_watermark != result.high_watermark:
            must_respond = True
            if update:
                self.high_watermark = result.high_watermark
        if self.local_log_start_offset != result.log_start_offset:
            must_respond = True
            if update:
                self.local_log_start_offset = result.log_start_offset
        if result.error != Errors.NONE:
            # Resent once the error goes away, whatever the high watermark then.
            if update:
                self.high_watermark = -1
            must_respond = True
        return must_respond


@dataclass(slots=True, eq=False)
class FetchSession:
    id: int
    privileged: bool  # a follower's
    partitions: dict[PartitionKey, CachedPartition]  # in the order they are read
    uses_topic_ids: bool
    creation_ms: int
    last_used_ms: int
    epoch: int
    cached_size: int = -1  # the size the cache counted at its last touch; -1: not in the cache
    evictable_by_all: bool = False
    evictable_by_privileged: bool = False

    def update(self, fetch_data: Iterable[CachedPartition], to_forget: Iterable[PartitionKey]) -> None:
        """The request's partitions join the session or update theirs; forgotten ones leave it."""
        uses_ids = self.uses_topic_ids
        partitions = self.partitions
        for part in fetch_data:
            key = part.key(uses_ids)
            cached = partitions.get(key)
            if cached is None:
                partitions[key] = part
            else:
                cached.request = part.request
                if cached.topic is None:
                    cached.topic = part.topic
        for key in to_forget:
            partitions.pop(key, None)

    def evictable_key(self) -> tuple[bool, int, int]:
        return (self.privileged, self.cached_size, self.id)


class FetchSessionCache:
    """The sessions of this broker (Kafka's FetchSessionCache), with its metrics' counts."""

    def __init__(self, max_entries: int = DEFAULT_MAX_SESSIONS,
                 eviction_ms: int = MIN_INCREMENTAL_FETCH_SESSION_EVICTION_MS,
                 clock_ms: Callable[[], int] | None = None) -> None:
        self.max_entries = max_entries
        self.eviction_ms = eviction_ms
        self.clock_ms = clock_ms or _monotonic_ms
        self.sessions: dict[int, FetchSession] = {}
        self.total_partitions = 0  # NumIncrementalFetchPartitionsCached
        self.evictions = 0  # IncrementalFetchSessionEvictionsPerSec's count

    def __len__(self) -> int:  # NumIncrementalFetchSessions
        return len(self.sessions)

    def get(self, session_id: int) -> FetchSession | None:
        return self.sessions.get(session_id)

    def new_session_id(self) -> int:
        import random  # with the first session: start-up imports stay few

        while True:
            session_id = random.randint(1, INT32_MAX - 1)  # Kafka: nextInt(1, Int.MaxValue)
            if session_id not in self.sessions:
                return session_id

    def maybe_create_session(self, now: int, privileged: bool, size: int, uses_topic_ids: bool,
                             partitions: Callable[[], dict[PartitionKey, CachedPartition]]) -> int:
        """A new session's id, or INVALID_SESSION_ID when the cache has no slot it may take."""
        if len(self.sessions) >= self.max_entries and not self.try_evict(privileged, (privileged, size, 0), now):
            return INVALID_SESSION_ID
        session = FetchSession(self.new_session_id(), privileged, partitions(), uses_topic_ids, now, now,
                               next_epoch(INITIAL_EPOCH))
        self.sessions[session.id] = session
        self.touch(session, now)
        return session.id

    def try_evict(self, privileged: bool, key: tuple[bool, int, int], now: int) -> bool:
        """Kafka's tryEvict: a stale session first, else the least valuable evictable one, if it
        is worth less than the new one."""
        if not self.sessions:
            return False
        stale = min(self.sessions.values(), key=lambda s: (s.last_used_ms, s.id))
        if now - stale.last_used_ms > self.eviction_ms:
            self.remove(stale)
            self.evictions += 1
            return True
        evictable = [s for s in self.sessions.values()
                     if (s.evictable_by_privileged if privileged else s.evictable_by_all)]
        if not evictable:
            return False
        victim = min(evictable, key=FetchSession.evictable_key)
        if key < victim.evictable_key():
            return False
        self.remove(victim)
        self.evictions += 1
        return True

    def remove(self, session: FetchSession) -> None:
        if self.sessions.pop(session.id, None) is not None:
            self.total_partitions -= session.cached_size
            session.cached_size = -1

    def remove_id(self, session_id: int) -> FetchSession | None:
        session = self.sessions.get(session_id)
        if session is not None:
            self.remove(session)
        return session

    def touch(self, session: FetchSession, now: int) -> None:
        """Counts the session's size anew and decides, as Kafka's touch does, who may evict it."""
        session.last_used_ms = now
        if session.cached_size != -1:
            self.total_partitions -= session.cached_size
        session.cached_size = len(session.partitions)
        self.total_partitions += session.cached_size
        old = now - session.creation_ms > self.eviction_ms
        session.evictable_by_privileged = not session.privileged or old
        session.evictable_by_all = old

    def on_throttled(self, session_id: int, full: bool) -> None:
        """A quota emptied the answer (KIP-219: no partitions): the fetcher heard nothing. A full
        fetch's new session goes (Kafka's FullFetchContext creates none when throttled); an
        incremental session's partitions are all sent again next time."""
        session = self.sessions.get(session_id)
        if session is None:
            return
        if full:
            self.remove(session)
            return
        for part in session.partitions.values():
            part.high_watermark = -1


class FetchContext:
    """What a fetch reads and how its answer is made (Kafka's FetchContext)."""
    error = Errors.NONE
    session: FetchSession | None = None

    def partitions(self) -> list[CachedPartition]:
        raise NotImplementedError

    def update_and_generate_response_data(self, results: list[FetchResult]
                                          ) -> tuple[Errors, int, list[tuple[CachedPartition, FetchResult]]]:
        """(error, session id, the partitions to answer with their results), from the results
        of `partitions()` in their order."""
        raise NotImplementedError


class SessionErrorContext(FetchContext):
    def __init__(self, error: Errors) -> None:
        self.error = error

    def partitions(self) -> list[CachedPartition]:
        return []

    def update_and_generate_response_data(self, results: list[FetchResult]  # noqa: ARG002 (nothing was read)
                                          ) -> tuple[Errors, int, list[tuple[CachedPartition, FetchResult]]]:
        return self.error, INVALID_SESSION_ID, []


class SessionlessFetchContext(FetchContext):
    def __init__(self, fetch_data: list[CachedPartition]) -> None:
        self.fetch_data = fetch_data

    def partitions(self) -> list[CachedPartition]:
        return self.fetch_data

    def update_and_generate_response_data(self, results: list[FetchResult]
                                          ) -> tuple[Errors, int, list[tuple[CachedPartition, FetchResult]]]:
        return Errors.NONE, INVALID_SESSION_ID, list(zip(self.fetch_data, results, strict=True))


class FullFetchContext(SessionlessFetchContext):
    def __init__(self, cache: FetchSessionCache, fetch_data: list[CachedPartition], uses_topic_ids: bool,
                 is_from_follower: bool) -> None:
        super().__init__(fetch_data)
        self.cache = cache
        self.uses_topic_ids = uses_topic_ids
        self.is_from_follower = is_from_follower

    def update_and_generate_response_data(self, results: list[FetchResult]
                                          ) -> tuple[Errors, int, list[tuple[CachedPartition, FetchResult]]]:
        answered = list(zip(self.fetch_data, results, strict=True))

        def new_session() -> dict[PartitionKey, CachedPartition]:
            cached = {}
            for part, result in answered:
                part.high_watermark = result.high_watermark
                part.local_log_start_offset = result.log_start_offset
                cached[part.key(self.uses_topic_ids)] = part
            return cached

        session_id = self.cache.maybe_create_session(self.cache.clock_ms(), self.is_from_follower, len(answered),
                                                     self.uses_topic_ids, new_session)
        return Errors.NONE, session_id, answered


class IncrementalFetchContext(FetchContext):
    def __init__(self, request_epoch: int, session: FetchSession) -> None:
        self.request_epoch = request_epoch
        self.session = session
        self._read = list(session.partitions.values())  # what was read, in this order

    def partitions(self) -> list[CachedPartition]:
        return self._read

    def update_and_generate_response_data(self, results: list[FetchResult]
                                          ) -> tuple[Errors, int, list[tuple[CachedPartition, FetchResult]]]:
        session = self.session
        assert session is not None
        if session.epoch != next_epoch(self.request_epoch):
            # Another fetch of the session came while this one waited: a duplicate request.
            return Errors.INVALID_FETCH_SESSION_EPOCH, session.id, []
        answered = []
        moved = []
        for part, result in zip(self._read, results, strict=True):
            if part.maybe_update_response_data(result, True):
                answered.append((part, result))
                if result.size > 0:
                    moved.append(part)
        if moved:  # partitions with records go to the end: the next read takes them last
            partitions = session.partitions
            uses_ids = session.uses_topic_ids
            for part in moved:
                key = part.key(uses_ids)
                if partitions.get(key) is part:
                    partitions[key] = partitions.pop(key)
        return Errors.NONE, session.id, answered


class FetchManager:
    """Kafka's FetchManager: the FetchContext of each fetch request."""

    def __init__(self, cache: FetchSessionCache) -> None:
        self.cache = cache

    def new_context(self, version: int, session_id: int, epoch: int, is_follower: bool,
                    fetch_data: list[CachedPartition], to_forget: list[PartitionKey]) -> FetchContext:
        if version < FIRST_SESSION_VERSION:
            return SessionlessFetchContext(fetch_data)
        cache = self.cache
        if epoch in (INITIAL_EPOCH, FINAL_EPOCH):  # a full fetch closes any session it names
            if session_id != INVALID_SESSION_ID:
                cache.remove_id(session_id)
            if epoch == FINAL_EPOCH:
                return SessionlessFetchContext(fetch_data)
            return FullFetchContext(cache, fetch_data, version >= FIRST_TOPIC_ID_VERSION, is_follower)
        session = cache.get(session_id)
        if session is None:
            return SessionErrorContext(Errors.FETCH_SESSION_ID_NOT_FOUND)
        if session.epoch != epoch:
            return SessionErrorContext(Errors.INVALID_FETCH_SESSION_EPOCH)
        if session.uses_topic_ids != (version >= FIRST_TOPIC_ID_VERSION):
            return SessionErrorContext(Errors.FETCH_SESSION_TOPIC_ID_ERROR)
        session.update(fetch_data, to_forget)
        if not session.partitions:
            cache.remove(session)
            return SessionlessFetchContext(fetch_data)
        cache.touch(session, cache.clock_ms())
        session.epoch = next_epoch(session.epoch)
        return IncrementalFetchContext(epoch, session)


def _monotonic_ms() -> int:
    return int(time.monotonic() * 1000)
