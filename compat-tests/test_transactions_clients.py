"""Transactions with real clients against a real kbroker (issue 11).

- confluent-kafka: transactional produce with commits and aborts; a read_committed consumer sees
  exactly the committed records, in order per partition, a read_uncommitted one sees them all.
- confluent-kafka consume-transform-produce of 10,000 records with send_offsets_to_transaction,
  one transaction aborted on the way and the work redone by a fresh consumer from the group's
  committed offsets: the output equals the input, without duplicates, and the group's offsets
  end at the input's end.
- A producer fenced by a second instance with the same transactional.id gets the fencing error,
  and its open transaction is aborted (none of its records is visible to read_committed).
- A transaction left open past its transaction.timeout.ms is aborted by the coordinator, with
  the producer epoch bumped: the producer cannot commit it.
- kafka-python, aiokafka and KafkaJS commit and abort transactions too, with offsets sent to the
  transaction (older AddOffsetsToTxn/TxnOffsetCommit versions): only the committed ones count.
- The `__transaction_state` segment files, read by an independent decoder, hold Kafka's
  TransactionLogKey/Value records of each transition.
- kill -9 with a transaction open: after the restart the coordinator has it loaded (Ongoing) and
  a new producer with the same id aborts it.
- DescribeProducers shows an open transaction's first offset; KIP-890 verification refuses a
  transactional produce to a partition not added to the transaction (nothing appended).
- Bad input over a raw socket gets Kafka's codes: EndTxn for an unknown id, an epoch from the
  past, a timeout above transaction.max.timeout.ms, an EndTxn that does not match the state.
"""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from kbroker.testing.batches import producer_batch
from kbroker.testing.raw_client import RawClient, produce_body
from kbroker.testing.tools import kafkajs_unavailable_reason, run_kafkajs
from kbroker.testing.transaction_log_reader import read_transaction_log
from kbroker.testing.waiting import eventually

PARTITIONS = 3
TIMEOUT_S = 30
PRODUCE, LIST_OFFSETS, FIND_COORDINATOR, INIT_PRODUCER_ID, END_TXN, ADD_PARTITIONS_TO_TXN = 0, 2, 10, 22, 26, 24
DESCRIBE_PRODUCERS, DESCRIBE_TRANSACTIONS, LIST_TRANSACTIONS = 61, 65, 66
NONE, INVALID_PRODUCER_EPOCH, INVALID_TXN_STATE, INVALID_PRODUCER_ID_MAPPING = 0, 47, 48, 49
INVALID_TRANSACTION_TIMEOUT, CONCURRENT_TRANSACTIONS, PRODUCER_FENCED = 50, 51, 90
TRANSACTIONAL_ID_NOT_FOUND, UNKNOWN_TOPIC_OR_PARTITION, OPERATION_NOT_ATTEMPTED = 105, 3, 55
TRANSACTION_ABORTABLE, INVALID_REQUEST = 120, 42


@pytest.fixture(scope="module")
def kbroker(module_broker_factory):
    return module_broker_factory(
        f"num.partitions={PARTITIONS}", "transaction.state.log.num.partitions=5", "offsets.topic.num.partitions=5",
        "transaction.abort.timed.out.transaction.cleanup.interval.ms=200", "transaction.max.timeout.ms=120000")


