"""Incremental fetch sessions (KIP-227), as Kafka 3.9's FetchSession.scala and FetchSessionHandler.

The leader's rules over raw Fetch requests against a kbroker subprocess (session ids, epochs,
incremental answers with and without changes, forgotten partitions, wrong epochs, unknown ids,
sessionless fetches, a full cache, topic ids, a parked incremental fetch, the FetchSessionCache
metrics); the cache's eviction rules and the fetcher's FetchSessionHandler as plain objects.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

import pytest

from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors
from kbroker.replica.delayed_fetch import FetchRequestPartition, FetchResult
from kbroker.replica.fetch_session import (
    INT32_MAX,
    CachedPartition,
    FetchManager,
    FetchSessionCache,
    FullFetchContext,
    IncrementalFetchContext,
    SessionErrorContext,
    SessionlessFetchContext,
    next_epoch,
)
from kbroker.replica.fetch_session_handler import FetchSessionHandler
from kbroker.testing.metrics_scrape import scrape
from kbroker.testing.processes import free_port
from kbroker.testing.raw_client import (
    DEFAULT_PRODUCE_VERSION,
    FETCH,
    NONE,
    RawClient,
    create_topic,
    produce,
    topic_id_of,
)
from kbroker.testing.records import batch_values, build_batch
from kbroker.testing.waiting import eventually

FETCH_SESSION_ID_NOT_FOUND = 70
INVALID_FETCH_SESSION_EPOCH = 71
FETCH_SESSION_TOPIC_ID_ERROR = 106
UNKNOWN_TOPIC_OR_PARTITION = 3
INCONSISTENT_TOPIC_ID = 103
DELETE_TOPICS = 20
VERSION = 12
SLOTS = 8
METRICS_PORT = free_port()


@pytest.fixture(scope="module")
def broker(module_broker_factory):
    return module_broker_factory(f"max.incremental.fetch.session.cache.slots={SLOTS}",
                                 f"metrics.listener=http://127.0.0.1:{METRICS_PORT}")


def body(partitions: list[tuple[str, int, int]], *, session_id: int = 0, epoch: int = -1,
         forgotten: list[tuple[str, int]] = (), max_wait_ms: int = 0, min_bytes: int = 0,
         topic_ids: dict[str, uuid.UUID] | None = None) -> dict:
    """A consumer's Fetch of (topic, partition, offset)s; `topic_ids` names topics by id (v13+)."""
    def topic_key(name: str) -> dict:
        return {"topic": "", "topic_id": topic_ids[name]} if topic_ids else {"topic": name}
    topics: dict[str, dict] = {}
    for topic, partition, offset in partitions:
        topics.setdefault(topic, {**topic_key(topic), "partitions": []})["partitions"].append(
            {"partition": partition, "fetch_offset": offset, "partition_max_bytes": 1 << 20})
    forgotten_topics: dict[str, dict] = {}
    for topic, partition in forgotten:
        forgotten_topics.setdefault(topic, {**topic_key(topic), "partitions": []})["partitions"].append(partition)
    return {"replica_id": -1, "max_wait_ms": max_wait_ms, "min_bytes": min_bytes, "max_bytes": 50 << 20,
            "session_id": session_id, "session_epoch": epoch, "topics": list(topics.values()),
            "forgotten_topics_data": list(forgotten_topics.values())}


def answered(response: dict) -> dict[tuple[str, int], dict]:
    return {(t["topic"], p["partition_index"]): p for t in response["responses"] for p in t["partitions"]}


def values_of(partition: dict) -> list[bytes]:
    return [v for _, _, v, _ in batch_values(partition["records"])]


