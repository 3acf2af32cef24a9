"""scripts/chaos's workloads: what the clients did, recorded as plain data for the checker.

- `ProducerWorker`: an idempotent acks=all confluent-kafka producer in its own thread, writing
  `<producer>/<seq>` values at a steady rate, partition `seq % partitions`, so that every record
  has a unique id and every producer a sequence per partition whose order the checker verifies.
  Each acknowledgement is kept (seq, partition, offset, monotonic time); a producer that hits a
  fatal error is replaced by a new one under a new name, and the error counted.
- `ConsumerWorker`: one member of a consumer group, committing its positions synchronously
  after every poll; it keeps every record it consumed and every commit the coordinator acked.
- `TransactionalProducerWorker`: a transactional confluent-kafka producer on a topic of its
  own, committing transactions and aborting one in five through the faults; it keeps which
  records were committed, aborted or left indeterminate (a fatal error mid-commit), for the
  checker's read_committed isolation (`check_transactions`).
- `read_partitions`: the final read of every partition from offset 0 up to its high watermark
  (read_committed, librdkafka's default: up to the last stable offset, which equals the high
  watermark once every transaction has ended; control markers take offsets but are never
  delivered, so the end of a partition is its EOF event, not the offset of its last record).
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition

POLL_S = 0.2
QUEUE_FULL_BACKOFF_S = 0.05
REFUSED_BACKOFF_S = 0.5
# librdkafka logs every refused connection during a fault at level 3; errors reach the workers
# through callbacks, so only its critical lines go to stderr.
CLIENT_LOG_LEVEL = 2


# librdkafka's idempotence recoveries (debug "eos"): an epoch bump renumbers every unacknowledged
# message, so a duplicate in the log is explained by these lines (ERRSEQ: OUT_OF_ORDER_SEQUENCE_NUMBER
# on a later in-flight request, retried under a bumped epoch; DUPSEQ, UNKPID, ERRPID; EPOCH_BUMP:
# the bump or PID reset itself). Plain "drain before retrying" lines are ordinary retries.
EOS_FACILITIES = frozenset({"ERRSEQ", "DUPSEQ", "UNKPID", "ERRPID"})
EOS_LINES_KEPT = 20


class EosEvents(logging.Handler):
    """Counts a producer's idempotence recoveries from librdkafka's log, keeping the last lines."""

    def __init__(self, client: str, counts: dict[str, int], lines: deque[str]) -> None:
        super().__init__(logging.DEBUG)
        self.client, self.counts, self.lines = client, counts, lines

    def emit(self, record: logging.LogRecord) -> None:
        facility, message = (record.args[0], record.args[2]) if isinstance(record.args, tuple) and len(record.args) == 3 \
            else ("", record.getMessage())
        if facility in ("IDEMPSTATE", "DRAIN") and ("-> Drain" in str(message) or "bumped epoch" in str(message)):
            facility = "EPOCH_BUMP"
        elif facility not in EOS_FACILITIES:
            return
        self.counts[facility] = self.counts.get(facility, 0) + 1
        self.lines.append(f"{self.client} {facility} {message}")


def eos_logger(client: str, counts: dict[str, int], lines: deque[str]) -> logging.Logger:
    logger = logging.getLogger(f"chaos.librdkafka.{client}")
    logger.handlers[:] = [EosEvents(client, counts, lines)]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False  # its connection errors during faults stay off stderr
    return logger


@dataclass(frozen=True)
class Ack:
    producer: str
    seq: int
    partition: int
    # None when librdkafka reports success without an offset: an idempotent producer whose
    # request timed out learns from a later batch's ack that the earlier one was written.
    offset: int | None
    at: float  # time.monotonic() when the delivery report arrived


@dataclass(frozen=True)
class Consumed:
    partition: int
    offset: int
    value: bytes


@dataclass(frozen=True)
class Commit:
    partition: int
    offset: int
    at: float


def record_value(producer: str, seq: int) -> bytes:
    return f"{producer}/{seq}".encode()


def parse_value(value: bytes | None) -> tuple[str, int] | None:
    """(producer, seq) of a value this workload wrote, None for anything else."""
    if not value:
        return None
    producer, _, seq = value.decode(errors="replace").rpartition("/")
    return (producer, int(seq)) if producer and seq.isdigit() else None


def producer_settings(bootstrap: str) -> dict:
    return {
        "bootstrap.servers": bootstrap,
        "log_level": CLIENT_LOG_LEVEL,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        # A record not acknowledged within this is reported failed: indeterminate, not lost.
        "message.timeout.ms": 60000,
        "request.timeout.ms": 10000,
        "retry.backoff.ms": 100,
        "topic.metadata.refresh.interval.ms": 2000,
    }


@dataclass
class ProducerStats:
    acks: list[Ack] = field(default_factory=list)
    failed: dict[str, int] = field(default_factory=dict)  # error name -> records
    refused: dict[str, int] = field(default_factory=dict)  # error name -> produce() calls that raised
    sent: int = 0
    fatal: list[str] = field(default_factory=list)
    eos_events: dict[str, int] = field(default_factory=dict)  # librdkafka facility -> count (EosEvents)
    eos_lines: deque[str] = field(default_factory=lambda: deque(maxlen=EOS_LINES_KEPT))


class Worker(threading.Thread):
    """A client thread whose unexpected exception is kept (`crashed`) for the report rather
    than lost on stderr."""

    def __init__(self, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.stopping = threading.Event()
        self.crashed: str | None = None

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        try:
            self.work()
        except Exception:
            self.crashed = traceback.format_exc(limit=5)

    def work(self) -> None:
        raise NotImplementedError


class ProducerWorker(Worker):
    """Produces `rate` records per second until stopped, then flushes."""

    def __init__(self, index: int, bootstrap: str, topic: str, partitions: int, rate: float,
                 flush_timeout_s: float = 90.0) -> None:
        super().__init__(f"chaos-producer-{index}")
        self.index = index
        self.bootstrap = bootstrap
        self.topic = topic
        self.partitions = partitions
        self.rate = rate
        self.flush_timeout_s = flush_timeout_s
        self.stats = ProducerStats()
        self.unflushed = 0
        self.generation = 0
        self.fatal = threading.Event()

    def client_name(self) -> str:
        return f"p{self.index}.{self.generation}"

    def _on_delivery(self, name: str):
        stats = self.stats

        def deliver(err: KafkaError | None, msg) -> None:
            if err is None:
                stats.acks.append(Ack(name, int(msg.key()), msg.partition(), msg.offset(), time.monotonic()))
                return
            stats.failed[err.name()] = stats.failed.get(err.name(), 0) + 1
            if err.fatal():
                self.fatal.set()
        return deliver

    def _error(self, err: KafkaError) -> None:
        if err.fatal():
            self.stats.fatal.append(f"{self.client_name()}: {err.name()} {err.str()}")
            self.fatal.set()

    def work(self) -> None:
        while not self.stopping.is_set():
            self._run_one_producer()
            self.generation += 1

    def _run_one_producer(self) -> None:
        name = self.client_name()
        # debug "eos" at log level 7 goes to EosEvents only (a few lines per recovery).
        producer = Producer({**producer_settings(self.bootstrap), "error_cb": self._error,
                             "client.id": f"chaos-{name}", "debug": "eos", "log_level": 7},
                            logger=eos_logger(name, self.stats.eos_events, self.stats.eos_lines))
        deliver = self._on_delivery(name)
        self.fatal.clear()
        seq, started = 0, time.monotonic()
        try:
            while not self.stopping.is_set() and not self.fatal.is_set():
                due = int((time.monotonic() - started) * self.rate)
                while seq < due and not self.fatal.is_set():
                    try:
                        producer.produce(self.topic, record_value(name, seq), key=str(seq).encode(),
                                         partition=seq % self.partitions, on_delivery=deliver)
                    except BufferError:
                        producer.poll(QUEUE_FULL_BACKOFF_S)
                        continue
                    except KafkaException as refusal:  # e.g. _UNKNOWN_TOPIC: a broker said it has no such topic
                        name_of = refusal.args[0].name() if refusal.args else "KafkaException"
                        self.stats.refused[name_of] = self.stats.refused.get(name_of, 0) + 1
                        producer.poll(REFUSED_BACKOFF_S)
                        continue
                    seq += 1
                    self.stats.sent += 1
                producer.poll(POLL_S / 4)
        finally:
            self.unflushed += producer.flush(self.flush_timeout_s)


class ConsumerWorker(Worker):
    """One group member: subscribe, consume, commit synchronously after every batch."""

    def __init__(self, index: int, bootstrap: str, topic: str, group: str) -> None:
        super().__init__(f"chaos-consumer-{index}")
        self.bootstrap = bootstrap
        self.topic = topic
        self.group = group
        self.index = index
        self.consumed: list[Consumed] = []
        self.commits: list[Commit] = []
        self.commit_errors: dict[str, int] = {}

    def work(self) -> None:
        consumer = Consumer({
            "bootstrap.servers": self.bootstrap,
            "log_level": CLIENT_LOG_LEVEL,
            "group.id": self.group,
            "client.id": f"chaos-c{self.index}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 10000,
            "heartbeat.interval.ms": 1000,
            "topic.metadata.refresh.interval.ms": 2000,
        })
        consumer.subscribe([self.topic])
        try:
            while not self.stopping.is_set():
                self._poll_once(consumer)
            self._commit(consumer)
        finally:
            consumer.close()

    def _poll_once(self, consumer: Consumer) -> None:
        messages = consumer.consume(num_messages=500, timeout=POLL_S)
        fresh = False
        for message in messages:
            if message.error() is None:
                self.consumed.append(Consumed(message.partition(), message.offset(), message.value()))
                fresh = True
        if fresh:
            self._commit(consumer)

    def _commit(self, consumer: Consumer) -> None:
        try:
            committed = consumer.commit(asynchronous=False)
        except KafkaException as failure:
            name = failure.args[0].name() if failure.args else "KafkaException"
            self.commit_errors[name] = self.commit_errors.get(name, 0) + 1
            return
        now = time.monotonic()
        for tp in committed or []:
            if tp.error is None and tp.offset >= 0:
                self.commits.append(Commit(tp.partition, tp.offset, now))
            elif tp.error is not None:
                self.commit_errors[tp.error.name()] = self.commit_errors.get(tp.error.name(), 0) + 1


TXN_RECORDS = 4  # records per transaction, on consecutive partitions
ABORT_EVERY = 5  # every fifth transaction is aborted on purpose
TXN_TIMEOUT_S = 30.0  # each transactional call's own timeout
TRANSACTION_TIMEOUT_MS = 60000  # transaction.timeout.ms: librdkafka wants it >= message.timeout.ms
COMMIT_ATTEMPTS = 5


@dataclass(frozen=True)
class TxnRecord:
    producer: str
    seq: int
    partition: int


@dataclass
class TxnStats:
    committed: list[TxnRecord] = field(default_factory=list)
    aborted: list[TxnRecord] = field(default_factory=list)
    indeterminate: list[TxnRecord] = field(default_factory=list)  # a commit whose outcome is unknown
    # The offset each transaction committed for its group with send_offsets_to_transaction (the
    # transaction's number), by outcome: the group's final offset must be the last committed one
    # (or a later indeterminate one), never an aborted one.
    marks: dict[str, list[int]] = field(default_factory=lambda: {"committed": [], "aborted": [], "indeterminate": []})
    errors: dict[str, int] = field(default_factory=dict)
    fatal: list[str] = field(default_factory=list)
    transactions: int = 0


class TransactionalProducerWorker(Worker):
    """A confluent-kafka transactional producer writing `<producer>/<seq>` in transactions of
    TXN_RECORDS records (one per partition in turn), committing them and aborting one in
    ABORT_EVERY on purpose, through the faults. A retriable commit error retries the commit; an
    abortable one aborts (the records count as aborted); a fatal one (or a commit that never
    succeeds) leaves them indeterminate and starts a new producer on the same transactional.id,
    whose init_transactions fences the old one and aborts what it left open."""

    enabled = True

    def __init__(self, index: int, bootstrap: str, topic: str, partitions: int, rate: float) -> None:
        super().__init__(f"chaos-txn-producer-{index}")
        self.index, self.bootstrap, self.topic, self.partitions = index, bootstrap, topic, partitions
        self.pause_s = TXN_RECORDS / rate
        self.stats = TxnStats()
        self.generation = 0

    def work(self) -> None:
        while not self.stopping.is_set():
            self._run_one_producer(f"t{self.index}.{self.generation}")
            self.generation += 1

    def _count(self, error: KafkaError) -> None:
        self.stats.errors[error.name()] = self.stats.errors.get(error.name(), 0) + 1

    @property
    def group(self) -> str:
        return f"chaos-txn-group-{self.index}"

    @property
    def offsets_partition(self) -> TopicPartition:
        """Where this worker's transactions commit their group offset (the transaction's number)."""
        return TopicPartition(self.topic, self.index % self.partitions)

    def _run_one_producer(self, name: str) -> None:
        producer = Producer({**producer_settings(self.bootstrap), "client.id": f"chaos-{name}",
                             "transactional.id": f"chaos-txn-{self.index}",
                             "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS})
        # A group without members: its metadata (generation -1) is what send_offsets_to_transaction needs.
        group = Consumer({"bootstrap.servers": self.bootstrap, "log_level": CLIENT_LOG_LEVEL, "group.id": self.group,
                          "enable.auto.commit": False})
        try:
            producer.init_transactions(TXN_TIMEOUT_S)
            metadata = group.consumer_group_metadata()
        except KafkaException as failure:
            self._count(failure.args[0])
            time.sleep(REFUSED_BACKOFF_S)
            return
        finally:
            group.close()
        seq = 0
        while not self.stopping.is_set():
            records = [TxnRecord(name, seq + i, (seq + i) % self.partitions) for i in range(TXN_RECORDS)]
            self.stats.transactions += 1
            abort = self.stats.transactions % ABORT_EVERY == 0
            if not self._one_transaction(producer, metadata, records, abort):
                return  # fatal: a new producer fences this one
            seq += TXN_RECORDS
            time.sleep(self.pause_s)

    def _settle(self, outcome: str, records: list[TxnRecord]) -> None:
        getattr(self.stats, outcome).extend(records)
        self.stats.marks[outcome].append(self.stats.transactions)

    def _one_transaction(self, producer: Producer, metadata, records: list[TxnRecord], abort: bool) -> bool:
        """One transaction; False when the producer is unusable (its records are indeterminate)."""
        try:
            producer.begin_transaction()
            for r in records:
                producer.produce(self.topic, record_value(r.producer, r.seq), key=str(r.seq).encode(),
                                 partition=r.partition)
            mark = self.offsets_partition
            mark.offset = self.stats.transactions
            producer.send_offsets_to_transaction([mark], metadata, TXN_TIMEOUT_S)
            if abort:
                producer.abort_transaction(TXN_TIMEOUT_S)
                self._settle("aborted", records)
                return True
            return self._commit(producer, records)
        except KafkaException as failure:
            error = failure.args[0]
            self._count(error)
            if error.txn_requires_abort():
                return self._abort(producer, records)
            self._settle("indeterminate", records)
            self.stats.fatal.append(f"{records[0].producer}: {error.name()} {error.str()}")
            return False

    def _commit(self, producer: Producer, records: list[TxnRecord]) -> bool:
        for _ in range(COMMIT_ATTEMPTS):
            try:
                producer.commit_transaction(TXN_TIMEOUT_S)
            except KafkaException as failure:
                error = failure.args[0]
                self._count(error)
                if error.retriable():
                    continue
                if error.txn_requires_abort():
                    return self._abort(producer, records)
                break
            else:
                self._settle("committed", records)
                return True
        self._settle("indeterminate", records)
        return False

    def _abort(self, producer: Producer, records: list[TxnRecord]) -> bool:
        try:
            producer.abort_transaction(TXN_TIMEOUT_S)
        except KafkaException as failure:
            self._count(failure.args[0])
            self._settle("indeterminate", records)
            return False
        self._settle("aborted", records)
        return True


def workload_notes() -> list[str]:
    return []


def group_committed(bootstrap: str, topic: str, group: str, partitions: int) -> dict[int, int]:
    """The group's committed offset per partition as the coordinator answers now (-1001: none)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "log_level": CLIENT_LOG_LEVEL, "group.id": group, "enable.auto.commit": False})
    try:
        answer = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=30)
        return {tp.partition: tp.offset for tp in answer}
    finally:
        consumer.close()