def create_topic(kbroker, name: str, partitions: int = PARTITIONS) -> str:
    admin = AdminClient({"bootstrap.servers": kbroker.bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(TIMEOUT_S)
    return name


def transactional_producer(kbroker, transactional_id: str, **settings) -> Producer:
    producer = Producer({"bootstrap.servers": kbroker.bootstrap, "transactional.id": transactional_id,
                         "linger.ms": 5, **settings})
    producer.init_transactions(TIMEOUT_S)
    return producer


def consume_all(kbroker, topic: str, isolation: str, expected: int, group: str | None = None,
                idle_s: float = 1.5) -> dict[int, list[bytes]]:
    """Every value in the topic per partition, read from the start with the isolation level,
    until `expected` were read and then nothing new came for `idle_s` (so extras would be seen)."""
    consumer = Consumer({"bootstrap.servers": kbroker.bootstrap, "group.id": group or f"reader-{time.monotonic_ns()}",
                         "auto.offset.reset": "earliest", "isolation.level": isolation,
                         "enable.auto.commit": False})
    consumer.subscribe([topic])
    got: dict[int, list[bytes]] = {}
    count = 0
    deadline = time.monotonic() + TIMEOUT_S
    last_seen = time.monotonic()
    try:
        while time.monotonic() < deadline and (count < expected or time.monotonic() - last_seen < idle_s):
            for message in consumer.consume(500, 0.2):
                if message.error():
                    continue
                got.setdefault(message.partition(), []).append(message.value())
                count += 1
                last_seen = time.monotonic()
    finally:
        consumer.close()
    return got


def flat(by_partition: dict[int, list[bytes]]) -> list[bytes]:
    return sorted(v for values in by_partition.values() for v in values)


# -- confluent-kafka ------------------------------------------------------------------------------

def test_confluent_commit_and_abort_read_committed(kbroker):
    topic = create_topic(kbroker, "txn-confluent")
    producer = transactional_producer(kbroker, "confluent-commit-abort")
    committed: dict[int, list[bytes]] = {}
    everything: list[bytes] = []
    for txn in range(6):
        producer.begin_transaction()
        values = [b"t%d-%d" % (txn, i) for i in range(30)]
        for i, value in enumerate(values):
            producer.produce(topic, value=value, partition=i % PARTITIONS)
        everything += values
        if txn % 3 == 2:
            producer.flush(TIMEOUT_S)  # the records are in the log before the abort
            producer.abort_transaction(TIMEOUT_S)
        else:
            producer.commit_transaction(TIMEOUT_S)
            for i, value in enumerate(values):
                committed.setdefault(i % PARTITIONS, []).append(value)
    producer.flush(TIMEOUT_S)
    assert consume_all(kbroker, topic, "read_committed", 120) == committed  # exactly, in order per partition
    assert flat(consume_all(kbroker, topic, "read_uncommitted", 180)) == sorted(everything)


def test_confluent_consume_transform_produce_10000(kbroker):
    source, sink, group = create_topic(kbroker, "ctp-in"), create_topic(kbroker, "ctp-out"), "ctp-group"
    total = 10_000
    plain = Producer({"bootstrap.servers": kbroker.bootstrap, "linger.ms": 20})
    for i in range(total):
        plain.produce(source, key=b"%d" % i, value=b"v%d" % i, partition=i % PARTITIONS)
    plain.flush(TIMEOUT_S)
    producer = transactional_producer(kbroker, "ctp-transformer")
    done, aborted_once = 0, False
    deadline = time.monotonic() + 120
    while done < total and time.monotonic() < deadline:
        consumer = Consumer({"bootstrap.servers": kbroker.bootstrap, "group.id": group,
                             "auto.offset.reset": "earliest", "enable.auto.commit": False,
                             "isolation.level": "read_committed"})
        consumer.subscribe([source])
        try:
            done, aborted_once = _transform(consumer, producer, sink, done, total, aborted_once, deadline)
        finally:
            consumer.close()
    assert aborted_once and done == total
    output = consume_all(kbroker, sink, "read_committed", total)
    values = flat(output)
    assert len(values) == total and len(set(values)) == total, "duplicates or losses in the output"
    assert values == sorted(b"out-v%d" % i for i in range(total))
    for partition, records in output.items():  # each output partition keeps its input partition's order
        assert records == [b"out-v%d" % i for i in range(partition, total, PARTITIONS)]
    eventually(lambda: sum(committed_offsets(kbroker, group, source).values()) == total,
               what="the group's offsets at the input's end", timeout=TIMEOUT_S)


def _transform(consumer: Consumer, producer: Producer, sink: str, done: int, total: int, aborted_once: bool,
               deadline: float) -> tuple[int, bool]:
    """Consume-transform-produce until done; returns early (True) after the one deliberate abort,
    so that a fresh consumer resumes from the group's committed offsets."""
    while done < total and time.monotonic() < deadline:
        batch = [m for m in consumer.consume(700, 0.5) if not m.error()]
        if not batch:
            continue
        producer.begin_transaction()
        for message in batch:
            producer.produce(sink, key=message.key(), value=b"out-" + message.value(), partition=message.partition())
        producer.send_offsets_to_transaction(consumer.position(consumer.assignment()),
                                             consumer.consumer_group_metadata(), TIMEOUT_S)
        if not aborted_once and done > total // 3:
            producer.flush(TIMEOUT_S)
            producer.abort_transaction(TIMEOUT_S)
            return done, True
        producer.commit_transaction(TIMEOUT_S)
        done += len(batch)
    return done, aborted_once


def test_confluent_fenced_producer(kbroker):
    topic = create_topic(kbroker, "txn-fenced")
    first = transactional_producer(kbroker, "fenced-id")
    first.begin_transaction()
    for i in range(10):
        first.produce(topic, value=b"zombie-%d" % i, partition=0)
    first.flush(TIMEOUT_S)
    second = transactional_producer(kbroker, "fenced-id")  # aborts first's open transaction, bumps the epoch
    second.begin_transaction()
    second.produce(topic, value=b"live", partition=0)
    second.commit_transaction(TIMEOUT_S)
    with pytest.raises(KafkaException) as raised:
        first.commit_transaction(TIMEOUT_S)
    error = raised.value.args[0]
    assert error.code() == KafkaError._FENCED or error.fatal(), error
    assert consume_all(kbroker, topic, "read_committed", 1) == {0: [b"live"]}


def test_confluent_transaction_timeout_aborts(kbroker):
    topic = create_topic(kbroker, "txn-timeout")
    producer = transactional_producer(kbroker, "short-lived", **{"transaction.timeout.ms": 1000})
    producer.begin_transaction()
    producer.produce(topic, value=b"too-late", partition=0)
    producer.flush(TIMEOUT_S)
    with RawClient(kbroker.port) as client:
        before = describe(client, "short-lived")
        assert before["transaction_state"] == "Ongoing"
        after = eventually(lambda: (d := describe(client, "short-lived"))["transaction_state"] == "CompleteAbort" and d,
                           what="the coordinator aborting the timed-out transaction", timeout=TIMEOUT_S)
    assert after["producer_epoch"] == before["producer_epoch"] + 1  # fenced with a bumped epoch
    with pytest.raises(KafkaException):
        producer.commit_transaction(TIMEOUT_S)
    assert consume_all(kbroker, topic, "read_committed", 0) == {}
    assert consume_all(kbroker, topic, "read_uncommitted", 1) == {0: [b"too-late"]}


def test_transaction_state_segments_decode_as_kafka_writes_them(kbroker):
    """The records in the __transaction_state segment files, read by an independent decoder
    following Kafka's TransactionLogKey/Value schemas, tell the transactions' story."""
    topic = create_topic(kbroker, "txn-state-log")
    producer = transactional_producer(kbroker, "state-log-reader", **{"transaction.timeout.ms": 45000})
    for commit in (True, False):
        producer.begin_transaction()
        producer.produce(topic, value=b"x", partition=1)
        producer.produce(topic, value=b"y", partition=2)
        producer.flush(TIMEOUT_S)
        producer.commit_transaction(TIMEOUT_S) if commit else producer.abort_transaction(TIMEOUT_S)

    def story() -> list | None:
        records = [r for r in read_transaction_log(kbroker.log_dir) if r.transactional_id == "state-log-reader"]
        return records if records and records[-1].value and records[-1].value["state"] == "CompleteAbort" else None

    records = eventually(story, what="the CompleteAbort record in the segment files", timeout=TIMEOUT_S)
    values = [r.value for r in records]
    assert [v["state"] for v in values] == ["Empty", "Ongoing", "PrepareCommit", "CompleteCommit", "Ongoing",
                                            "PrepareAbort", "CompleteAbort"]
    assert {(v["producer_id"], v["producer_epoch"], v["timeout_ms"]) for v in values} == {
        (values[0]["producer_id"], 0, 45000)}
    assert values[0]["partitions"] is None  # Empty: a null array, as Kafka writes it
    for v in values[1:3] + values[4:6]:
        assert v["partitions"] == [(topic, 1), (topic, 2)]
    assert values[3]["partitions"] == [] and values[3]["start_ms"] == values[1]["start_ms"]
    assert all(later["last_update_ms"] >= earlier["last_update_ms"] for earlier, later in itertools.pairwise(values))


def test_describe_producers_shows_the_open_transaction(kbroker):
    topic = create_topic(kbroker, "txn-producers")
    producer = transactional_producer(kbroker, "described")
    producer.begin_transaction()
    producer.produce(topic, value=b"open", partition=0)
    producer.flush(TIMEOUT_S)

    def producers(client: RawClient, partition: int = 0) -> tuple[int, list[dict]]:
        answer = client.call(DESCRIBE_PRODUCERS, 0, {"topics": [{"name": topic, "partition_indexes": [partition]}]})
        [entry] = answer["topics"][0]["partitions"]
        return entry["error_code"], entry["active_producers"]

    with RawClient(kbroker.port) as client:
        pid = describe(client, "described")["producer_id"]
        error, active = producers(client)
        assert error == NONE and [(p["producer_id"], p["current_txn_start_offset"]) for p in active] == [(pid, 0)]
        producer.commit_transaction(TIMEOUT_S)  # answered once PrepareCommit is written; the marker follows
        eventually(lambda: [(p["producer_id"], p["current_txn_start_offset"]) for p in producers(client)[1]] == [
            (pid, -1)], what="the commit marker on the partition", timeout=TIMEOUT_S)
        assert producers(client, partition=99)[0] == UNKNOWN_TOPIC_OR_PARTITION


def test_open_transaction_survives_a_broker_crash_and_is_fenced_after_restart(broker_factory):
    """kill -9 with a transaction open: the restarted coordinator loads it from
    __transaction_state (Ongoing, same producer id and epoch); a new producer with the id aborts
    it with a bumped epoch; read_committed sees the committed transactions only."""
    kbroker = broker_factory(f"num.partitions={PARTITIONS}", "transaction.state.log.num.partitions=3",
                             "offsets.topic.num.partitions=3")
    topic = create_topic(kbroker, "txn-crash")
    old = transactional_producer(kbroker, "crash-survivor")
    old.begin_transaction()
    for i in range(5):
        old.produce(topic, value=b"before-%d" % i, partition=i % PARTITIONS)
    old.commit_transaction(TIMEOUT_S)
    old.begin_transaction()
    for i in range(5):
        old.produce(topic, value=b"in-flight-%d" % i, partition=i % PARTITIONS)
    old.flush(TIMEOUT_S)
    with RawClient(kbroker.port) as client:
        before = describe(client, "crash-survivor")
    kbroker.kill()
    old.purge()
    kbroker.start()
    with RawClient(kbroker.port) as client:
        loaded = eventually(lambda: (d := describe(client, "crash-survivor"))["error_code"] == NONE and d,
                            what="the transaction loaded after the restart", timeout=TIMEOUT_S)
    assert (loaded["transaction_state"], loaded["producer_id"], loaded["producer_epoch"]) == (
        "Ongoing", before["producer_id"], before["producer_epoch"])
    assert sorted(tuple(t["partitions"]) for t in loaded["topics"]) == [(0, 1, 2)]
    new = transactional_producer(kbroker, "crash-survivor")  # fences: the in-flight transaction is aborted
    new.begin_transaction()
    for i in range(5):
        new.produce(topic, value=b"after-%d" % i, partition=i % PARTITIONS)
    new.commit_transaction(TIMEOUT_S)
    with RawClient(kbroker.port) as client:  # EndTxn is answered once PrepareCommit is written
        after = eventually(lambda: (d := describe(client, "crash-survivor"))["transaction_state"] == "CompleteCommit"
                           and d, what="the commit completed", timeout=TIMEOUT_S)
    assert after["producer_id"] == before["producer_id"]
    assert after["producer_epoch"] >= before["producer_epoch"] + 2  # the fence, then the new producer's bump
    expected = sorted([b"before-%d" % i for i in range(5)] + [b"after-%d" % i for i in range(5)])
    assert flat(consume_all(kbroker, topic, "read_committed", 10)) == expected
    assert len(flat(consume_all(kbroker, topic, "read_uncommitted", 15))) == 15


# -- kafka-python, aiokafka, KafkaJS ---------------------------------------------------------------

def committed_offsets(kbroker, group: str, topic: str) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": kbroker.bootstrap, "group.id": group})
    try:
        found = consumer.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], TIMEOUT_S)
    finally:
        consumer.close()
    return {tp.partition: tp.offset for tp in found if tp.offset >= 0}