def test_a_session_answers_only_the_partitions_that_changed(broker):
    topic = "sessions-incremental"
    create_topic(broker.port, topic, partitions=3)
    with RawClient(broker.port) as client:
        produce(client, topic, 0, build_batch([b"a", b"b"]))
        opened = client.call(FETCH, VERSION, body([(topic, 0, 0), (topic, 1, 0), (topic, 2, 0)], epoch=0))
        session_id = opened["session_id"]
        # The fetcher moves partition 0 on to offset 2; nothing changed anywhere: nothing answered.
        quiet = client.call(FETCH, VERSION, body([(topic, 0, 2)], session_id=session_id, epoch=1))
        empty = client.call(FETCH, VERSION, body([], session_id=session_id, epoch=2))
        produce(client, topic, 1, build_batch([b"c"]))
        # Partition 1 is read from the offset the session holds for it (0), unnamed in the request.
        changed = client.call(FETCH, VERSION, body([], session_id=session_id, epoch=3))
        after = client.call(FETCH, VERSION, body([(topic, 1, 1)], session_id=session_id, epoch=4))

    assert (opened["error_code"], len(answered(opened))) == (NONE, 3) and session_id > 0
    assert values_of(answered(opened)[(topic, 0)]) == [b"a", b"b"]
    assert (quiet["error_code"], quiet["session_id"], quiet["responses"]) == (NONE, session_id, [])
    assert (empty["error_code"], empty["responses"]) == (NONE, [])
    assert list(answered(changed)) == [(topic, 1)]
    assert (answered(changed)[(topic, 1)]["high_watermark"], values_of(answered(changed)[(topic, 1)])) == (1, [b"c"])
    assert after["responses"] == []


def test_forgotten_partitions_leave_the_session_and_an_empty_session_closes(broker):
    topic = "sessions-forget"
    create_topic(broker.port, topic, partitions=2)
    with RawClient(broker.port) as client:
        opened = client.call(FETCH, VERSION, body([(topic, 0, 0), (topic, 1, 0)], epoch=0))
        session_id = opened["session_id"]
        forget = client.call(FETCH, VERSION, body([], session_id=session_id, epoch=1, forgotten=[(topic, 1)]))
        produce(client, topic, 1, build_batch([b"x"]))
        produce(client, topic, 0, build_batch([b"y"]))
        later = client.call(FETCH, VERSION, body([], session_id=session_id, epoch=2))
        # Forgetting the last partition closes the session: a sessionless answer, then unknown.
        closing = client.call(FETCH, VERSION, body([], session_id=session_id, epoch=3, forgotten=[(topic, 0)]))
        gone = client.call(FETCH, VERSION, body([], session_id=session_id, epoch=4))

    assert forget["responses"] == []
    assert list(answered(later)) == [(topic, 0)]
    assert (closing["error_code"], closing["session_id"], closing["responses"]) == (NONE, 0, [])
    assert (gone["error_code"], gone["session_id"]) == (FETCH_SESSION_ID_NOT_FOUND, 0)


def test_session_errors_wrong_epoch_unknown_id_topic_ids_and_sessionless_fetches(broker):
    topic = "sessions-errors"
    create_topic(broker.port, topic)
    with RawClient(broker.port) as client:
        produce(client, topic, 0, build_batch([b"a"]))
        opened = client.call(FETCH, VERSION, body([(topic, 0, 0)], epoch=0))
        session_id = opened["session_id"]
        wrong_epoch = client.call(FETCH, VERSION, body([], session_id=session_id, epoch=5))
        by_id = client.call(FETCH, 13, body([], session_id=session_id, epoch=1,
                                            topic_ids={topic: topic_id_of(broker.port, topic)}))
        still = client.call(FETCH, VERSION, body([], session_id=session_id, epoch=1))
        unknown = client.call(FETCH, VERSION, body([], session_id=12345678, epoch=1))
        # Epoch -1: a sessionless full fetch, which also closes the session it names.
        sessionless = client.call(FETCH, VERSION, body([(topic, 0, 0)], session_id=session_id, epoch=-1))
        closed = client.call(FETCH, VERSION, body([], session_id=session_id, epoch=2))
        # Fetch v6 has no sessions: an answer of every partition, no session fields.
        old = client.call(FETCH, 6, body([(topic, 0, 0)], epoch=0))

    assert (wrong_epoch["error_code"], wrong_epoch["session_id"], wrong_epoch["responses"]) == \
        (INVALID_FETCH_SESSION_EPOCH, 0, [])
    assert by_id["error_code"] == FETCH_SESSION_TOPIC_ID_ERROR
    assert (still["error_code"], still["session_id"]) == (NONE, session_id)  # an error changes no epoch
    assert unknown["error_code"] == FETCH_SESSION_ID_NOT_FOUND
    assert (sessionless["session_id"], values_of(answered(sessionless)[(topic, 0)])) == (0, [b"a"])
    assert closed["error_code"] == FETCH_SESSION_ID_NOT_FOUND
    assert values_of(answered(old)[(topic, 0)]) == [b"a"]


