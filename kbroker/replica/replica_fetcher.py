"""Replica fetchers: followers copy their leaders' logs (Kafka's ReplicaFetcherManager,
AbstractFetcherThread and ReplicaFetcherThread, as asyncio tasks).

- `ReplicaFetcherManager` keeps one `ReplicaFetcherThread` per (leader broker, fetcher id)
  (num.replica.fetchers per leader); ReplicaManager adds a partition when LeaderAndIsr makes this
  broker its follower and removes it when it leads, stops or changes leader epoch.
- A `ReplicaFetcherThread` loops: Fetch (v15, ReplicaState with our broker epoch; v12 without
  topic ids; v11 and OffsetForLeaderEpoch below IBP 2.7-IV1) from its leader with
  replica.fetch.{max,min}.bytes, replica.fetch.wait.max.ms and replica.fetch.response.max.bytes,
  each partition at its log end offset with its last fetched epoch and current leader epoch.
  Records are appended with UnifiedLog.append_as_follower; the follower's high watermark becomes
  min(leader's, log end) and its log start follows the leader's.
- Fetches go in an incremental fetch session (KIP-227, fetch_session_handler.py): after the first
  full fetch, a request names only the partitions whose fetch data changed and forgets those no
  longer fetched (partitions backing off or truncating leave the session, as in Kafka's
  buildFetch); the leader answers only partitions that changed. A session error is answered with
  a full fetch at once, other errors of the whole fetch back off.
- Divergence (DivergingEpoch, or OffsetForLeaderEpoch answers) truncates the log to
  min(leader's end offset for the epoch, our end offset for it, log end) (`truncation_offset`);
  OFFSET_OUT_OF_RANGE truncates to the leader's log end when ours is past it, or starts over at
  the leader's log start when ours is before it (ListOffsets). NOT_LEADER_OR_FOLLOWER,
  UNKNOWN_LEADER_EPOCH and connection failures back off replica.fetch.backoff.ms;
  FENCED_LEADER_EPOCH at our epoch parks the partition until a newer LeaderAndIsr.
It knows this broker's partitions (through `LocalPartitions`: the ReplicaManager, which
creates the fetchers, is never imported here), their logs and the NetworkClient; never the
controller, and never the leader side of fetches.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple, Protocol

from kbroker.background import stop_task
from kbroker.log.errors import KafkaStorageException, LogError
from kbroker.metadata.topic_names import java_string_hash
from kbroker.network.network_client import NetworkClient
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors
from kbroker.protocol.uuids import ZERO_UUID
from kbroker.replica.fetch_session_handler import (
    CURRENT_LEADER_EPOCH,
    FETCH_OFFSET,
    FetchSessionHandler,
    PartitionData,
)

if TYPE_CHECKING:
    import ssl
    import uuid
    from collections.abc import Callable, Collection, Iterable

    from kbroker.log.records import Buffer
    from kbroker.log.unified_log import UnifiedLog
    from kbroker.protocol.message_types import (
        FetchRequest,
        FetchRequestFetchTopic,
        FetchRequestForgottenTopic,
        FetchResponse,
        FetchResponsePartitionData,
        ListOffsetsRequest,
        ListOffsetsResponse,
        OffsetForLeaderEpochRequest,
        OffsetForLeaderEpochRequestOffsetForLeaderTopic,
        OffsetForLeaderEpochResponse,
    )
    from kbroker.replica.partition import Partition

log = logging.getLogger("kbroker.replica.fetcher")

TopicPartition = tuple[str, int]

UNDEFINED_EPOCH = -1
UNDEFINED_EPOCH_OFFSET = -1
LATEST_TIMESTAMP = -1
EARLIEST_TIMESTAMP = -2
LIST_OFFSETS_VERSION = 7
OFFSET_FOR_LEADER_EPOCH_VERSION = 3
NO_HIGH_WATERMARK = (1 << 63) - 1  # Fetch v18's "the follower does not send its high watermark"


# Whole-fetch errors that only mean "start the session again": no backoff.
_SESSION_ERRORS = frozenset({Errors.FETCH_SESSION_ID_NOT_FOUND, Errors.INVALID_FETCH_SESSION_EPOCH})


def _named_topics(response: FetchResponse, version: int, names_by_id: dict[uuid.UUID | None, str]
                  ) -> tuple[list[tuple[str, list[FetchResponsePartitionData]]], int]:
    """Each topic of a fetch answer by name with its partitions (v13+ answers name topics by id),
    and how many topic ids in it the fetch did not ask about (left out)."""
    named: list[tuple[str, list[FetchResponsePartitionData]]] = []
    unknown = 0
    for topic_entry in response["responses"]:
        topic = topic_entry["topic"] if version < 13 else names_by_id.get(topic_entry["topic_id"])
        if topic is None:
            unknown += 1
        else:
            named.append((topic, topic_entry["partitions"]))
    return named, unknown


class SentFetch(NamedTuple):
    """A fetch in flight: each session partition's fetch data as asked, and (v13+) the topic
    names of the session's topic ids (an answer names topics by id)."""
    partitions: dict[TopicPartition, PartitionData]
    names_by_id: dict[uuid.UUID | None, str]