def test_kafka_python_transactions(kbroker):
    from kafka import KafkaProducer
    from kafka.structs import OffsetAndMetadata
    from kafka.structs import TopicPartition as KafkaTopicPartition
    topic = create_topic(kbroker, "txn-kafka-python")
    producer = KafkaProducer(bootstrap_servers=kbroker.bootstrap, transactional_id="kafka-python-txn")
    producer.init_transactions()
    producer.begin_transaction()
    for i in range(20):
        producer.send(topic, value=b"kp-commit-%d" % i, partition=i % PARTITIONS)
    producer.send_offsets_to_transaction({KafkaTopicPartition(topic, 0): OffsetAndMetadata(7, "", -1)}, "kp-group")
    producer.commit_transaction()
    producer.begin_transaction()
    for i in range(20):
        producer.send(topic, value=b"kp-abort-%d" % i, partition=i % PARTITIONS)
    producer.send_offsets_to_transaction({KafkaTopicPartition(topic, 0): OffsetAndMetadata(99, "", -1)}, "kp-group")
    producer.flush()
    producer.abort_transaction()
    producer.close()
    assert flat(consume_all(kbroker, topic, "read_committed", 20)) == sorted(b"kp-commit-%d" % i for i in range(20))
    assert len(flat(consume_all(kbroker, topic, "read_uncommitted", 40))) == 40
    eventually(lambda: committed_offsets(kbroker, "kp-group", topic) == {0: 7},  # the aborted 99 was dropped
               what="the committed transaction's offsets", timeout=TIMEOUT_S)