def test_a_session_by_topic_ids_and_a_partition_in_error_answered_every_time(broker):
    topic = "sessions-ids"
    create_topic(broker.port, topic, partitions=2)
    ids = {topic: topic_id_of(broker.port, topic)}
    with RawClient(broker.port) as client:
        opened = client.call(FETCH, 13, body([(topic, 0, 0), (topic, 1, 0)], epoch=0, topic_ids=ids))
        session_id = opened["session_id"]
        produce(client, topic, 1, build_batch([b"z"]))
        by_id = client.call(FETCH, 13, body([], session_id=session_id, epoch=1, topic_ids=ids))
        missing = client.call(FETCH, VERSION, body([("sessions-no-such-topic", 0, 0)], epoch=0))
        again = client.call(FETCH, VERSION, body([], session_id=missing["session_id"], epoch=1))

    [entry] = by_id["responses"]
    assert entry["topic_id"] == ids[topic] and [p["partition_index"] for p in entry["partitions"]] == [1]
    assert missing["session_id"] > 0
    assert [p["error_code"] for t in again["responses"] for p in t["partitions"]] == [UNKNOWN_TOPIC_OR_PARTITION]


def test_a_deleted_topic_of_a_session_by_ids_and_its_re_creation(broker):
    """Kafka keeps a session partition's known name: once its topic is deleted it answers what a
    missing partition does, and once a topic of that name is created again (another topic id)
    INCONSISTENT_TOPIC_ID, until the fetcher forgets it."""
    topic = "sessions-deleted"
    create_topic(broker.port, topic)
    ids = {topic: topic_id_of(broker.port, topic)}
    with RawClient(broker.port) as client:
        session_id = client.call(FETCH, 13, body([(topic, 0, 0)], epoch=0, topic_ids=ids))["session_id"]
        epoch = [0]

        def errors() -> list[int]:
            epoch[0] += 1
            answer = client.call(FETCH, 13, body([], session_id=session_id, epoch=epoch[0], topic_ids=ids))
            assert answer["error_code"] == NONE
            return [p["error_code"] for t in answer["responses"] for p in t["partitions"]]

        deleted = client.call(DELETE_TOPICS, 4, {"topic_names": [topic], "timeout_ms": 30000})
        assert deleted["responses"][0]["error_code"] == NONE
        eventually(lambda: errors() == [UNKNOWN_TOPIC_OR_PARTITION], what="the deleted topic's error")
        create_topic(broker.port, topic)
        eventually(lambda: errors() == [INCONSISTENT_TOPIC_ID], what="the re-created topic's error")
        epoch[0] += 1
        forgotten = client.call(FETCH, 13, body([], session_id=session_id, epoch=epoch[0], topic_ids=ids,
                                                forgotten=[(topic, 0)]))

    assert (forgotten["error_code"], forgotten["session_id"], forgotten["responses"]) == (NONE, 0, [])


def test_a_parked_incremental_fetch_completes_with_the_append(broker):
    topic = "sessions-parked"
    create_topic(broker.port, topic, partitions=2)
    with RawClient(broker.port) as client:
        opened = client.call(FETCH, VERSION, body([(topic, 0, 0), (topic, 1, 0)], epoch=0))

        def produce_later() -> None:
            time.sleep(0.3)
            with RawClient(broker.port) as other:
                produce(other, topic, 1, build_batch([b"late"]), version=DEFAULT_PRODUCE_VERSION)

        producer = threading.Thread(target=produce_later)
        started = time.monotonic()
        producer.start()
        parked = client.call(FETCH, VERSION, body([], session_id=opened["session_id"], epoch=1, max_wait_ms=10_000,
                                                  min_bytes=1))
        waited = time.monotonic() - started
        producer.join()

    assert opened["session_id"] and parked["error_code"] == NONE
    assert waited < 9  # woken by the append, not by max_wait_ms
    assert list(answered(parked)) == [(topic, 1)]
    assert values_of(answered(parked)[(topic, 1)]) == [b"late"]