class LocalPartitions(Protocol):
    """What a fetcher needs of the ReplicaManager: this broker's partition, if it has it."""

    def get_partition(self, topic: str, partition: int) -> Partition | None: ...


@dataclass(frozen=True, slots=True)
class BrokerEndPoint:
    broker_id: int
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class FetcherConfig:
    """The broker settings the fetchers use, under Kafka's names (see `from_kafka_config`)."""
    broker_id: int
    fetch_max_bytes: int = 1024 * 1024            # replica.fetch.max.bytes
    fetch_min_bytes: int = 1                      # replica.fetch.min.bytes
    fetch_wait_max_ms: int = 500                  # replica.fetch.wait.max.ms
    fetch_response_max_bytes: int = 10 * 1024 * 1024  # replica.fetch.response.max.bytes
    fetch_backoff_ms: int = 1000                  # replica.fetch.backoff.ms
    socket_timeout_ms: int = 30000                # replica.socket.timeout.ms
    num_fetchers: int = 1                         # num.replica.fetchers
    truncate_on_fetch: bool = True                # inter.broker.protocol.version >= 2.7-IV1
    ssl_context: ssl.SSLContext | None = None     # ssl.SSLContext when the inter-broker listener is TLS

    @classmethod
    def from_kafka_config(cls, broker_id: int, config) -> FetcherConfig:
        return cls(broker_id, config.get("replica.fetch.max.bytes"), config.get("replica.fetch.min.bytes"),
                   config.get("replica.fetch.wait.max.ms"), config.get("replica.fetch.response.max.bytes"),
                   config.get("replica.fetch.backoff.ms"), config.get("replica.socket.timeout.ms"),
                   max(1, config.get("num.replica.fetchers")),
                   ibp_at_least(config.get("inter.broker.protocol.version"), (2, 7), 1))


def ibp_at_least(version: str, release: tuple[int, ...], sub_version: int) -> bool:
    """inter.broker.protocol.version >= release-IVsub_version. A release named without "-IV"
    means its latest sub-version, as Kafka reads it."""
    text, _, iv = version.partition("-IV")
    parts = tuple(int(p) for p in text.split(".")[: 3 if text.startswith("0.") else 2])
    if parts != release:
        return parts > release
    return not iv or int(iv) >= sub_version


@dataclass(slots=True)
class InitialFetchState:
    topic_id: uuid.UUID | None
    leader: BrokerEndPoint
    current_leader_epoch: int
    init_offset: int
    last_fetched_epoch: int | None


@dataclass(slots=True)
class PartitionFetchState:
    """Where a partition's fetching stands (Kafka's PartitionFetchState). `truncating`: the
    log must be reconciled with the leader (OffsetForLeaderEpoch, or the high watermark when
    it has no epochs) before the next fetch."""
    topic_id: uuid.UUID | None
    fetch_offset: int
    current_leader_epoch: int
    last_fetched_epoch: int | None
    truncating: bool = False
    delayed_until: float = 0.0  # time.monotonic()
    lag: int | None = None

    def is_ready_for_fetch(self, now: float) -> bool:
        return not self.truncating and self.delayed_until <= now