def test_aiokafka_transactions(kbroker):
    from aiokafka import AIOKafkaProducer
    from aiokafka.structs import TopicPartition as AioTopicPartition
    topic = create_topic(kbroker, "txn-aiokafka")

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kbroker.bootstrap, transactional_id="aiokafka-txn")
        await producer.start()
        try:
            async with producer.transaction():
                for i in range(20):
                    await producer.send(topic, value=b"aio-commit-%d" % i, partition=i % PARTITIONS)
                await producer.send_offsets_to_transaction({AioTopicPartition(topic, 2): 13}, "aio-group")
            await producer.begin_transaction()
            for i in range(20):
                await producer.send_and_wait(topic, value=b"aio-abort-%d" % i, partition=i % PARTITIONS)
            await producer.abort_transaction()
        finally:
            await producer.stop()

    asyncio.run(run())
    assert flat(consume_all(kbroker, topic, "read_committed", 20)) == sorted(b"aio-commit-%d" % i for i in range(20))
    eventually(lambda: committed_offsets(kbroker, "aio-group", topic) == {2: 13},
               what="the committed transaction's offsets", timeout=TIMEOUT_S)


def test_kafkajs_transactions(kbroker):
    reason = kafkajs_unavailable_reason()
    if reason:
        pytest.skip(reason)
    topic = create_topic(kbroker, "txn-kafkajs")
    run_kafkajs("transactions.js", kbroker.bootstrap, topic)
    assert flat(consume_all(kbroker, topic, "read_committed", 20)) == sorted(b"js-commit-%d" % i for i in range(20))
    assert len(flat(consume_all(kbroker, topic, "read_uncommitted", 40))) == 40
    eventually(lambda: committed_offsets(kbroker, "js-group", topic) == {1: 11},  # the committed one's only
               what="the committed transaction's offsets", timeout=TIMEOUT_S)