def test_a_full_cache_refuses_consumers_new_sessions_and_metrics_count_them(broker):
    topic = "sessions-full"
    create_topic(broker.port, topic)
    with RawClient(broker.port) as client:
        ids = []
        for _ in range(SLOTS + 1):  # the module's earlier tests hold some of the slots
            ids.append(client.call(FETCH, VERSION, body([(topic, 0, 0)], epoch=0))["session_id"])
            if not ids[-1]:
                break
        metrics = scrape(METRICS_PORT)
        for session_id in ids[:-1]:  # epoch -1 closes them
            client.call(FETCH, VERSION, body([(topic, 0, 0)], session_id=session_id, epoch=-1))
        reopened = client.call(FETCH, VERSION, body([(topic, 0, 0)], epoch=0))["session_id"]

    # A consumer cannot evict a session younger than two minutes: with the cache full, a new
    # consumer's full fetch is answered without a session (id 0).
    assert ids[-1] == 0 and all(ids[:-1]) and reopened
    prefix = "kafka_server_fetchsessioncache_"
    assert metrics[(prefix + "numincrementalfetchsessions", frozenset())] == SLOTS
    assert metrics[(prefix + "numincrementalfetchpartitionscached", frozenset())] >= SLOTS
    assert metrics[(prefix + "incrementalfetchsessionevictionspersec_total", frozenset())] == 0


def set_consumer_quota(port: int, rate: float | None) -> None:
    """consumer_byte_rate of RawClient's client id ("data-path-tests"); None removes it."""
    entity = [{"entity_type": "client-id", "entity_name": "data-path-tests"}]
    body = {"entries": [{"entity": entity, "ops": [{"key": "consumer_byte_rate", "value": rate or 0.0,
                                                      "remove": rate is None}]}], "validate_only": False}
    with RawClient(port) as client:
        assert client.call(ApiKey.ALTER_CLIENT_QUOTAS, 1, body)["entries"][0]["error_code"] == NONE


def test_an_answer_emptied_by_a_quota_leaves_the_session_consistent(broker_factory):
    """KIP-219 throttling empties a consumer's answer: a full fetch then opens no session (Kafka's
    throttled FullFetchContext answers session id 0), and an incremental session sends every
    partition again next time, since the client heard nothing of what the emptied answer held.
    Each throttled connection is muted for its throttle time: the next fetch comes on another."""
    broker = broker_factory()
    topic = "sessions-quota"
    create_topic(broker.port, topic, partitions=2)
    with RawClient(broker.port) as client:
        produce(client, topic, 0, build_batch([b"a" * 100]))
        session_id = client.call(FETCH, VERSION, body([(topic, 0, 0), (topic, 1, 0)], epoch=0))["session_id"]
    set_consumer_quota(broker.port, 1.0)
    with RawClient(broker.port) as client:
        produce(client, topic, 0, build_batch([b"b" * 100]))
        throttled = client.call(FETCH, VERSION, body([(topic, 0, 1)], session_id=session_id, epoch=1))
    with RawClient(broker.port) as client:
        full = client.call(FETCH, VERSION, body([(topic, 0, 0)], epoch=0))
    set_consumer_quota(broker.port, None)
    with RawClient(broker.port) as client:
        after = client.call(FETCH, VERSION, body([], session_id=session_id, epoch=2))

    assert throttled["throttle_time_ms"] > 0 and throttled["responses"] == []
    assert throttled["session_id"] == session_id
    assert full["throttle_time_ms"] > 0 and (full["session_id"], full["responses"]) == (0, [])
    # Partition 1 did not change, but the emptied answer may have held it: both are sent again.
    assert sorted(answered(after)) == [(topic, 0), (topic, 1)]
    assert values_of(answered(after)[(topic, 0)]) == [b"b" * 100]