def high_watermarks(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "log_level": CLIENT_LOG_LEVEL, "group.id": "chaos-checker", "enable.auto.commit": False})
    try:
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in range(partitions)}
    finally:
        consumer.close()


def read_partitions(bootstrap: str, topic: str, ends: dict[int, int], timeout_s: float = 120.0) -> dict[int, list[Consumed]]:
    """Every record of every partition below `ends` (its high watermark), read from offset 0."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "log_level": CLIENT_LOG_LEVEL, "group.id": "chaos-checker", "enable.auto.commit": False,
                         "enable.partition.eof": True, "fetch.max.bytes": 8 * 1024 * 1024})
    records: dict[int, list[Consumed]] = {p: [] for p in ends}
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p, end in ends.items() if end > 0])
    remaining = {p for p, end in ends.items() if end > 0}
    deadline = time.monotonic() + timeout_s
    try:
        while remaining and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=1000, timeout=0.5):
                if message.partition() not in remaining:
                    continue
                if message.error() is not None:  # at EOF past the end: what remains are control markers
                    if message.error().code() == KafkaError._PARTITION_EOF and message.offset() >= ends[message.partition()]:
                        remaining.discard(message.partition())
                    continue
                records[message.partition()].append(Consumed(message.partition(), message.offset(), message.value()))
                if message.offset() + 1 >= ends[message.partition()]:
                    remaining.discard(message.partition())
    finally:
        consumer.close()
    if remaining:
        raise RuntimeError(f"final read did not reach the high watermark of partitions {sorted(remaining)}")
    return records