def truncation_offset(leader_epoch: int, leader_end_offset: int, local_end_for_epoch: tuple[int, int],
                      log_end_offset: int, initial_fetch_offset: int) -> tuple[int, bool]:
    """Where a follower truncates given the leader's (epoch, end offset) for the epoch it asked
    about (Kafka's getOffsetTruncationState): (offset, done). `local_end_for_epoch` is our own
    (epoch, end offset) for the leader's epoch, (-1, -1) if we know none <= it. Not done means
    we lack the leader's epoch: truncate to the end of our largest smaller one and ask again."""
    if leader_end_offset == UNDEFINED_EPOCH_OFFSET:
        return initial_fetch_offset, True
    if leader_epoch == UNDEFINED_EPOCH:
        return min(leader_end_offset, log_end_offset), True
    local_epoch, local_end = local_end_for_epoch
    if local_end == UNDEFINED_EPOCH_OFFSET:
        return min(leader_end_offset, log_end_offset), True
    if local_epoch != leader_epoch:
        return min(local_end, log_end_offset), False
    return min(local_end, leader_end_offset, log_end_offset), True


def fetcher_id_for(topic: str, partition: int, num_fetchers: int) -> int:
    """Kafka's spread of partitions over fetchers: abs(31 * topic.hashCode + partition) % n."""
    value = (31 * java_string_hash(topic) + partition) & 0xFFFFFFFF
    value = value - (1 << 32) if value >= 1 << 31 else value
    return (0 if value == -(1 << 31) else abs(value)) % num_fetchers