# -- bad input -------------------------------------------------------------------------------------

def describe(client: RawClient, transactional_id: str) -> dict:
    [state] = client.call(DESCRIBE_TRANSACTIONS, 0, {"transactional_ids": [transactional_id]})["transaction_states"]
    return state


def init(client: RawClient, transactional_id: str, version: int = 4, timeout_ms: int = 60000,
         expected: tuple[int, int] = (-1, -1)) -> dict:
    body = {"transactional_id": transactional_id, "transaction_timeout_ms": timeout_ms,
            "producer_id": expected[0], "producer_epoch": expected[1]}
    return eventually(lambda: (a := client.call(INIT_PRODUCER_ID, version, body))["error_code"]
                      not in (CONCURRENT_TRANSACTIONS, 14, 15) and a, what="InitProducerId", timeout=TIMEOUT_S)


def end_txn(client: RawClient, transactional_id: str, producer_id: int, epoch: int, committed: bool,
            version: int = 3) -> int:
    return client.call(END_TXN, version, {"transactional_id": transactional_id, "producer_id": producer_id,
                                          "producer_epoch": epoch, "committed": committed})["error_code"]


def add_partitions(client: RawClient, transactional_id: str, producer_id: int, epoch: int,
                   partitions: dict[str, list[int]], version: int = 3) -> dict[tuple[str, int], int]:
    answer = client.call(ADD_PARTITIONS_TO_TXN, version, {
        "v3_and_below_transactional_id": transactional_id, "v3_and_below_producer_id": producer_id,
        "v3_and_below_producer_epoch": epoch,
        "v3_and_below_topics": [{"name": t, "partitions": ps} for t, ps in partitions.items()]})
    return {(t["name"], p["partition_index"]): p["partition_error_code"]
            for t in answer["results_by_topic_v3_and_below"] for p in t["results_by_partition"]}


