"""The scenarios of scripts/bench (issue 6's table) as plain data, and their counts at a --scale.

Touches nothing: definitions only. The load client settings follow the issue: acks=1,
linger.ms=5, batch.size=1000000 for throughput; acks=all with idempotence (and transactions
of 1,000 records, read back with read_committed: issue 11); large fetches to consume; linger.ms=0 and a short fetch.wait.max.ms for end-to-end latency. The cluster scenarios
(brokers=3) run against three kbroker processes and a ZooKeeper, on a topic with replication
factor 3 and min.insync.replicas=2. The idle-connections scenario holds connections open, each
after one ApiVersions, and reports how much the broker's RSS grew (issue 16's target: 2,000 of
them for 20 MiB or less). The metadata-10k scenario (scripts/bench_metadata.py) runs on a broker of
its own: `count` partitions holding `count x size` bytes of values, then Metadata, restarts, RSS
and open descriptors (issue 15's targets). connections-1k (issue 15) is bench_connections.py's: its count
is the connections, and the groups, members and duration shrink with it at a smaller --scale.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

THROUGHPUT_PRODUCER = {"acks": 1, "linger.ms": 5, "batch.size": 1_000_000}
IDEMPOTENT_PRODUCER = {"acks": "all", "enable.idempotence": True, "linger.ms": 5, "batch.size": 1_000_000}
THROUGHPUT_CONSUMER = {
    "fetch.max.bytes": 52_428_800,
    "max.partition.fetch.bytes": 16_777_216,
    # Let the client fetch well ahead of the Python loop. librdkafka stops fetching once it holds
    # queued.min.messages (default 100,000: only 10 MB of 100 B records) and then waits
    # fetch.queue.backoff.ms (default 1 s): with the defaults that wait, not the broker, sets the pace.
    "queued.max.messages.kbytes": 262_144,
    "queued.min.messages": 1_000_000,
    "fetch.queue.backoff.ms": 10,
}
READ_COMMITTED_CONSUMER = {**THROUGHPUT_CONSUMER, "isolation.level": "read_committed"}
RECORDS_PER_TRANSACTION = 1000
# The Java client's producer for partitions-1k-java: what THROUGHPUT_PRODUCER sets, bar batch.size
# (the Java client reserves batch.size per partition from buffer.memory, 32 MiB by default: 1 MB
# batches for 1,000 partitions would block), so its default 16,384; acks=1 turns idempotence off.
JAVA_THROUGHPUT_PRODUCER = {"acks": "1", "linger.ms": 5}
LATENCY_PRODUCER = {"acks": 1, "linger.ms": 0}
LATENCY_CONSUMER = {"fetch.wait.max.ms": 5, "fetch.min.bytes": 1}
E2E_INTERVAL_MS = 2.0

CLUSTER_TOPIC_CONFIG = {"min.insync.replicas": "2"}

MIN_THROUGHPUT_RECORDS = 10
MIN_LATENCY_RECORDS = 20
MIN_IDLE_CONNECTIONS = 10
MIN_PARTITIONS_RECORDS = 1000  # partitions-1k: a record for each partition at any scale
IDLE_CONNECTIONS_TARGET_MIB = 20.0  # for 2,000 connections; scaled with the count


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    # "start", "produce", "client" (no broker), "consume", "e2e", "idle" (connections), "partitions", "metadata",
    # "connections" (bench_connections.py)
    kind: str
    count: int = 0
    size: int = 0
    producer_config: dict = field(default_factory=dict)
    consumer_config: dict = field(default_factory=dict)
    dataset: str | None = None  # consume: the produce scenario whose records it reads
    brokers: int = 1  # how many brokers it runs against: 1, or a cluster of 3 (kbroker only)
    replication_factor: int = 1  # of the topic a produce scenario creates
    topic_config: dict = field(default_factory=dict)  # of that topic, Kafka's names, string values
    # A transactional producer commits every this many records (0: no transactions); a consume
    # scenario of its dataset names the same number, to know where the markers sit.
    transaction_records: int = 0
    client: str = "confluent-kafka"  # partitions: the producer processes' client ("java": kafka-clients)

    def scaled(self, scale: float) -> Scenario:
        if self.kind == "start":
            return self
        minimum = {"e2e": MIN_LATENCY_RECORDS, "idle": MIN_IDLE_CONNECTIONS, "partitions": MIN_PARTITIONS_RECORDS,
                   "connections": MIN_IDLE_CONNECTIONS}.get(self.kind, MIN_THROUGHPUT_RECORDS)
        return replace(self, count=max(minimum, round(self.count * scale)))

    @property
    def value_bytes(self) -> int:
        return self.count * self.size

    @property
    def rss_target_mib(self) -> float:
        """idle: the RSS growth the issue allows for this many connections."""
        return IDLE_CONNECTIONS_TARGET_MIB * self.count / 2000


SCENARIOS = (
    Scenario("start", "start to first Metadata answer", "start"),
    # Early in the table: it runs on a broker that has not yet freed memory it could reuse.
    Scenario(
        "idle-connections-2k",
        "2,000 idle connections, one ApiVersions each: the broker's RSS growth (target <= 20 MiB)",
        "idle", 2000,
    ),
    Scenario(
        "metadata-10k",
        "10,000 partitions (100 topics x 100) holding 1 GiB: full Metadata, start-up (clean, after kill -9), RSS, fds",
        "metadata", 10_000, 2**30 // 10_000,
    ),
    Scenario(
        "produce-100b",
        "produce 1,000,000 x 100 B, acks=1, linger.ms=5, batch.size=1000000",
        "produce", 1_000_000, 100, THROUGHPUT_PRODUCER,
    ),
    Scenario(
        "client-alone-100b",
        "the client alone: produce() loop of 1,000,000 x 100 B, no broker",
        "client", 1_000_000, 100, THROUGHPUT_PRODUCER,
    ),
    Scenario(
        "produce-1k",
        "produce 300,000 x 1 KiB, acks=1, linger.ms=5, batch.size=1000000",
        "produce", 300_000, 1024, THROUGHPUT_PRODUCER,
    ),
    Scenario(
        "client-alone-1k",
        "the client alone: produce() loop of 300,000 x 1 KiB, no broker",
        "client", 300_000, 1024, THROUGHPUT_PRODUCER,
    ),
    # docs/MULTICORE.md: compressed by the client, and rewritten by the broker for a topic
    # whose compression.type differs (kbroker.append.offload.threads' cases).
    Scenario(
        "produce-1k-zstd",
        "produce 300,000 x 1 KiB, acks=1, compression.type=zstd on the client, kept as produced",
        "produce", 300_000, 1024, {**THROUGHPUT_PRODUCER, "compression.type": "zstd"},
    ),
    Scenario(
        "produce-1k-zstd-to-lz4",
        "produce 300,000 x 1 KiB, acks=1, zstd on the client, topic compression.type=lz4: the broker rewrites",
        "produce", 300_000, 1024, {**THROUGHPUT_PRODUCER, "compression.type": "zstd"},
        topic_config={"compression.type": "lz4"},
    ),
    Scenario(
        "produce-1k-idempotent",
        "produce 300,000 x 1 KiB, acks=all, enable.idempotence=true",
        "produce", 300_000, 1024, IDEMPOTENT_PRODUCER,
    ),
    Scenario(
        "produce-1k-transactional",
        "produce 300,000 x 1 KiB, acks=all, idempotent, transactional: a commit every 1,000 records",
        "produce", 300_000, 1024, IDEMPOTENT_PRODUCER, transaction_records=RECORDS_PER_TRANSACTION,
    ),
    Scenario(
        "consume-100b",
        "consume the 1,000,000 x 100 B records (assign, from offset 0)",
        "consume", 1_000_000, 100, THROUGHPUT_PRODUCER, THROUGHPUT_CONSUMER, dataset="produce-100b",
    ),
    Scenario(
        "consume-1k",
        "consume the 300,000 x 1 KiB records (assign, from offset 0)",
        "consume", 300_000, 1024, THROUGHPUT_PRODUCER, THROUGHPUT_CONSUMER, dataset="produce-1k",
    ),
    Scenario(
        "consume-1k-read-committed",
        "consume those 300,000 x 1 KiB transactional records, isolation.level=read_committed",
        "consume", 300_000, 1024, IDEMPOTENT_PRODUCER, READ_COMMITTED_CONSUMER, dataset="produce-1k-transactional",
        transaction_records=RECORDS_PER_TRANSACTION,
    ),
    Scenario(
        "e2e-latency",
        "end-to-end latency, 100 B every 2 ms for 10 s (linger.ms=0, fetch.wait.max.ms=5)",
        "e2e", 5_000, 100, LATENCY_PRODUCER, LATENCY_CONSUMER,
    ),
    Scenario(
        "partitions-1k",
        "1,000 partitions: 10 producers, 300,000 x 1 KiB in all, acks=1, linger.ms=5, batch.size=1000000; a group of 4 reads it back",
        "partitions", 300_000, 1024, THROUGHPUT_PRODUCER, THROUGHPUT_CONSUMER,
    ),
    Scenario(
        "partitions-1k-java",
        "partitions-1k with 10 Java producers (kafka-clients: acks=1, linger.ms=5, default batch.size 16384); "
        "the group of 4 reads it back",
        "partitions", 300_000, 1024, JAVA_THROUGHPUT_PRODUCER, THROUGHPUT_CONSUMER, client="java",
    ),
    Scenario(
        "connections-1k",
        "1,000 connections producing a record a second each, 200 members in 20 groups, a 50-member group's "
        "rebalances, for 40 s (target: all acknowledged, groups stable, p99 <= 20 ms)",
        "connections", 1000,
    ),
    Scenario(
        "cluster-produce-1k-acks-all",
        "3 brokers: produce 300,000 x 1 KiB to RF=3, min.insync.replicas=2, acks=all, idempotent",
        "produce", 300_000, 1024, IDEMPOTENT_PRODUCER,
        brokers=3, replication_factor=3, topic_config=CLUSTER_TOPIC_CONFIG,
    ),
    Scenario(
        "cluster-consume-1k",
        "3 brokers: consume those 300,000 x 1 KiB records from the leader (assign, from offset 0)",
        "consume", 300_000, 1024, IDEMPOTENT_PRODUCER, THROUGHPUT_CONSUMER, dataset="cluster-produce-1k-acks-all",
        brokers=3, replication_factor=3, topic_config=CLUSTER_TOPIC_CONFIG,
    ),
)  # fmt: skip

SCENARIO_KEYS = tuple(scenario.key for scenario in SCENARIOS)


def select(keys: list[str], scale: float) -> list[Scenario]:
    """The named scenarios in the table's order, scaled; unknown names raise ValueError."""
    unknown = sorted(set(keys) - set(SCENARIO_KEYS))
    if unknown:
        raise ValueError(f"unknown scenarios {unknown}; known: {', '.join(SCENARIO_KEYS)}")
    return [scenario.scaled(scale) for scenario in SCENARIOS if scenario.key in keys]