class ReplicaFetcherThread:
    """Fetches one leader's partitions for this broker (an asyncio task, not a thread)."""

    def __init__(self, fetcher_id: int, leader: BrokerEndPoint, config: FetcherConfig,
                 local_partitions: LocalPartitions, broker_epoch: Callable[[], int],
                 on_partition_failed: Callable[[TopicPartition], None]) -> None:
        self.fetcher_id = fetcher_id
        self.leader = leader
        self.config = config
        self.local_partitions = local_partitions
        self.broker_epoch = broker_epoch
        self.on_partition_failed = on_partition_failed
        self.name = f"ReplicaFetcherThread-{fetcher_id}-{leader.broker_id}"
        self.partitions: dict[TopicPartition, PartitionFetchState] = {}
        self.client = NetworkClient(leader.host, leader.port, f"broker-{config.broker_id}-fetcher-{fetcher_id}",
                                    request_timeout_s=config.socket_timeout_ms / 1000, ssl_context=config.ssl_context)
        self.session = FetchSessionHandler(self.name)  # KIP-227, Kafka's FetchSessionHandler
        self._topic_names: dict[uuid.UUID | None, str] = {}  # topic id -> name, of the session's partitions
        self._topic_names_stale = False  # partitions left: the next fetch drops the ids no longer asked for
        self._changed = asyncio.Event()
        self._unreachable = False  # the leader failed the last attempt (log the first failure only)
        self._task: asyncio.Task | None = None

    def __repr__(self) -> str:
        return f"{self.name}({len(self.partitions)} partitions)"

    # -- partitions ------------------------------------------------------------------------------
    def add_partitions(self, initial: dict[TopicPartition, InitialFetchState]) -> None:
        for tp, state in initial.items():
            current = self.partitions.get(tp)
            if current is not None and current.current_leader_epoch == state.current_leader_epoch:
                continue
            # Without a last fetched epoch the log is first reconciled: to the high watermark
            # (no epochs at all), or through OffsetForLeaderEpoch without truncation on fetch.
            truncating = state.last_fetched_epoch is None or not self.config.truncate_on_fetch
            self.partitions[tp] = PartitionFetchState(state.topic_id, state.init_offset, state.current_leader_epoch,
                                                      state.last_fetched_epoch, truncating)
        self._changed.set()

    def remove_partitions(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, PartitionFetchState]:
        removed = {tp: state for tp in tps if (state := self.partitions.pop(tp, None)) is not None}
        self._topic_names_stale = self._topic_names_stale or bool(removed)
        return removed

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    async def close(self) -> None:
        await stop_task(self._task)
        await self.client.close()

    # -- the loop ----------------------------------------------------------------------------------
    async def _run(self) -> None:
        log.info("%s starting, fetching from %s:%d", self.name, self.leader.host, self.leader.port)
        while True:
            try:
                await self.do_work()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: unexpected error; backing off", self.name)
                await asyncio.sleep(self.config.fetch_backoff_ms / 1000)

    async def do_work(self) -> None:
        """One round: reconcile truncating partitions, then one fetch (or wait for work)."""
        await self._maybe_truncate()
        fetch = self._build_fetch()
        if fetch is None:
            await self._wait_for_work()
            return
        version, request, sent = fetch
        try:
            response: FetchResponse = await self.client.send(ApiKey.FETCH, version, request)
        except ConnectionError as exc:
            log.log(logging.DEBUG if self._unreachable else logging.INFO, "%s: fetch failed (%s); retrying every %d ms",
                    self.name, exc, self.config.fetch_backoff_ms)
            self._unreachable = True
            self.session.handle_error()
            self._delay(sent.partitions)
            return
        self._unreachable = False
        error_code = response["error_code"]
        topics, unknown_topic_ids = _named_topics(response, version, sent.names_by_id)
        answered = {(topic, data["partition_index"]) for topic, partitions in topics for data in partitions}
        if not self.session.handle_response(error_code, response["session_id"], answered, unknown_topic_ids,
                                            response["throttle_time_ms"] > 0):
            # A session the leader lost or saw out of step, or an answer that does not fit the
            # fetch: the next fetch is a full one, at once (Kafka's fetcher reads nothing from
            # such an answer and goes on).
            if error_code != Errors.NONE and error_code not in _SESSION_ERRORS:
                log.warning("%s: fetch answered with error %s", self.name, Errors(error_code).name)
                self._delay(sent.partitions)
            return
        await self._process_fetch_response(sent.partitions, topics, version)

    async def _wait_for_work(self) -> None:
        """Sleep until a partition is added or the earliest backoff ends."""
        now = time.monotonic()
        delays = [s.delayed_until - now for s in self.partitions.values() if s.delayed_until > now]
        timeout = min(delays) if delays else self.config.fetch_backoff_ms / 1000
        self._changed.clear()
        try:
            await asyncio.wait_for(self._changed.wait(), max(0.001, timeout))
        except TimeoutError:
            pass

    def _delay(self, tps: Iterable[TopicPartition]) -> None:
        until = time.monotonic() + self.config.fetch_backoff_ms / 1000
        for tp in tps:
            state = self.partitions.get(tp)
            if state is not None:
                state.delayed_until = until

    def _mark_failed(self, tp: TopicPartition) -> None:
        """Stop fetching the partition until a new LeaderAndIsr re-adds it."""
        self.partitions.pop(tp, None)
        self.on_partition_failed(tp)

    def _follower_log(self, tp: TopicPartition) -> UnifiedLog | None:
        """The partition's log while this broker follows it, else None."""
        partition = self.local_partitions.get_partition(*tp)
        if partition is None or partition.is_leader:
            return None
        return partition.log

    # -- fetch requests --------------------------------------------------------------------------
    def _build_fetch(self) -> tuple[int, FetchRequest, SentFetch] | None:
        """(version, request, what the session's partitions were asked), or None when no
        partition is ready and none leaves the session."""
        now = time.monotonic()
        wanted: dict[TopicPartition, PartitionData] = {}
        with_ids = True
        for tp, state in self.partitions.items():
            if state.is_ready_for_fetch(now) and (follower_log := self._follower_log(tp)) is not None:
                wanted[tp] = (state.topic_id, state.fetch_offset, follower_log.log_start_offset,
                              self.config.fetch_max_bytes, state.current_leader_epoch,
                              UNDEFINED_EPOCH if state.last_fetched_epoch is None else state.last_fetched_epoch)
                with_ids = with_ids and state.topic_id is not None
        # Partitions not ready (backing off, truncating) leave the session, as in Kafka's buildFetch.
        data = self.session.build(wanted, with_ids)
        if not data.session_partitions and not data.to_forget:
            return None
        version = (15 if with_ids else 12) if self.config.truncate_on_fetch else 11
        topics: dict[str, FetchRequestFetchTopic] = {}
        for (topic, index), (topic_id, fetch_offset, log_start, max_bytes, leader_epoch, fetched_epoch) \
                in data.to_send.items():
            # A fetch by name (v12 and below) carries no topic id: the encoder leaves it out.
            entry = topics.setdefault(topic, {"topic": topic, "topic_id": topic_id or ZERO_UUID, "partitions": []})
            entry["partitions"].append({
                "partition": index, "current_leader_epoch": leader_epoch, "fetch_offset": fetch_offset,
                "last_fetched_epoch": fetched_epoch, "log_start_offset": log_start, "partition_max_bytes": max_bytes,
                # Fields of versions above the v15 we send, at their defaults.
                "replica_directory_id": ZERO_UUID, "high_watermark": NO_HIGH_WATERMARK})
        forgotten: dict[tuple[str, uuid.UUID | None], FetchRequestForgottenTopic] = {}
        for (topic, index), topic_id in data.to_forget:
            forgotten.setdefault((topic, topic_id), {"topic": topic, "topic_id": topic_id or ZERO_UUID,
                                                     "partitions": []})["partitions"].append(index)
        request: FetchRequest = {
            "cluster_id": None, "replica_id": self.config.broker_id,
            "replica_state": {"replica_id": self.config.broker_id, "replica_epoch": self.broker_epoch()},
            "max_wait_ms": self.config.fetch_wait_max_ms, "min_bytes": self.config.fetch_min_bytes,
            "max_bytes": self.config.fetch_response_max_bytes, "isolation_level": 0,
            "session_id": data.session_id, "session_epoch": data.epoch,
            "topics": list(topics.values()), "forgotten_topics_data": list(forgotten.values()), "rack_id": ""}
        # What was asked, to recognise answers that a LeaderAndIsr made stale meanwhile: a copy,
        # since the session's map changes with the next fetch.
        if version >= 13 and self._topic_names_stale:  # a new map: the last fetch's answer is read already
            self._topic_names = {d[0]: tp[0] for tp, d in data.session_partitions.items()}
            self._topic_names_stale = False
        elif version >= 13:  # the names of the topic ids an answer may name: only new entries add any
            self._topic_names.update((d[0], tp[0]) for tp, d in data.to_send.items() if d[0] not in self._topic_names)
        return version, request, SentFetch(dict(data.session_partitions), self._topic_names)

    async def _process_fetch_response(self, asked_partitions: dict[TopicPartition, PartitionData],
                                      topics: list[tuple[str, list[FetchResponsePartitionData]]], version: int) -> None:
        """The answer's partitions (`topics`, by name: _named_topics), each read only if it is still
        at the offset and leader epoch it was asked at."""
        out_of_range: list[TopicPartition] = []
        for topic, partitions in topics:
            for data in partitions:
                tp = (topic, data["partition_index"])
                asked = asked_partitions.get(tp)
                state = self.partitions.get(tp)
                if (asked is None or state is None or state.truncating or state.fetch_offset != asked[FETCH_OFFSET]
                        or state.current_leader_epoch != asked[CURRENT_LEADER_EPOCH]):
                    continue  # the partition moved on while the fetch was out
                error_code = data["error_code"]  # compared as an int: no Errors lookup per partition
                if error_code == Errors.NONE:
                    diverging = data.get("diverging_epoch")
                    if version >= 12 and diverging and (diverging["epoch"] >= 0 or diverging["end_offset"] >= 0):
                        self._truncate_on_divergence(tp, state, diverging["epoch"], diverging["end_offset"])
                    else:
                        self._process_partition_data(tp, state, data)
                elif error_code == Errors.OFFSET_OUT_OF_RANGE:
                    out_of_range.append(tp)
                elif error_code == Errors.FENCED_LEADER_EPOCH:
                    log.info("%s: %s-%d is fenced at leader epoch %d: waiting for a newer LeaderAndIsr", self.name,
                             tp[0], tp[1], asked[CURRENT_LEADER_EPOCH])
                    self._mark_failed(tp)
                else:
                    error = Errors(error_code)
                    log.log(logging.INFO if error in (Errors.NOT_LEADER_OR_FOLLOWER, Errors.UNKNOWN_LEADER_EPOCH)
                            else logging.WARNING, "%s: fetching %s-%d failed with %s; backing off", self.name,
                            tp[0], tp[1], error.name)
                    self._delay([tp])
        for tp in out_of_range:
            await self._handle_out_of_range(tp)

    def _process_partition_data(self, tp: TopicPartition, state: PartitionFetchState,
                                data: FetchResponsePartitionData) -> None:
        """Kafka's processPartitionData: append, then follow the leader's HW and log start."""
        follower_log = self._follower_log(tp)
        if follower_log is None:
            return
        if state.fetch_offset != follower_log.log_end_offset:
            log.warning("%s: %s-%d fetched at %d but the log ends at %d; resuming from the log end", self.name,
                        tp[0], tp[1], state.fetch_offset, follower_log.log_end_offset)
            self._resume_at_log_end(state, follower_log)
            return
        records = data["records"]
        appended = False
        received = records is not None and len(records) > 0
        if received:
            try:
                # A decoded response holds a memoryview (or bytes); RecordsRegion, the other type
                # the generated FetchResponse allows, is what a leader's handler sends from its log.
                appended = self._append(follower_log, records)  # type: ignore[arg-type]
            except LogError as exc:
                log.error("%s: appending to %s-%d at offset %d failed: %s", self.name, tp[0], tp[1],
                          state.fetch_offset, exc)
                self._delay([tp])
                return
        if data["high_watermark"] != follower_log.high_watermark:  # unchanged on an idle partition
            follower_log.update_high_watermark(data["high_watermark"])
        leader_log_start = data["log_start_offset"]
        if leader_log_start > follower_log.log_start_offset:
            follower_log.maybe_increment_log_start_offset(min(leader_log_start, follower_log.high_watermark))
        if received:  # else the log end and its epoch are the ones this fetch asked from
            state.fetch_offset = follower_log.log_end_offset
            state.last_fetched_epoch = follower_log.leader_epoch_cache.latest_epoch()
        state.lag = max(0, data["high_watermark"] - state.fetch_offset)
        if appended:  # round robin: partitions that got data go to the back of the next fetch
            self.partitions[tp] = self.partitions.pop(tp)

    @staticmethod
    def _append(follower_log: UnifiedLog, records: Buffer) -> bool:
        try:
            info = follower_log.append_as_follower(records)
        except KafkaStorageException:
            raise  # the log directory is offline: nothing to retry here
        except LogError:
            # The leader's log start may fall inside its first batch (DeleteRecords): an empty
            # follower log then starts at that batch instead.
            first_offset = _first_batch_offset(records)
            end = follower_log.log_end_offset
            if first_offset is None or end != follower_log.log_start_offset or first_offset >= end:
                raise
            follower_log.truncate_fully_and_start_at(first_offset)
            info = follower_log.append_as_follower(records)
        return info.valid_bytes > 0

    def _resume_at_log_end(self, state: PartitionFetchState, follower_log: UnifiedLog) -> None:
        state.fetch_offset = follower_log.log_end_offset
        state.last_fetched_epoch = follower_log.leader_epoch_cache.latest_epoch()
        if state.last_fetched_epoch is None or not self.config.truncate_on_fetch:
            state.truncating = True

    # -- truncation -------------------------------------------------------------------------------
    def _truncate(self, tp: TopicPartition, state: PartitionFetchState, leader_epoch: int,
                  leader_end_offset: int) -> bool:
        """Truncates to where the leader's (epoch, end offset) says the logs part; True when
        reconciled (else the next OffsetForLeaderEpoch asks about an older epoch)."""
        follower_log = self._follower_log(tp)
        if follower_log is None:
            return True
        offset, done = truncation_offset(leader_epoch, leader_end_offset, follower_log.end_offset_for_epoch(leader_epoch),
                                         follower_log.log_end_offset, state.fetch_offset)
        if offset < follower_log.log_end_offset:
            log.info("%s: truncating %s-%d to %d (log end %d, high watermark %d) after leader epoch %d ends at %d",
                     self.name, tp[0], tp[1], offset, follower_log.log_end_offset, follower_log.high_watermark,
                     leader_epoch, leader_end_offset)
            if offset < follower_log.high_watermark:
                log.warning("%s: truncating %s-%d below its high watermark %d", self.name, tp[0], tp[1],
                            follower_log.high_watermark)
            follower_log.truncate_to(offset)
        else:
            # As Kafka's truncateTo does even when no record goes: drop epochs that start at the
            # log end. We may have led such an epoch without appending to it, and asking about
            # it again would get the same divergence answer forever.
            follower_log.leader_epoch_cache.truncate_from_end(follower_log.log_end_offset)
        state.fetch_offset = follower_log.log_end_offset
        state.last_fetched_epoch = follower_log.leader_epoch_cache.latest_epoch()
        return done

    def _truncate_on_divergence(self, tp: TopicPartition, state: PartitionFetchState, epoch: int,
                                end_offset: int) -> None:
        before = (state.fetch_offset, state.last_fetched_epoch)
        self._truncate(tp, state, epoch, end_offset)
        state.truncating = False  # with truncation on fetch the next fetch re-checks
        if (state.fetch_offset, state.last_fetched_epoch) == before:
            # Nothing changed, so the leader would answer the same: do not spin on it.
            log.warning("%s: %s-%d diverges at epoch %d / offset %d but there is nothing to truncate; backing off",
                        self.name, tp[0], tp[1], epoch, end_offset)
            self._delay([tp])

    async def _maybe_truncate(self) -> None:
        """Partitions that must reconcile before fetching: to the high watermark without epochs,
        else through OffsetForLeaderEpoch."""
        now = time.monotonic()
        pending = {tp: s for tp, s in self.partitions.items() if s.truncating and s.delayed_until <= now}
        with_epochs = {}
        for tp, state in pending.items():
            follower_log = self._follower_log(tp)
            if follower_log is None:
                continue
            latest = follower_log.leader_epoch_cache.latest_epoch()
            if latest is None:
                self._truncate(tp, state, UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)  # to the initial offset
                state.truncating = False
            else:
                with_epochs[tp] = (state.current_leader_epoch, latest)
        if with_epochs:
            await self._truncate_with_offsets_for_leader_epoch(with_epochs)

    async def _truncate_with_offsets_for_leader_epoch(self, asked: dict[TopicPartition, tuple[int, int]]) -> None:
        topics: dict[str, OffsetForLeaderEpochRequestOffsetForLeaderTopic] = {}
        for (topic, index), (current_epoch, epoch) in asked.items():
            topics.setdefault(topic, {"topic": topic, "partitions": []})["partitions"].append(
                {"partition": index, "current_leader_epoch": current_epoch, "leader_epoch": epoch})
        request: OffsetForLeaderEpochRequest = {"replica_id": self.config.broker_id, "topics": list(topics.values())}
        try:
            response: OffsetForLeaderEpochResponse = await self.client.send(
                ApiKey.OFFSET_FOR_LEADER_EPOCH, OFFSET_FOR_LEADER_EPOCH_VERSION, request)
        except ConnectionError as exc:
            log.info("%s: OffsetForLeaderEpoch failed (%s); backing off", self.name, exc)
            self._delay(asked)
            return
        for topic_entry in response["topics"]:
            for data in topic_entry["partitions"]:
                tp = (topic_entry["topic"], data["partition"])
                state = self.partitions.get(tp)
                if state is None or not state.truncating or tp not in asked \
                        or state.current_leader_epoch != asked[tp][0]:
                    continue
                error = Errors(data["error_code"])
                if error == Errors.NONE:
                    state.truncating = not self._truncate(tp, state, data["leader_epoch"], data["end_offset"])
                elif error == Errors.FENCED_LEADER_EPOCH:
                    self._mark_failed(tp)
                else:
                    log.info("%s: OffsetForLeaderEpoch for %s-%d failed with %s; backing off", self.name, tp[0],
                             tp[1], error.name)
                    self._delay([tp])

    async def _handle_out_of_range(self, tp: TopicPartition) -> None:
        """Kafka's fetchOffsetAndTruncate: past the leader's end -> truncate to it; before its
        start -> start over there; otherwise fetch from our end again."""
        state = self.partitions.get(tp)
        if state is None:
            return
        epoch = state.current_leader_epoch
        try:
            leader_end = await self._list_offset(tp, epoch, LATEST_TIMESTAMP)
            leader_start = await self._list_offset(tp, epoch, EARLIEST_TIMESTAMP)
        except (ConnectionError, _ListOffsetsError) as exc:
            log.info("%s: cannot find the leader's offsets for %s-%d (%s); backing off", self.name, tp[0], tp[1], exc)
            self._delay([tp])
            return
        follower_log = self._follower_log(tp)
        if follower_log is None or self.partitions.get(tp) is not state or state.current_leader_epoch != epoch:
            return
        end = follower_log.log_end_offset
        if leader_end < end:
            log.warning("%s: %s-%d: our log end %d is past the leader's %d: truncating", self.name, tp[0], tp[1],
                        end, leader_end)
            follower_log.truncate_to(leader_end)
        elif leader_start > end:
            log.warning("%s: %s-%d: our log end %d is before the leader's log start %d: starting over there",
                        self.name, tp[0], tp[1], end, leader_start)
            follower_log.truncate_fully_and_start_at(leader_start)
        state.fetch_offset = follower_log.log_end_offset
        state.last_fetched_epoch = follower_log.leader_epoch_cache.latest_epoch()
        state.truncating = False

    async def _list_offset(self, tp: TopicPartition, current_leader_epoch: int, timestamp: int) -> int:
        request: ListOffsetsRequest = {"replica_id": self.config.broker_id, "isolation_level": 0, "topics": [
            {"name": tp[0], "partitions": [{"partition_index": tp[1], "current_leader_epoch": current_leader_epoch,
                                            "timestamp": timestamp, "max_num_offsets": 1}]}],
            "timeout_ms": 0}  # max_num_offsets (v0) and timeout_ms (v10+): not in the v7 we send
        response: ListOffsetsResponse = await self.client.send(ApiKey.LIST_OFFSETS, LIST_OFFSETS_VERSION, request)
        data = response["topics"][0]["partitions"][0]
        if data["error_code"]:
            raise _ListOffsetsError(Errors(data["error_code"]).name)
        return data["offset"]


