"""The Java client (kafka-clients 4.4.0 and 4.0.1) producing and consuming against kbroker.

One Driver JVM per client version for the whole module (java_driver.py), one broker.

- Producer: acks 0, 1 and all; idempotent (offsets without gaps, DescribeProducers shows its
  sequence), also across a broker restart; gzip, snappy, lz4 and zstd; headers; a record near message.max.bytes is stored and
  read back whole, one above it gets RecordTooLargeException.
- Consumer: assign with seek, seekToBeginning/End, offsetsForTimes, pause/resume, commitSync and
  commitAsync with committed(); subscribe with the classic group protocol and the range and
  cooperative-sticky assignors: two members share the partitions, and the survivor takes them
  all when the other leaves; a static member (group.instance.id) comes back to its partitions
  without a rebalance. group.protocol=consumer (KIP-848) shares the partitions through the
  broker's server-side assignor.
- Fetch edges: a position past the log end is OffsetOutOfRangeException with
  auto.offset.reset=none and resets with earliest; fetch limits of one byte still deliver a
  batch at a time. A topic with compression.type=zstd and LogAppendTime recompresses an lz4
  producer's batches and stamps them: RecordMetadata and the consumer see the broker's time.
- Fetch sessions (KIP-227): a consumer of 24 partitions opens one and fetches incrementally.
- Transactions: a transactional producer's committed records are what a read_committed consumer
  sees, its aborted ones are not; the Admin client lists and describes the transactional id.
  sendOffsetsToTransaction commits a group's offsets with the transaction (TxnOffsetCommit v4:
  the client sends v6 only with transaction.version 2, not advertised).
  Admin.fenceProducers fences a producer with an open transaction (its commit fails, its
  records are aborted); Admin.abortTransaction (kafka-transactions.sh abort: WriteTxnMarkers
  from a client to the partition leader) ends a transaction at the partition, so the last stable
  offset moves past it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from java_driver import JAVA_CLIENT_VERSIONS, JavaDriver, JavaError, driver_for

from kbroker.testing.metrics_scrape import requests_by_version, scrape
from kbroker.testing.processes import free_port
from kbroker.testing.records import stored_codecs
from kbroker.testing.waiting import eventually

PARTITIONS = 3
MESSAGE_MAX_BYTES = 1048588


@pytest.fixture(scope="module")
def metrics_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def kbroker(module_broker_factory, metrics_port):
    return module_broker_factory(f"num.partitions={PARTITIONS}", "offsets.topic.num.partitions=3",
                                 "transaction.state.log.num.partitions=3",
                                 f"metrics.listener=http://127.0.0.1:{metrics_port}")


@pytest.fixture(scope="module", params=JAVA_CLIENT_VERSIONS)
def java(request, kbroker, tmp_path_factory) -> Iterator[JavaDriver]:
    yield from driver_for(request, kbroker.bootstrap, tmp_path_factory)


def new_topic(java: JavaDriver, name: str, partitions: int = PARTITIONS, **configs: str) -> str:
    """A topic of its own for each client version (they share the module's broker)."""
    topic = f"{name}-{java.version.replace('.', '_')}"
    settings = ";".join(f"{k.replace('_', '.')}:{v}" for k, v in configs.items())
    java.call("create_topic", name=topic, partitions=partitions, **({"configs": settings} if settings else {}))
    return topic


def read_all(java: JavaDriver, topic: str, expected: int, partitions: int = PARTITIONS,
             until_offset: int | None = None, **settings: str) -> list[dict]:
    """Every record of `topic` from the beginning, through an assigned consumer: `expected`
    records, or those up to the one at `until_offset` (then `expected` is only a bound)."""
    name = f"reader-{topic}-{time.monotonic_ns()}"
    java.call("consumer", name, **{"auto.offset.reset": "earliest", "enable.auto.commit": "false", **settings})
    tps = [f"{topic}:{p}" for p in range(partitions)]
    java.call("assign", name, tps=tps)
    java.call("seek_to_beginning", name, tps=tps)
    until = {} if until_offset is None else {"until_offset": until_offset}
    records = java.call("poll", name, max=expected, timeout_ms=20000, **until)
    java.call("close_consumer", name)
    return records


@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_producer_acks(java, acks):
    topic = new_topic(java, f"acks-{acks}")
    name = f"acks-{acks}"
    java.call("producer", name, acks=acks, **{"linger.ms": "5"})
    sent = java.call("send", name, topic=topic, count=30)
    java.call("close_producer", name)
    if acks == "0":
        assert all(offset == -1 for _, offset, _ in sent)  # acks=0 gets no offsets back
    else:
        per_partition: dict[int, list[int]] = {}
        for partition, offset, _ in sent:
            per_partition.setdefault(partition, []).append(offset)
        assert all(offsets == list(range(len(offsets))) for offsets in per_partition.values())
    records = read_all(java, topic, 30)
    assert sorted(r["value"] for r in records) == sorted(f"value-{i}" for i in range(30))


def test_idempotent_producer(java):
    topic = new_topic(java, "idempotent", partitions=1)
    java.call("producer", "idem", acks="all", **{"enable.idempotence": "true", "max.in.flight.requests.per.connection": "5"})
    sent = java.call("send", "idem", topic=topic, count=200)
    assert [offset for _, offset, _ in sent] == list(range(200))
    producers = java.call("describe_producers", tps=[f"{topic}:0"])
    java.call("close_producer", "idem")
    assert len(producers) == 1
    assert producers[0]["last_sequence"] == 199
    assert producers[0]["txn_start_offset"] == -1


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compression(java, kbroker, codec):
    topic = new_topic(java, f"codec-{codec}")
    java.call("producer", codec, **{"compression.type": codec, "linger.ms": "20", "batch.size": "65536"})
    java.call("send", codec, topic=topic, count=500, prefix="compressible-value-compressible-value-")
    java.call("close_producer", codec)
    records = read_all(java, topic, 500)
    assert sorted(r["value"] for r in records) == sorted(f"compressible-value-compressible-value-{i}" for i in range(500))
    assert stored_codecs(kbroker.log_dir, topic, PARTITIONS) == {codec}  # stored as the producer sent it


def test_headers_keys_and_timestamps(java):
    topic = new_topic(java, "headers", partitions=1)
    java.call("producer", "headers")
    java.call("send", "headers", topic=topic, count=3, key="k1", headers="trace:abc;origin:java", timestamp=1_600_000_000_000)
    java.call("close_producer", "headers")
    records = read_all(java, topic, 3, partitions=1)
    assert [(r["key"], r["headers"], r["timestamp"]) for r in records] == \
        [("k1", {"trace": "abc", "origin": "java"}, 1_600_000_000_000)] * 3


def test_large_records(java):
    topic = new_topic(java, "large", partitions=1)
    java.call("producer", "large", **{"max.request.size": str(4 * MESSAGE_MAX_BYTES), "compression.type": "none"})
    # a batch of one record just under message.max.bytes (the batch and record overheads fit)
    size = MESSAGE_MAX_BYTES - 200
    java.call("send", "large", topic=topic, size=size)
    with pytest.raises(JavaError) as too_large:
        java.call("send", "large", topic=topic, size=MESSAGE_MAX_BYTES + 1000)
    java.call("close_producer", "large")
    assert too_large.value.kind == "RecordTooLargeException"
    records = read_all(java, topic, 1, partitions=1)
    assert [r["value_len"] for r in records] == [size]


def test_consumer_assign_seek_times_pause(java):
    topic = new_topic(java, "positions", partitions=2)
    java.call("producer", "pos")
    for partition in (0, 1):
        # timestamps 1000, 2000, ... so offsetsForTimes has something to find
        for i in range(10):
            java.call("send", "pos", topic=topic, partition=partition, timestamp=1000 * (i + 1), value=f"p{partition}-{i}")
    java.call("close_producer", "pos")
    tps = [f"{topic}:0", f"{topic}:1"]
    java.call("consumer", "pos", **{"enable.auto.commit": "false", "group.id": f"g-{topic}"})
    java.call("assign", "pos", tps=tps)
    assert java.call("offsets_for_times", "pos", tps=tps, ts=4500) == {f"{topic}:0": [4, 5000], f"{topic}:1": [4, 5000]}
    assert java.call("offsets_for_times", "pos", tps=[f"{topic}:0"], ts=99_000) == {f"{topic}:0": None}
    assert java.call("end_offsets", "pos", tps=tps) == {f"{topic}:0": 10, f"{topic}:1": 10}
    java.call("seek", "pos", tp=f"{topic}:0", offset=7)
    java.call("seek", "pos", tp=f"{topic}:1", offset=9)
    java.call("pause", "pos", tps=[f"{topic}:1"])
    records = java.call("poll", "pos", max=3, timeout_ms=10000)
    assert [r["value"] for r in records] == ["p0-7", "p0-8", "p0-9"]
    assert java.call("poll", "pos", max=1, timeout_ms=600) == []  # paused: nothing from partition 1
    java.call("resume", "pos", tps=[f"{topic}:1"])
    assert [r["value"] for r in java.call("poll", "pos", max=1, timeout_ms=10000)] == ["p1-9"]
    assert java.call("commit_sync", "pos") == "committed"
    assert java.call("committed", "pos", tps=tps) == {f"{topic}:0": [10, ""], f"{topic}:1": [10, ""]}
    java.call("seek_to_beginning", "pos", tps=tps)
    java.call("poll", "pos", max=20, timeout_ms=10000)
    java.call("commit_sync", "pos", tp=f"{topic}:0", offset=3, metadata="by-hand")
    assert java.call("committed", "pos", tps=[f"{topic}:0"]) == {f"{topic}:0": [3, "by-hand"]}
    assert java.call("commit_async", "pos") == "committed"
    assert java.call("committed", "pos", tps=tps) == {f"{topic}:0": [10, ""], f"{topic}:1": [10, ""]}
    java.call("close_consumer", "pos")


ASSIGNORS = {"range": "org.apache.kafka.clients.consumer.RangeAssignor",
             "cooperative-sticky": "org.apache.kafka.clients.consumer.CooperativeStickyAssignor"}


@pytest.mark.parametrize("assignor", ASSIGNORS)
def test_classic_group_two_members_rebalance(java, assignor):
    topic = new_topic(java, f"group-{assignor}", partitions=4)
    group = f"classic-{topic}"
    every = [f"{topic}:{p}" for p in range(4)]
    java.call("producer", "grp")
    java.call("send", "grp", topic=topic, count=40)
    java.call("close_producer", "grp")
    settings = {"group.id": group, "auto.offset.reset": "earliest", "group.protocol": "classic",
                "session.timeout.ms": "10000", "heartbeat.interval.ms": "500",
                "partition.assignment.strategy": ASSIGNORS[assignor]}
    java.call("consumer", "m1", **settings)
    java.call("subscribe", "m1", topics=topic)
    assert java.call("poll_group", names="m1", partitions=4) == {"m1": every}
    java.call("consumer", "m2", **settings)
    java.call("subscribe", "m2", topics=topic)
    # cooperative-sticky needs two rebalances (revoke, then assign): poll_group polls through both
    shared = java.call("poll_group", names="m1,m2", partitions=4)
    assert sorted(shared["m1"] + shared["m2"]) == every
    assert len(shared["m1"]) == len(shared["m2"]) == 2
    described = java.call("describe_groups", ids=group)[group]
    assert (described["state"], described["type"], described["assignor"]) == ("Stable", "Classic", assignor)
    assert sorted(p for m in described["members"] for p in m["assignment"]) == every
    java.call("commit_sync", "m1")
    java.call("close_consumer", "m2")  # LeaveGroup: m1 takes every partition at the next rebalance
    assert java.call("poll_group", names="m1", partitions=4) == {"m1": every}
    java.call("close_consumer", "m1")
    assert group in java.call("list_groups")


def test_consumer_group_protocol_two_members(java):
    """KIP-848 (group.protocol=consumer): the broker's uniform assignor shares the partitions
    between two members, and the one left takes them all once the other leaves."""
    topic = new_topic(java, "kip848", partitions=4)
    group = f"consumer-{topic}"
    every = [f"{topic}:{p}" for p in range(4)]
    java.call("producer", "kip")
    java.call("send", "kip", topic=topic, count=40)
    java.call("close_producer", "kip")
    settings = {"group.id": group, "auto.offset.reset": "earliest", "group.protocol": "consumer"}
    java.call("consumer", "n1", **settings)
    java.call("subscribe", "n1", topics=topic)
    assert java.call("poll_group", names="n1", partitions=4) == {"n1": every}
    java.call("consumer", "n2", **settings)
    java.call("subscribe", "n2", topics=topic)
    shared = java.call("poll_group", names="n1,n2", partitions=4)
    assert sorted(shared["n1"] + shared["n2"]) == every
    assert len(shared["n1"]) == len(shared["n2"]) == 2
    described = java.call("describe_groups", ids=group)[group]
    assert (described["state"], described["type"]) == ("Stable", "Consumer")
    java.call("commit_sync", "n1")
    java.call("close_consumer", "n2")
    assert java.call("poll_group", names="n1", partitions=4) == {"n1": every}
    java.call("close_consumer", "n1")


def test_transactions_read_committed(java):
    topic = new_topic(java, "txn", partitions=2)
    txn_id = f"txn-{topic}"
    java.call("producer", "txn", **{"transactional.id": txn_id})
    java.call("init_txn", "txn")
    java.call("begin_txn", "txn")
    java.call("send", "txn", topic=topic, count=10, prefix="committed-")
    java.call("commit_txn", "txn")
    java.call("begin_txn", "txn")
    java.call("send", "txn", topic=topic, count=10, prefix="aborted-")
    described = java.call("describe_transactions", ids=txn_id)[txn_id]
    assert described["state"] == "Ongoing"
    assert described["partitions"]  # the partitions the open transaction wrote to
    java.call("abort_txn", "txn")
    java.call("begin_txn", "txn")
    java.call("send", "txn", topic=topic, count=5, prefix="later-")
    java.call("commit_txn", "txn")
    # EndTxn answers once PrepareCommit is written; the markers and CompleteCommit follow (Kafka's order)
    eventually(lambda: {t["id"]: t["state"] for t in java.call("list_transactions")}[txn_id] == "CompleteCommit",
               what="the transaction to complete")
    java.call("close_producer", "txn")
    committed = read_all(java, topic, 15, partitions=2, **{"isolation.level": "read_committed"})
    assert sorted(r["value"] for r in committed) == sorted([f"committed-{i}" for i in range(10)] + [f"later-{i}" for i in range(5)])
    everything = read_all(java, topic, 25, partitions=2)
    assert len(everything) == 25  # read_uncommitted sees the aborted ones too (markers skipped)


def test_send_offsets_to_transaction(java, metrics_port):
    """sendOffsetsToTransaction: the group's offsets are those of the committed transaction, not
    of the aborted one. TxnOffsetCommit v6 (topic ids, KIP-1319) is served, but the Java client
    sends it only with transaction.version 2 (TxnOffsetCommitRequest.Builder.forTopicIdsOrNames:
    v4 at most otherwise), which kbroker does not advertise: it stays on v4."""
    topic = new_topic(java, "txn-offsets", partitions=2)
    group = f"group-{topic}"
    before = requests_by_version(metrics_port, "TxnOffsetCommit")
    java.call("producer", "txn-offsets", **{"transactional.id": f"txn-{topic}"})
    java.call("init_txn", "txn-offsets")
    for offsets, commit in (((f"{topic}:0:5", f"{topic}:1:7"), True), ((f"{topic}:0:50",), False)):
        java.call("begin_txn", "txn-offsets")
        java.call("send", "txn-offsets", topic=topic, count=2, prefix="x-")
        java.call("send_offsets_txn", "txn-offsets", group=group, offsets=offsets)
        java.call("commit_txn" if commit else "abort_txn", "txn-offsets")
    java.call("close_producer", "txn-offsets")
    eventually(lambda: java.call("list_group_offsets", id=group) == {f"{topic}:0": 5, f"{topic}:1": 7},
               what="the committed transaction's offsets")
    after = requests_by_version(metrics_port, "TxnOffsetCommit")
    sent = {v: n - before.get(v, 0) for v, n in after.items() if n > before.get(v, 0)}
    assert sent == {4: 2}


def test_a_consumer_of_many_partitions_fetches_in_a_session(java, metrics_port):
    """KIP-227: the Java consumer opens a fetch session with its first full fetch (the broker's
    FetchSessionCache metrics count it, with every assigned partition) and then fetches
    incrementally; records appended to one partition among many at a time keep arriving."""
    partitions = 24
    topic = new_topic(java, "sessions", partitions=partitions)
    java.call("producer", "sessions")
    for p in range(partitions):
        java.call("send", "sessions", topic=topic, partition=p, count=2, prefix=f"first-{p}-")
    name = f"sessions-{topic}"
    java.call("consumer", name, **{"auto.offset.reset": "earliest", "enable.auto.commit": "false"})
    tps = [f"{topic}:{p}" for p in range(partitions)]
    java.call("assign", name, tps=tps)
    java.call("seek_to_beginning", name, tps=tps)
    assert len(java.call("poll", name, max=2 * partitions, timeout_ms=20000)) == 2 * partitions
    cached = scrape(metrics_port)[("kafka_server_fetchsessioncache_numincrementalfetchpartitionscached", frozenset())]
    assert cached >= partitions
    for round_, p in enumerate((3, 17, 3, 23)):
        java.call("send", "sessions", topic=topic, partition=p, count=3, prefix=f"round-{round_}-")
        records = java.call("poll", name, max=3, timeout_ms=20000)
        assert [r["value"] for r in records] == [f"round-{round_}-{i}" for i in range(3)]
    java.call("close_producer", "sessions")
    java.call("close_consumer", name)


def test_admin_fences_producers_and_aborts_a_transaction(java):
    topic = new_topic(java, "fenced", partitions=1)
    tp = f"{topic}:0"
    txn_id = f"fence-{topic}"
    java.call("producer", "victim", **{"transactional.id": txn_id})
    java.call("init_txn", "victim")
    java.call("begin_txn", "victim")
    java.call("send", "victim", topic=topic, count=5, prefix="fenced-")
    assert java.call("fence_producers", ids=txn_id) == "fenced"
    with pytest.raises(JavaError) as fenced:
        java.call("commit_txn", "victim")
    assert fenced.value.kind in ("ProducerFencedException", "InvalidProducerEpochException")
    java.call("close_producer", "victim")
    assert committed_values_up_to_a_sentinel(java, topic) == ["sentinel"]

    # a transaction left open, ended at the partition by the Admin client instead of its producer
    java.call("producer", "hanging", **{"transactional.id": f"hanging-{topic}", "transaction.timeout.ms": "60000"})
    java.call("init_txn", "hanging")
    java.call("begin_txn", "hanging")
    java.call("send", "hanging", topic=topic, count=3, prefix="hanging-")
    [open_txn] = [p for p in java.call("describe_producers", tps=tp) if p["txn_start_offset"] >= 0]
    java.call("consumer", "lso", **{"isolation.level": "read_committed"})
    stable_before = java.call("end_offsets", "lso", tps=tp)[tp]
    assert stable_before == open_txn["txn_start_offset"]  # the open transaction holds the LSO
    assert java.call("abort_transaction", tp=tp, producer_id=open_txn["producer_id"], epoch=open_txn["epoch"],
                     coordinator_epoch=max(open_txn["coordinator_epoch"], 0)) == "aborted"
    latest = java.call("list_offsets", tps=tp, spec="latest")[tp][0]
    assert java.call("end_offsets", "lso", tps=tp)[tp] == latest > stable_before  # past the aborted records
    java.call("close_consumer", "lso")
    java.call("close_producer", "hanging")
    assert committed_values_up_to_a_sentinel(java, topic) == ["sentinel", "sentinel"]


def committed_values_up_to_a_sentinel(java: JavaDriver, topic: str) -> list[str]:
    """What read_committed sees of partition 0 up to a record written now, outside any
    transaction: waiting for it (not for a time) shows that nothing aborted is delivered."""
    java.call("producer", "sentinel")
    [[_, sentinel_offset, _]] = java.call("send", "sentinel", topic=topic, partition=0, value="sentinel")
    java.call("close_producer", "sentinel")
    records = read_all(java, topic, 100, partitions=1, until_offset=sentinel_offset,
                       **{"isolation.level": "read_committed"})
    return [r["value"] for r in records]


def test_fetch_out_of_range_and_tiny_fetch_sizes(java):
    topic = new_topic(java, "fetch-edges", partitions=1)
    tp = f"{topic}:0"
    java.call("producer", "edges", **{"linger.ms": "0"})
    for i in range(5):  # five batches
        java.call("send", "edges", topic=topic, partition=0, value=f"e{i}-" + "x" * 500)
    java.call("close_producer", "edges")
    java.call("consumer", "strict", **{"auto.offset.reset": "none"})
    java.call("assign", "strict", tps=tp)
    java.call("seek", "strict", tp=tp, offset=1000)
    with pytest.raises(JavaError) as out_of_range:
        java.call("poll", "strict", max=1, timeout_ms=10000)
    assert out_of_range.value.kind == "OffsetOutOfRangeException"  # the broker's OFFSET_OUT_OF_RANGE
    java.call("close_consumer", "strict")
    java.call("consumer", "resetting", **{"auto.offset.reset": "earliest"})
    java.call("assign", "resetting", tps=tp)
    java.call("seek", "resetting", tp=tp, offset=1000)
    assert [r["offset"] for r in java.call("poll", "resetting", max=5, timeout_ms=10000)] == [0, 1, 2, 3, 4]
    java.call("close_consumer", "resetting")
    # limits far below one batch: the first batch is still returned each time (KIP-74)
    tiny = read_all(java, topic, 5, partitions=1, **{"fetch.max.bytes": "1", "max.partition.fetch.bytes": "1"})
    assert [r["offset"] for r in tiny] == [0, 1, 2, 3, 4]


def test_topic_compression_and_log_append_time(java, kbroker):
    topic = new_topic(java, "recompressed", partitions=1, compression_type="zstd",
                      message_timestamp_type="LogAppendTime")
    java.call("producer", "recompress", **{"compression.type": "lz4", "linger.ms": "10"})
    before = int(time.time() * 1000)
    sent = java.call("send", "recompress", topic=topic, count=20, timestamp=1000)
    after = int(time.time() * 1000)
    java.call("close_producer", "recompress")
    # RecordMetadata carries the broker's log append time, not the producer's timestamp
    assert all(before - 1000 <= ts <= after + 1000 for _, _, ts in sent)
    records = read_all(java, topic, 20, partitions=1)
    assert [r["value"] for r in records] == [f"value-{i}" for i in range(20)]
    assert {r["timestamp"] for r in records} == {ts for _, _, ts in sent}
    assert stored_codecs(kbroker.log_dir, topic, 1) == {"zstd"}



def test_idempotent_producer_across_a_broker_restart(java, kbroker):
    """The producer state survives a restart (snapshot and log): the same idempotent producer
    goes on with its sequence numbers, nothing duplicated or refused (OutOfOrderSequence)."""
    topic = new_topic(java, "idempotent-restart", partitions=1)
    java.call("producer", "steady", acks="all", **{"enable.idempotence": "true", "retries": "2147483647",
                                                     "delivery.timeout.ms": "60000"})
    first = java.call("send", "steady", topic=topic, count=50, prefix="before-")
    kbroker.restart()
    second = java.call("send", "steady", topic=topic, count=50, prefix="after-")
    producers = java.call("describe_producers", tps=[f"{topic}:0"])
    java.call("close_producer", "steady")
    assert [offset for _, offset, _ in first + second] == list(range(100))
    assert [p["last_sequence"] for p in producers] == [99]
    records = read_all(java, topic, 100, partitions=1)
    assert [r["value"] for r in records] == [f"before-{i}" for i in range(50)] + [f"after-{i}" for i in range(50)]


def test_static_member_rejoins_without_a_rebalance(java, kbroker):
    """A static member (group.instance.id) that closes without leaving (KIP-345: the Java
    client sends no LeaveGroup for it) and comes back within its session gets its partitions
    again in the same generation: the group never rebalanced."""
    topic = new_topic(java, "static", partitions=2)
    group = f"static-{topic}"
    settings = {"group.id": group, "group.instance.id": "instance-a", "session.timeout.ms": "30000",
                "auto.offset.reset": "earliest"}
    java.call("consumer", "static-1", **settings)
    java.call("subscribe", "static-1", topics=topic)
    assert java.call("poll_group", names="static-1", partitions=2) == {"static-1": [f"{topic}:0", f"{topic}:1"]}
    before = java.call("describe_groups", ids=group)[group]
    java.call("close_consumer", "static-1")
    java.call("consumer", "static-2", **settings)
    java.call("subscribe", "static-2", topics=topic)
    assert java.call("poll_group", names="static-2", partitions=2) == {"static-2": [f"{topic}:0", f"{topic}:1"]}
    after = java.call("describe_groups", ids=group)[group]
    assert after["state"] == "Stable"
    assert [m["instance_id"] for m in after["members"]] == ["instance-a"]
    assert after["members"][0]["assignment"] == before["members"][0]["assignment"]
    java.call("close_consumer", "static-2")
    # the coordinator's log names each rebalance: only the first join made one
    assert kbroker.output().count(f"preparing to rebalance group {group} ") == 1