def test_transactional_produce_without_add_partitions_is_refused(kbroker):
    """KIP-890 part 1: the leader checks with the coordinator before a transactional batch opens
    a transaction on a partition; nothing is appended for a partition not in the transaction."""
    topic = create_topic(kbroker, "txn-verification")
    with RawClient(kbroker.port) as client:
        eventually(lambda: client.call(FIND_COORDINATOR, 3, {"key": "verified", "key_type": 1})["error_code"] == NONE,
                   what="the transaction coordinator", timeout=TIMEOUT_S)
        first = init(client, "verified")
        pid, epoch = first["producer_id"], first["producer_epoch"]

        def send(partition: int, sequence: int, version: int) -> int:
            batch = producer_batch([b"v"], producer_id=pid, producer_epoch=epoch, base_sequence=sequence,
                                   transactional=True, timestamp=int(time.time() * 1000))
            body = produce_body(topic, partition, bytes(batch), acks=-1)
            body["transactional_id"] = "verified"
            [answer] = client.call(PRODUCE, version, body)["responses"][0]["partition_responses"]
            return answer["error_code"]

        assert send(0, 0, version=11) == TRANSACTION_ABORTABLE
        assert send(0, 0, version=9) == INVALID_TXN_STATE
        assert add_partitions(client, "verified", pid, epoch, {topic: [0]}) == {(topic, 0): NONE}
        assert send(0, 0, version=11) == NONE
        assert send(1, 0, version=11) == TRANSACTION_ABORTABLE  # partition 1 was never added
        assert end_txn(client, "verified", pid, epoch, True) == NONE
        ends = client.call(LIST_OFFSETS, 5, {"replica_id": -1, "isolation_level": 0, "topics": [
            {"name": topic, "partitions": [{"partition_index": p, "timestamp": -1, "current_leader_epoch": -1}
                                           for p in (0, 1)]}]})
        offsets = {p["partition_index"]: p["offset"] for p in ends["topics"][0]["partitions"]}
        assert offsets[1] == 0  # nothing appended where the coordinator said no
        assert offsets[0] >= 1