class _ListOffsetsError(Exception):
    pass


def _first_batch_offset(records: Buffer) -> int | None:
    view = memoryview(records)
    if len(view) < 8:
        return None
    return int.from_bytes(view[:8], "big", signed=True)


@dataclass(slots=True)
class ReplicaFetcherManager:
    """The fetchers of this broker, one per (leader, fetcher id) (Kafka's AbstractFetcherManager)."""
    config: FetcherConfig
    local_partitions: LocalPartitions
    broker_epoch: Callable[[], int]
    fetchers: dict[tuple[int, int], ReplicaFetcherThread] = field(default_factory=dict)
    failed_partitions: set[TopicPartition] = field(default_factory=set)

    @staticmethod
    def initial_fetch_state(topic_id: uuid.UUID | None, leader: BrokerEndPoint, current_leader_epoch: int,
                            init_offset: int, last_fetched_epoch: int | None) -> InitialFetchState:
        return InitialFetchState(topic_id, leader, current_leader_epoch, init_offset, last_fetched_epoch)

    def add_fetcher_for_partitions(self, partitions: dict[TopicPartition, InitialFetchState]) -> None:
        by_fetcher: dict[tuple[int, int], dict[TopicPartition, InitialFetchState]] = {}
        for tp, state in partitions.items():
            key = (state.leader.broker_id, fetcher_id_for(tp[0], tp[1], self.config.num_fetchers))
            by_fetcher.setdefault(key, {})[tp] = state
        for key, states in by_fetcher.items():
            leader = next(iter(states.values())).leader
            fetcher = self.fetchers.get(key)
            carried: dict[TopicPartition, PartitionFetchState] = {}
            if fetcher is not None and fetcher.leader != leader:  # the leader came back elsewhere
                carried, fetcher.partitions = fetcher.partitions, {}
                self._close_fetcher(self.fetchers.pop(key))
                fetcher = None
            if fetcher is None:
                fetcher = self.fetchers[key] = ReplicaFetcherThread(key[1], leader, self.config, self.local_partitions,
                                                                    self.broker_epoch, self.failed_partitions.add)
                fetcher.partitions.update(carried)  # the old endpoint's other partitions move along
                fetcher.start()
            fetcher.add_partitions(states)
            self.failed_partitions.difference_update(states)

    def remove_fetcher_for_partitions(self, tps: Collection[TopicPartition]
                                      ) -> dict[TopicPartition, PartitionFetchState]:
        removed: dict[TopicPartition, PartitionFetchState] = {}
        for fetcher in self.fetchers.values():
            removed.update(fetcher.remove_partitions(tps))
        self.failed_partitions.difference_update(tps)
        return removed

    def fetch_state(self, tp: TopicPartition) -> PartitionFetchState | None:
        for fetcher in self.fetchers.values():
            state = fetcher.partitions.get(tp)
            if state is not None:
                return state
        return None

    def shutdown_idle_fetcher_threads(self) -> None:
        for key in [k for k, f in self.fetchers.items() if not f.partitions]:
            self._close_fetcher(self.fetchers.pop(key))

    @staticmethod
    def _close_fetcher(fetcher: ReplicaFetcherThread) -> None:
        log.info("%s stopping", fetcher.name)
        asyncio.get_running_loop().create_task(fetcher.close())

    async def close(self) -> None:
        fetchers = list(self.fetchers.values())
        self.fetchers.clear()
        for fetcher in fetchers:
            await fetcher.close()