# --- the cache and the fetcher's handler, as plain objects --------------------------------------


def part(topic: str, partition: int, offset: int = 0) -> CachedPartition:
    return CachedPartition(topic, uuid.UUID(int=0), FetchRequestPartition(topic, partition, offset, 1 << 20))


def test_epochs_wrap_after_int_max_and_sessionless_stays_sessionless():
    assert (next_epoch(0), next_epoch(7), next_epoch(INT32_MAX), next_epoch(-1)) == (1, 8, 1, -1)


def test_eviction_follows_kafkas_rules():
    now = [0]
    cache = FetchSessionCache(2, eviction_ms=1000, clock_ms=lambda: now[0])

    def create(privileged: bool, size: int) -> int:
        return cache.maybe_create_session(now[0], privileged, size, False,
                                          lambda: {(f"t{i}", i): part(f"t{i}", i) for i in range(size)})

    consumer = create(False, 5)
    follower = create(True, 1)
    assert consumer and follower and cache.total_partitions == 6
    assert create(False, 10) == 0  # a consumer evicts nothing younger than the eviction time
    third = create(True, 1)  # a follower evicts a consumer's session at any time
    assert third and consumer not in cache.sessions and cache.evictions == 1
    assert create(True, 50) == 0  # but not another follower's, however small, while it is young
    now[0] = 1500
    cache.touch(cache.sessions[third], now[0])  # still in use
    fourth = create(False, 1)  # the follower session unused for 1.5 s is stale: anyone evicts it
    assert fourth and follower not in cache.sessions and cache.evictions == 2
    assert len(cache) == 2 and cache.total_partitions == 2


def test_the_fetch_manager_answers_kafkas_contexts():
    manager = FetchManager(FetchSessionCache(10))
    assert isinstance(manager.new_context(6, 5, 3, False, [part("t", 0)], []), SessionlessFetchContext)
    assert isinstance(manager.new_context(12, 0, -1, False, [part("t", 0)], []), SessionlessFetchContext)
    full = manager.new_context(12, 0, 0, True, [part("t", 0), part("t", 1)], [])
    assert isinstance(full, FullFetchContext)
    error, session_id, answers = full.update_and_generate_response_data(
        [FetchResult(Errors.NONE, 5, 5, 0), FetchResult(Errors.NONE, 7, 7, 0)])
    assert error == Errors.NONE and session_id and len(answers) == 2
    incremental = manager.new_context(12, session_id, 1, True, [], [])
    assert isinstance(incremental, IncrementalFetchContext)
    # A duplicate of the same epoch while the first waits: refused.
    duplicate = manager.new_context(12, session_id, 1, True, [], [])
    assert isinstance(duplicate, SessionErrorContext) and duplicate.error == Errors.INVALID_FETCH_SESSION_EPOCH
    # Records of partition 0 and an error on 1: both answered, and partition 0 goes to the end.
    error, _, answers = incremental.update_and_generate_response_data(
        [FetchResult(Errors.NONE, 5, 5, 0, records=b"x", size=1), FetchResult(Errors.NOT_LEADER_OR_FOLLOWER)])
    assert [p.request.partition for p, _ in answers] == [0, 1]
    session = manager.cache.sessions[session_id]
    assert [p.request.partition for p in session.partitions.values()] == [1, 0]
    later = manager.new_context(12, session_id, 2, True, [], [])
    _, _, answers = later.update_and_generate_response_data(
        [FetchResult(Errors.NONE, 7, 7, 0), FetchResult(Errors.NONE, 5, 5, 0)])
    assert [p.request.partition for p, _ in answers] == [1]  # back from its error: sent again