def test_bad_transaction_requests_get_kafka_codes(kbroker):
    topic = create_topic(kbroker, "txn-bad-input")
    with RawClient(kbroker.port) as client:
        coordinator = client.call(FIND_COORDINATOR, 3, {"key": "bad-input", "key_type": 1})
        assert coordinator["error_code"] in (NONE, 15)
        eventually(lambda: client.call(FIND_COORDINATOR, 3, {"key": "bad-input", "key_type": 1})["error_code"] == NONE,
                   what="the transaction coordinator", timeout=TIMEOUT_S)
        assert end_txn(client, "never-initialised", 1234, 0, True) == INVALID_PRODUCER_ID_MAPPING
        assert init(client, "bad-input", timeout_ms=120001)["error_code"] == INVALID_TRANSACTION_TIMEOUT
        assert init(client, "bad-input", timeout_ms=0)["error_code"] == INVALID_TRANSACTION_TIMEOUT
        first = init(client, "bad-input")
        assert first["error_code"] == NONE
        pid, epoch = first["producer_id"], first["producer_epoch"]
        assert end_txn(client, "bad-input", pid, epoch, True) == INVALID_TXN_STATE  # nothing to commit
        assert add_partitions(client, "bad-input", pid, epoch, {"no-such-topic": [0], topic: [0]}) == {
            ("no-such-topic", 0): UNKNOWN_TOPIC_OR_PARTITION, (topic, 0): OPERATION_NOT_ATTEMPTED}
        assert add_partitions(client, "bad-input", pid, epoch, {topic: [0, 1]}) == {(topic, 0): NONE, (topic, 1): NONE}
        assert end_txn(client, "bad-input", pid + 1, epoch, True) == INVALID_PRODUCER_ID_MAPPING
        second = init(client, "bad-input")  # fences: aborts the open transaction, then bumps again
        assert second["producer_id"] == pid and second["producer_epoch"] > epoch
        # An epoch from the past: PRODUCER_FENCED, or INVALID_PRODUCER_EPOCH for versions before it existed.
        assert end_txn(client, "bad-input", pid, epoch, True, version=3) == PRODUCER_FENCED
        assert end_txn(client, "bad-input", pid, epoch, True, version=1) == INVALID_PRODUCER_EPOCH
        assert add_partitions(client, "bad-input", pid, epoch, {topic: [2]}, version=1) == {
            (topic, 2): INVALID_PRODUCER_EPOCH}
        stale = init(client, "bad-input", version=4, expected=(pid, epoch))
        assert stale["error_code"] == PRODUCER_FENCED
        assert init(client, "bad-input", version=3, expected=(pid, epoch))["error_code"] == INVALID_PRODUCER_EPOCH
        # The KIP-360 bump of the current producer works and the state is intact.
        bumped = init(client, "bad-input", expected=(pid, second["producer_epoch"]))
        assert (bumped["error_code"], bumped["producer_epoch"]) == (NONE, second["producer_epoch"] + 1)
        state = describe(client, "bad-input")
        assert (state["error_code"], state["transaction_state"], state["producer_epoch"]) == (
            NONE, "Empty", bumped["producer_epoch"])
        assert init(client, "bad-input", expected=(pid, -1))["error_code"] == INVALID_REQUEST  # an id without an epoch
        assert describe(client, "nobody")["error_code"] == TRANSACTIONAL_ID_NOT_FOUND
        listed = client.call(LIST_TRANSACTIONS, 1, {"state_filters": ["Empty", "Bogus"], "producer_id_filters": [],
                                                    "duration_filter": -1})
        assert listed["error_code"] == NONE and listed["unknown_state_filters"] == ["Bogus"]
        assert "bad-input" in {t["transactional_id"] for t in listed["transaction_states"]}