def test_the_fetchers_session_handler_reads_no_answer_that_does_not_fit_the_fetch(caplog):
    """Kafka's verifyFullFetchResponsePartitions and verifyIncrementalFetchResponsePartitions: a
    full answer names exactly the session's partitions, an incremental one none outside them;
    otherwise it is not read and the session starts over (a new one after a full fetch, closing
    the old one after an incremental fetch)."""
    handler = FetchSessionHandler("test")
    tid = uuid.uuid4()
    wanted = {("t", 0): (tid, 0, 0, 1 << 20, 0, 0), ("t", 1): (tid, 0, 0, 1 << 20, 0, 0)}
    handler.build(dict(wanted), True)
    with caplog.at_level(logging.INFO, logger="kbroker.replica.fetcher"):
        assert not handler.handle_response(Errors.NONE, 77, {("t", 0), ("u", 0)})
    assert "invalid full fetch response with omitted=(t-1), extra=(u-0)" in caplog.text
    assert (handler.session_id, handler.epoch) == (0, 0)
    handler.build(dict(wanted), True)
    assert not handler.handle_response(Errors.NONE, 77, {("t", 0), ("t", 1)}, unknown_topic_ids=1)
    handler.build(dict(wanted), True)
    assert handler.handle_response(Errors.NONE, 77, {("t", 0), ("t", 1)})
    assert (handler.session_id, handler.epoch) == (77, 1)
    handler.build(dict(wanted), True)
    assert handler.handle_response(Errors.NONE, 77, set())  # nothing changed: an incremental answer names none
    handler.build(dict(wanted), True)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="kbroker.replica.fetcher"):
        assert not handler.handle_response(Errors.NONE, 77, {("t", 0), ("t", 9)})
    assert "invalid incremental fetch response with extra=(t-9)" in caplog.text
    assert (handler.session_id, handler.epoch) == (77, 0)  # the next fetch closes session 77
    # KIP-219: a throttled full fetch is answered empty: start over, with no log line.
    handler.build(dict(wanted), True)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="kbroker.replica.fetcher"):
        assert not handler.handle_response(Errors.NONE, 0, set(), throttled=True)
    assert caplog.text == "" and (handler.session_id, handler.epoch) == (0, 0)


def test_the_fetchers_session_handler_sends_what_changed():
    handler = FetchSessionHandler("test")
    tid = uuid.uuid4()

    def data(offset: int, epoch: int = 0) -> tuple:
        return (tid, offset, 0, 1 << 20, epoch, 0)

    full = handler.build({("t", 0): data(0), ("t", 1): data(0)}, True)
    assert (full.session_id, full.epoch, list(full.to_send)) == (0, 0, [("t", 0), ("t", 1)])
    assert handler.handle_response(Errors.NONE, 77, {("t", 0), ("t", 1)})
    incremental = handler.build({("t", 0): data(5), ("t", 1): data(0), ("t", 2): data(0)}, True)
    assert (incremental.session_id, incremental.epoch) == (77, 1)
    assert list(incremental.to_send) == [("t", 2), ("t", 0)] and incremental.to_forget == []
    assert handler.handle_response(Errors.NONE, 77)
    forgetting = handler.build({("t", 0): data(5), ("t", 2): data(0)}, True)
    assert (forgetting.epoch, forgetting.to_send, forgetting.to_forget) == (2, {}, [(("t", 1), tid)])
    assert list(forgetting.session_partitions) == [("t", 0), ("t", 2)]
    # An out-of-step epoch: the next fetch closes the session and opens another.
    assert not handler.handle_response(Errors.INVALID_FETCH_SESSION_EPOCH, 0)
    assert (handler.session_id, handler.epoch) == (77, 0)
    assert not handler.handle_response(Errors.FETCH_SESSION_ID_NOT_FOUND, 0)
    assert (handler.session_id, handler.epoch) == (0, 0)
    reopened = handler.build({("t", 0): data(5)}, True)
    assert (reopened.epoch, list(reopened.to_send)) == (0, [("t", 0)])
    assert handler.handle_response(Errors.NONE, 0, {("t", 0)})  # no session from the leader: full fetches on
    assert (handler.session_id, handler.epoch) == (0, 0)
