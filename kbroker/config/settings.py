"""The settings table: every broker setting under its Kafka name with Kafka 3.x's (ZooKeeper
mode) type, default, validator, importance and a one-line doc in our own words (`BROKER_CONFIGS`),
every topic-level setting with its broker synonyms in Kafka's order of precedence
(`TOPIC_CONFIGS`: `retention.ms` <- log.retention.ms, .minutes, .hours), kbroker's single-node
defaults, and `validate_topic_config()` for CreateTopics/AlterConfigs (the reason string becomes
INVALID_CONFIG).

Must not touch: files, sockets or any other kbroker package. It names the data directory, never
creates it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from kbroker.config.endpoints import SECURITY_PROTOCOLS
from kbroker.config.validators import (
    CLEANUP_POLICIES,
    COMPRESSION,
    GZIP_LEVEL,
    HTTP_LISTENER,
    LZ4_LEVEL,
    METADATA_VERSION,
    THROTTLED_REPLICAS,
    TIMESTAMP_TYPES,
    ZSTD_LEVEL,
    AtLeast,
    Between,
    ListOf,
    OneOf,
    Validator,
    check_setting,
)
from kbroker.config.value_types import (
    BOOLEAN,
    CLASS,
    DOUBLE,
    DOUBLE_MAX,
    HIGH,
    INT,
    INT_MAX,
    LIST,
    LONG,
    LONG_MAX,
    LOW,
    MEDIUM,
    PASSWORD,
    SHORT,
    STRING,
    ConfigError,
)

# Where kbroker keeps data when neither log.dirs nor log.dir is given. Kafka's own default is
# /tmp/kafka-logs; a different path means a kbroker never opens a real Kafka's data by accident.
DATA_DIR_DEFAULT = "/tmp/kbroker-logs"

# DESIGN.md's dev-friendly defaults, used when zookeeper.connect is unset (embedded single node).
SINGLE_NODE_DEFAULTS: dict[str, str] = {
    "listeners": "PLAINTEXT://localhost:9092",
    "auto.create.topics.enable": "true",
    "group.initial.rebalance.delay.ms": "0",
    "offsets.topic.replication.factor": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "default.replication.factor": "1",
}


# ----------------------------------------------------------------------------------------------
# The tables


class ConfigKey(NamedTuple):
    name: str
    type: str
    default: Any
    validator: Validator | None
    importance: str
    doc: str
    topic_name: str | None = None  # the topic-level setting this broker setting is a default for

    @property
    def sensitive(self) -> bool:
        return self.type == PASSWORD


class Synonym(NamedTuple):
    """A broker setting that gives a topic setting's default, times `multiplier` (hours -> ms)."""

    broker_name: str
    multiplier: int = 1


class TopicConfigKey(NamedTuple):
    name: str
    type: str
    default: Any
    validator: Validator | None
    doc: str
    synonyms: tuple[Synonym, ...] = ()


HOUR_MS = 60 * 60 * 1000
MINUTE_MS = 60 * 1000
WEEK_MS = 7 * 24 * HOUR_MS
DAY_MS = 24 * HOUR_MS
MIB = 1024 * 1024

_K = ConfigKey
_BROKER_TABLE: tuple[ConfigKey, ...] = (
    # ZooKeeper
    _K("zookeeper.connect", STRING, None, None, HIGH, "ZooKeeper host:port list with optional /chroot; unset means embedded single node"),
    _K("zookeeper.session.timeout.ms", INT, 18000, None, HIGH, "ZooKeeper session timeout"),
    _K("zookeeper.connection.timeout.ms", INT, None, None, HIGH, "Time to wait for a ZooKeeper connection; unset uses the session timeout"),
    _K("zookeeper.sync.time.ms", INT, 2000, None, LOW, "How far a ZooKeeper follower may lag its leader (unused since Kafka 3)"),
    _K("zookeeper.set.acl", BOOLEAN, False, None, HIGH, "Create znodes with secure ACLs"),
    _K("zookeeper.max.in.flight.requests", INT, 10, AtLeast(1), HIGH, "Unacknowledged ZooKeeper requests before the client blocks"),
    _K("zookeeper.metadata.migration.enable", BOOLEAN, False, None, HIGH, "ZooKeeper to KRaft migration (not supported by kbroker)"),
    _K("zookeeper.ssl.client.enable", BOOLEAN, False, None, MEDIUM, "Use TLS towards ZooKeeper"),
    _K("zookeeper.clientCnxnSocket", STRING, None, None, MEDIUM, "ZooKeeper client socket class, for TLS"),
    _K("zookeeper.ssl.keystore.location", STRING, None, None, MEDIUM, "Keystore for TLS client auth to ZooKeeper"),
    _K("zookeeper.ssl.keystore.password", PASSWORD, None, None, MEDIUM, "Password of that keystore"),
    _K("zookeeper.ssl.keystore.type", STRING, None, None, MEDIUM, "Type of that keystore; unset guesses from the file name"),
    _K("zookeeper.ssl.truststore.location", STRING, None, None, MEDIUM, "Truststore for TLS to ZooKeeper"),
    _K("zookeeper.ssl.truststore.password", PASSWORD, None, None, MEDIUM, "Password of that truststore"),
    _K("zookeeper.ssl.truststore.type", STRING, None, None, MEDIUM, "Type of that truststore; unset guesses from the file name"),
    _K("zookeeper.ssl.protocol", STRING, "TLSv1.2", None, LOW, "TLS protocol towards ZooKeeper"),
    _K("zookeeper.ssl.enabled.protocols", LIST, None, None, LOW, "TLS protocols enabled towards ZooKeeper"),
    _K("zookeeper.ssl.cipher.suites", LIST, None, None, LOW, "Cipher suites enabled towards ZooKeeper"),
    _K("zookeeper.ssl.endpoint.identification.algorithm", STRING, "HTTPS", None, LOW, "HTTPS checks ZooKeeper's host name; blank disables it"),
    _K("zookeeper.ssl.crl.enable", BOOLEAN, False, None, LOW, "Check certificate revocation lists with ZooKeeper"),
    _K("zookeeper.ssl.ocsp.enable", BOOLEAN, False, None, LOW, "Check certificates over OCSP with ZooKeeper"),
    # General
    _K("broker.id.generation.enable", BOOLEAN, True, None, MEDIUM, "Let ZooKeeper hand out a broker id when broker.id is unset"),
    _K("reserved.broker.max.id", INT, 1000, AtLeast(0), MEDIUM, "Highest id a user may configure; generated ids start above it"),
    _K("broker.id", INT, -1, None, HIGH, "This broker's id; -1 asks for a generated one"),
    _K("message.max.bytes", INT, MIB + 12, AtLeast(0), HIGH, "Largest record batch the broker accepts (topic: max.message.bytes)"),
    _K("num.network.threads", INT, 3, AtLeast(1), HIGH, "Threads reading requests from and writing responses to sockets"),
    _K("num.io.threads", INT, 8, AtLeast(1), HIGH, "Threads handling requests"),
    _K("num.replica.alter.log.dirs.threads", INT, None, None, HIGH, "Threads moving replicas between log dirs"),
    _K("background.threads", INT, 10, AtLeast(1), HIGH, "Threads for background tasks"),
    _K("queued.max.requests", INT, 500, AtLeast(1), HIGH, "Requests queued before the network threads stop reading"),
    _K("queued.max.request.bytes", LONG, -1, None, MEDIUM, "Queued request bytes before reading stops; -1 is no limit"),
    _K("request.timeout.ms", INT, 30000, None, HIGH, "How long the broker's own client requests wait for an answer"),
    _K("socket.connection.setup.timeout.ms", LONG, 10000, None, MEDIUM, "Initial time allowed to open a connection"),
    _K("socket.connection.setup.timeout.max.ms", LONG, 30000, None, MEDIUM, "Cap on the growing connection setup timeout"),
    _K("process.roles", LIST, [], ListOf(("broker", "controller")), HIGH, "KRaft roles; must stay empty, kbroker runs in ZooKeeper mode"),
    _K("authorizer.class.name", STRING, "", None, LOW, "Authorizer class; empty means no authorization"),
    _K("early.start.listeners", STRING, None, None, HIGH, "Listeners started before authorizer initialisation completes"),
    _K("max.request.partition.size.limit", INT, 2000, AtLeast(1), MEDIUM, "Most partitions one request may name"),
    _K("telemetry.max.bytes", INT, MIB, AtLeast(1), LOW, "Largest client telemetry push accepted"),
    # Socket server
    _K("listeners", STRING, "PLAINTEXT://:9092", None, HIGH, "NAME://host:port list to bind; empty host or 0.0.0.0 means all interfaces"),
    _K("advertised.listeners", STRING, None, None, HIGH, "Addresses given to clients; unset means the listeners"),
    _K("listener.security.protocol.map", STRING, "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL", None, LOW, "Listener name to security protocol"),
    _K("control.plane.listener.name", STRING, None, None, HIGH, "Listener reserved for controller-to-broker traffic"),
    # Kafka's default is 100 KiB each; kbroker's is -1 (the OS's own sizes with their autotuning),
    # which keeps a large produce from being read 100 KiB at a time by the one event loop.
    _K("socket.send.buffer.bytes", INT, -1, None, HIGH, "SO_SNDBUF of accepted sockets; -1 keeps the OS default"),
    _K("socket.receive.buffer.bytes", INT, -1, None, HIGH, "SO_RCVBUF of accepted sockets; -1 keeps the OS default"),
    _K("socket.request.max.bytes", INT, 100 * MIB, AtLeast(1), HIGH, "Largest request frame accepted"),
    _K("socket.listen.backlog.size", INT, 50, AtLeast(1), MEDIUM, "Pending connection backlog of each listening socket"),
    _K("max.connections.per.ip", INT, INT_MAX, AtLeast(0), MEDIUM, "Connections allowed from one address"),
    _K("max.connections.per.ip.overrides", STRING, "", None, MEDIUM, "host:count list overriding max.connections.per.ip"),
    _K("max.connections", INT, INT_MAX, AtLeast(0), MEDIUM, "Connections allowed in total"),
    _K("max.connection.creation.rate", INT, INT_MAX, AtLeast(0), MEDIUM, "New connections allowed per second"),
    _K("connections.max.idle.ms", LONG, 10 * MINUTE_MS, None, MEDIUM, "Idle connections are closed after this long"),
    _K("connection.failed.authentication.delay.ms", INT, 100, AtLeast(0), LOW, "Delay before closing a connection that failed authentication"),
    _K("broker.rack", STRING, None, None, MEDIUM, "Rack of this broker, for rack-aware replica placement"),
    # Log
    _K("num.partitions", INT, 1, AtLeast(1), MEDIUM, "Partitions of a topic created without a count"),
    _K("log.dir", STRING, "/tmp/kafka-logs", None, HIGH, "Data directory when log.dirs is unset"),
    _K("log.dirs", STRING, None, None, HIGH, "Comma-separated data directories; wins over log.dir"),
    _K("log.segment.bytes", INT, 1024 * MIB, AtLeast(14), HIGH, "Segment size before a roll"),
    _K("log.roll.ms", LONG, None, None, HIGH, "Segment age before a roll, in ms; wins over log.roll.hours"),
    _K("log.roll.hours", INT, 168, AtLeast(1), HIGH, "Segment age before a roll, in hours"),
    _K("log.roll.jitter.ms", LONG, None, None, HIGH, "Random jitter taken off the roll time, in ms; wins over hours"),
    _K("log.roll.jitter.hours", INT, 0, AtLeast(0), HIGH, "Random jitter taken off the roll time, in hours"),
    _K("log.retention.ms", LONG, None, None, HIGH, "Data age before deletion, in ms; -1 keeps forever; wins over minutes and hours"),
    _K("log.retention.minutes", INT, None, None, HIGH, "Data age before deletion, in minutes; wins over hours"),
    _K("log.retention.hours", INT, 168, None, HIGH, "Data age before deletion, in hours"),
    _K("log.retention.bytes", LONG, -1, None, HIGH, "Partition size before old segments go; -1 is no limit"),
    _K("log.retention.check.interval.ms", LONG, 5 * MINUTE_MS, AtLeast(1), MEDIUM, "How often retention is checked"),
    _K("log.initial.task.delay.ms", LONG, 30000, AtLeast(0), LOW, "Wait after start-up before the first retention check"),
    _K("log.cleanup.policy", LIST, ["delete"], CLEANUP_POLICIES, MEDIUM, "delete, compact or both, for data past retention"),
    _K("log.cleaner.threads", INT, 1, AtLeast(0), MEDIUM, "Compaction threads"),
    _K("log.cleaner.io.max.bytes.per.second", DOUBLE, DOUBLE_MAX, None, MEDIUM, "Compaction I/O throttle"),
    _K("log.cleaner.dedupe.buffer.size", LONG, 128 * MIB, None, MEDIUM, "Memory for compaction's key map, over all threads"),
    _K("log.cleaner.io.buffer.size", INT, 512 * 1024, AtLeast(0), MEDIUM, "Memory for compaction's I/O buffers, over all threads"),
    _K("log.cleaner.io.buffer.load.factor", DOUBLE, 0.9, None, MEDIUM, "How full compaction's key map may get"),
    _K("log.cleaner.backoff.ms", LONG, 15000, AtLeast(0), MEDIUM, "Sleep when nothing needs compacting"),
    _K("log.cleaner.min.cleanable.ratio", DOUBLE, 0.5, Between(0, 1), MEDIUM, "Dirty share of a log before it is compacted"),
    _K("log.cleaner.enable", BOOLEAN, True, None, MEDIUM, "Run compaction (needed by __consumer_offsets)"),
    _K("log.cleaner.delete.retention.ms", LONG, DAY_MS, AtLeast(0), MEDIUM, "How long tombstones outlive compaction"),
    _K("log.cleaner.min.compaction.lag.ms", LONG, 0, AtLeast(0), MEDIUM, "Minimum record age before compaction"),
    _K("log.cleaner.max.compaction.lag.ms", LONG, LONG_MAX, AtLeast(1), MEDIUM, "Maximum time a record stays uncompacted"),
    _K("log.index.size.max.bytes", INT, 10 * MIB, AtLeast(4), MEDIUM, "Largest offset index file"),
    _K("log.index.interval.bytes", INT, 4096, AtLeast(0), MEDIUM, "Bytes appended between offset index entries"),
    _K("log.flush.interval.messages", LONG, LONG_MAX, AtLeast(1), HIGH, "Messages appended before an fsync"),
    _K("log.segment.delete.delay.ms", LONG, 60000, AtLeast(0), HIGH, "Wait before a deleted segment's files are removed"),
    _K("log.flush.scheduler.interval.ms", LONG, LONG_MAX, None, HIGH, "How often logs are checked for a due fsync"),
    _K("log.flush.interval.ms", LONG, None, None, HIGH, "Longest time data waits for an fsync; unset uses the scheduler interval"),
    _K("log.flush.offset.checkpoint.interval.ms", INT, 60000, AtLeast(0), HIGH, "How often the recovery point is checkpointed"),
    _K("log.flush.start.offset.checkpoint.interval.ms", INT, 60000, AtLeast(0), HIGH, "How often log start offsets are checkpointed"),
    _K("log.preallocate", BOOLEAN, False, None, MEDIUM, "Preallocate segment files"),
    _K("num.recovery.threads.per.data.dir", INT, 1, AtLeast(1), HIGH, "Threads per data dir for recovery and shutdown flush"),
    _K("auto.create.topics.enable", BOOLEAN, True, None, HIGH, "Create unknown topics on metadata requests and produce"),
    _K("min.insync.replicas", INT, 1, AtLeast(1), HIGH, "In-sync replicas needed to accept an acks=all write"),
    _K("log.message.format.version", STRING, "3.0-IV1", METADATA_VERSION, MEDIUM, "Record format for appends (ignored at IBP 3.0 and later)"),
    _K("log.message.timestamp.type", STRING, "CreateTime", TIMESTAMP_TYPES, MEDIUM, "CreateTime keeps the producer's timestamp, LogAppendTime stamps the broker's"),
    _K("log.message.timestamp.difference.max.ms", LONG, LONG_MAX, AtLeast(0), MEDIUM, "Deprecated: largest timestamp skew in either direction"),
    _K("log.message.timestamp.before.max.ms", LONG, LONG_MAX, AtLeast(0), MEDIUM, "How far a CreateTime may lie in the past"),
    _K("log.message.timestamp.after.max.ms", LONG, LONG_MAX, AtLeast(0), MEDIUM, "How far a CreateTime may lie in the future"),
    _K("create.topic.policy.class.name", CLASS, None, None, LOW, "Policy class that vets topic creation"),
    _K("alter.config.policy.class.name", CLASS, None, None, LOW, "Policy class that vets config changes"),
    _K("log.message.downconversion.enable", BOOLEAN, True, None, LOW, "Convert records for old fetchers"),
    _K("log.dir.failure.timeout.ms", LONG, 30000, AtLeast(1), LOW, "KRaft: time to report a failed log dir before shutting down"),
    _K("log.local.retention.ms", LONG, -2, AtLeast(-2), MEDIUM, "Tiered storage: local retention time; -2 follows log.retention"),
    _K("log.local.retention.bytes", LONG, -2, AtLeast(-2), MEDIUM, "Tiered storage: local retention size; -2 follows log.retention.bytes"),
    _K("remote.log.storage.system.enable", BOOLEAN, False, None, MEDIUM, "Tiered storage (not supported by kbroker)"),
    _K("compression.type", STRING, "producer", COMPRESSION, HIGH, "Codec batches are stored with; producer keeps the producer's"),
    _K("compression.gzip.level", INT, -1, GZIP_LEVEL, MEDIUM, "gzip level when the broker compresses"),
    _K("compression.lz4.level", INT, 9, LZ4_LEVEL, MEDIUM, "lz4 level when the broker compresses"),
    _K("compression.zstd.level", INT, 3, ZSTD_LEVEL, MEDIUM, "zstd level when the broker compresses"),
    _K("delete.topic.enable", BOOLEAN, True, None, HIGH, "Allow DeleteTopics"),
    # Replication
    _K("controller.socket.timeout.ms", INT, 30000, None, MEDIUM, "Timeout of controller-to-broker requests"),
    _K("default.replication.factor", INT, 1, None, MEDIUM, "Replication factor of topics created without one"),
    _K("replica.lag.time.max.ms", LONG, 30000, None, HIGH, "A follower not caught up for this long leaves the ISR"),
    _K("replica.socket.timeout.ms", INT, 30000, None, HIGH, "Timeout of follower fetches; at least replica.fetch.wait.max.ms"),
    _K("replica.socket.receive.buffer.bytes", INT, 64 * 1024, None, HIGH, "SO_RCVBUF of follower fetch sockets"),
    _K("replica.fetch.max.bytes", INT, MIB, AtLeast(0), MEDIUM, "Bytes a follower asks for per partition"),
    _K("replica.fetch.wait.max.ms", INT, 500, None, HIGH, "Longest a follower fetch waits on the leader"),
    _K("replica.fetch.backoff.ms", INT, 1000, AtLeast(0), MEDIUM, "Follower sleep after a fetch error"),
    _K("replica.fetch.min.bytes", INT, 1, None, HIGH, "Bytes a follower fetch waits for"),
    _K("replica.fetch.response.max.bytes", INT, 10 * MIB, AtLeast(0), MEDIUM, "Bytes a follower asks for per fetch"),
    _K("num.replica.fetchers", INT, 1, None, HIGH, "Fetcher threads per source broker"),
    _K("replica.high.watermark.checkpoint.interval.ms", LONG, 5000, None, HIGH, "How often high watermarks are checkpointed"),
    _K("fetch.purgatory.purge.interval.requests", INT, 1000, None, MEDIUM, "Fetch purgatory purge interval, in requests"),
    _K("producer.purgatory.purge.interval.requests", INT, 1000, None, MEDIUM, "Produce purgatory purge interval, in requests"),
    _K("delete.records.purgatory.purge.interval.requests", INT, 1, None, MEDIUM, "DeleteRecords purgatory purge interval, in requests"),
    _K("auto.leader.rebalance.enable", BOOLEAN, True, None, HIGH, "Move leadership back to preferred replicas"),
    _K("leader.imbalance.per.broker.percentage", INT, 10, None, HIGH, "Leader imbalance per broker that triggers a rebalance"),
    _K("leader.imbalance.check.interval.seconds", LONG, 300, AtLeast(1), HIGH, "How often leader imbalance is checked"),
    _K("unclean.leader.election.enable", BOOLEAN, False, None, HIGH, "Allow an out-of-sync replica to lead, losing data"),
    _K("security.inter.broker.protocol", STRING, "PLAINTEXT", OneOf(SECURITY_PROTOCOLS), MEDIUM, "Security protocol between brokers"),
    _K("inter.broker.protocol.version", STRING, "3.9-IV0", METADATA_VERSION, MEDIUM, "Inter-broker protocol version (IBP)"),
    _K("inter.broker.listener.name", STRING, None, None, MEDIUM, "Listener brokers use among themselves"),
    _K("replica.selector.class", STRING, None, None, MEDIUM, "Class choosing a preferred read replica"),
    _K("controlled.shutdown.max.retries", INT, 3, None, MEDIUM, "Controlled shutdown attempts"),
    _K("controlled.shutdown.retry.backoff.ms", LONG, 5000, None, MEDIUM, "Wait between controlled shutdown attempts"),
    _K("controlled.shutdown.enable", BOOLEAN, True, None, MEDIUM, "Hand over leadership before stopping"),
    # Group coordinator
    _K("group.min.session.timeout.ms", INT, 6000, None, MEDIUM, "Shortest consumer session timeout accepted"),
    _K("group.max.session.timeout.ms", INT, 1800000, None, MEDIUM, "Longest consumer session timeout accepted"),
    _K("group.initial.rebalance.delay.ms", INT, 3000, None, MEDIUM, "Wait for more members before a new group's first rebalance"),
    _K("group.max.size", INT, INT_MAX, AtLeast(1), MEDIUM, "Most members in one group"),
    _K("group.coordinator.rebalance.protocols", LIST, ["classic", "consumer"], ListOf(("classic", "consumer")), MEDIUM, "Group protocols served (Kafka 4.0's default: both)"),
    _K("group.coordinator.threads", INT, 1, AtLeast(1), MEDIUM, "Threads of the new group coordinator"),
    _K("group.consumer.session.timeout.ms", INT, 45000, AtLeast(1), MEDIUM, "KIP-848 groups: session timeout"),
    _K("group.consumer.min.session.timeout.ms", INT, 45000, AtLeast(1), MEDIUM, "KIP-848 groups: shortest session timeout"),
    _K("group.consumer.max.session.timeout.ms", INT, 60000, AtLeast(1), MEDIUM, "KIP-848 groups: longest session timeout"),
    _K("group.consumer.heartbeat.interval.ms", INT, 5000, AtLeast(1), MEDIUM, "KIP-848 groups: heartbeat interval"),
    _K("group.consumer.min.heartbeat.interval.ms", INT, 5000, AtLeast(1), MEDIUM, "KIP-848 groups: shortest heartbeat interval"),
    _K("group.consumer.max.heartbeat.interval.ms", INT, 15000, AtLeast(1), MEDIUM, "KIP-848 groups: longest heartbeat interval"),
    _K("group.consumer.max.size", INT, INT_MAX, AtLeast(1), MEDIUM, "KIP-848 groups: most members"),
    _K("group.consumer.assignors", LIST, ["org.apache.kafka.coordinator.group.assignor.UniformAssignor", "org.apache.kafka.coordinator.group.assignor.RangeAssignor"], ListOf(("uniform", "range", "org.apache.kafka.coordinator.group.assignor.UniformAssignor", "org.apache.kafka.coordinator.group.assignor.RangeAssignor")), MEDIUM, "KIP-848 groups: server-side assignors"),
    # Offsets
    _K("offset.metadata.max.bytes", INT, 4096, None, HIGH, "Largest metadata string of a committed offset"),
    _K("offsets.load.buffer.size", INT, 5 * MIB, AtLeast(1), HIGH, "Read size when loading __consumer_offsets"),
    _K("offsets.topic.replication.factor", SHORT, 3, AtLeast(1), HIGH, "Replication factor of __consumer_offsets"),
    _K("offsets.topic.num.partitions", INT, 50, AtLeast(1), HIGH, "Partitions of __consumer_offsets"),
    _K("offsets.topic.segment.bytes", INT, 100 * MIB, AtLeast(1), HIGH, "Segment size of __consumer_offsets"),
    _K("offsets.topic.compression.codec", INT, 0, None, HIGH, "Codec id for __consumer_offsets writes (0 is none)"),
    _K("offsets.retention.minutes", INT, 7 * 24 * 60, AtLeast(1), HIGH, "How long an empty group's offsets are kept"),
    _K("offsets.retention.check.interval.ms", LONG, 600000, AtLeast(1), HIGH, "How often stale offsets are looked for"),
    _K("offsets.commit.timeout.ms", INT, 5000, AtLeast(1), HIGH, "Longest wait for an offset commit to replicate"),
    _K("offsets.commit.required.acks", SHORT, -1, None, HIGH, "Deprecated: acks for offset commits"),
    # Transactions
    _K("transactional.id.expiration.ms", INT, WEEK_MS, AtLeast(1), HIGH, "Idle time before a transactional id expires"),
    _K("transaction.max.timeout.ms", INT, 900000, AtLeast(1), HIGH, "Longest transaction timeout a producer may ask for"),
    _K("transaction.state.log.min.isr", INT, 2, AtLeast(1), HIGH, "min.insync.replicas of __transaction_state"),
    _K("transaction.state.log.load.buffer.size", INT, 5 * MIB, AtLeast(1), HIGH, "Read size when loading __transaction_state"),
    _K("transaction.state.log.replication.factor", SHORT, 3, AtLeast(1), HIGH, "Replication factor of __transaction_state"),
    _K("transaction.state.log.num.partitions", INT, 50, AtLeast(1), HIGH, "Partitions of __transaction_state"),
    _K("transaction.state.log.segment.bytes", INT, 100 * MIB, AtLeast(1), HIGH, "Segment size of __transaction_state"),
    _K("transaction.abort.timed.out.transaction.cleanup.interval.ms", INT, 10000, AtLeast(1), LOW, "How often timed-out transactions are aborted"),
    _K("transaction.remove.expired.transaction.cleanup.interval.ms", INT, HOUR_MS, AtLeast(1), LOW, "How often expired transactional ids are removed"),
    _K("transaction.partition.verification.enable", BOOLEAN, True, None, LOW, "Check a partition joined the transaction before a transactional write"),
    _K("producer.id.expiration.ms", INT, DAY_MS, AtLeast(1), LOW, "Idle time before a partition forgets a producer id"),
    _K("producer.id.expiration.check.interval.ms", INT, 600000, AtLeast(1), LOW, "How often expired producer ids are removed"),
    # Fetch
    _K("max.incremental.fetch.session.cache.slots", INT, 1000, AtLeast(0), MEDIUM, "Incremental fetch sessions kept"),
    _K("fetch.max.bytes", INT, 55 * MIB, AtLeast(1024), MEDIUM, "Most bytes returned by one fetch"),
    # Metrics
    _K("metrics.num.samples", INT, 2, AtLeast(1), LOW, "Samples kept per metric"),
    _K("metrics.sample.window.ms", LONG, 30000, AtLeast(1), LOW, "Time covered by one metric sample"),
    _K("metric.reporters", LIST, [], None, LOW, "Metric reporter classes"),
    _K("metrics.recording.level", STRING, "INFO", None, LOW, "Metric recording level"),
    _K("auto.include.jmx.reporter", BOOLEAN, True, None, LOW, "Deprecated: add the JMX reporter"),
    _K("kafka.metrics.reporters", LIST, [], None, LOW, "Yammer metric reporter classes"),
    _K("kafka.metrics.polling.interval.secs", INT, 10, AtLeast(1), LOW, "Polling interval for those reporters"),
    # kbroker's own (no Kafka name exists): the Prometheus endpoint; unset, nothing listens.
    _K("metrics.listener", STRING, None, HTTP_LISTENER, LOW, "Serve Prometheus metrics at http://HOST:PORT/metrics"),
    # kbroker's own too: the web console (kbroker/console), a client of this broker's first
    # PLAINTEXT advertised listener; unset, nothing listens and nothing of it is imported.
    _K("console.listener", STRING, None, HTTP_LISTENER, LOW, "Serve the web console at http://HOST:PORT/"),
    # kbroker's own too: the CRC checks and compression.type rewrites of large appends in
    # worker threads (docs/MULTICORE.md); 0 threads keeps them on the event loop.
    _K("kbroker.append.offload.threads", INT, 0, AtLeast(0), LOW, "Worker threads validating large produce appends (CRC-32C, compression.type rewrites); 0 is off"),
    _K("kbroker.append.offload.min.bytes", INT, 256 * 1024, AtLeast(0), LOW, "Smallest records of a partition handed to those threads (rewrites: from 100 records)"),
    # Quotas
    _K("quota.window.num", INT, 11, AtLeast(1), LOW, "Samples kept for client quotas"),
    _K("replication.quota.window.num", INT, 11, AtLeast(1), LOW, "Samples kept for replication quotas"),
    _K("alter.log.dirs.replication.quota.window.num", INT, 11, AtLeast(1), LOW, "Samples kept for log dir move quotas"),
    _K("controller.quota.window.num", INT, 11, AtLeast(1), LOW, "Samples kept for controller mutation quotas"),
    _K("quota.window.size.seconds", INT, 1, AtLeast(1), LOW, "Time covered by one client quota sample"),
    _K("replication.quota.window.size.seconds", INT, 1, AtLeast(1), LOW, "Time covered by one replication quota sample"),
    _K("alter.log.dirs.replication.quota.window.size.seconds", INT, 1, AtLeast(1), LOW, "Time covered by one log dir move quota sample"),
    _K("controller.quota.window.size.seconds", INT, 1, AtLeast(1), LOW, "Time covered by one controller mutation quota sample"),
    _K("client.quota.callback.class", CLASS, None, None, LOW, "Class deciding client quotas"),
    # Security
    _K("connections.max.reauth.ms", LONG, 0, None, MEDIUM, "Session lifetime before SASL re-authentication; 0 is none"),
    _K("sasl.server.max.receive.size", INT, 524288, None, MEDIUM, "Largest SASL message before authentication"),
    _K("security.providers", STRING, None, None, LOW, "Security provider creator classes"),
    _K("principal.builder.class", CLASS, "org.apache.kafka.common.security.authenticator.DefaultKafkaPrincipalBuilder", None, MEDIUM, "Class building the principal of a connection"),
    _K("ssl.protocol", STRING, "TLSv1.3", None, MEDIUM, "TLS protocol for SSL contexts"),
    _K("ssl.provider", STRING, None, None, MEDIUM, "Security provider for TLS"),
    _K("ssl.enabled.protocols", LIST, ["TLSv1.2", "TLSv1.3"], None, MEDIUM, "TLS protocols enabled"),
    _K("ssl.keystore.type", STRING, "JKS", None, MEDIUM, "Keystore format"),
    _K("ssl.keystore.location", STRING, None, None, MEDIUM, "Keystore file"),
    _K("ssl.keystore.password", PASSWORD, None, None, MEDIUM, "Keystore password"),
    _K("ssl.key.password", PASSWORD, None, None, MEDIUM, "Private key password"),
    _K("ssl.keystore.key", PASSWORD, None, None, MEDIUM, "Private key in PEM"),
    _K("ssl.keystore.certificate.chain", PASSWORD, None, None, MEDIUM, "Certificate chain in PEM"),
    _K("ssl.truststore.type", STRING, "JKS", None, MEDIUM, "Truststore format"),
    _K("ssl.truststore.location", STRING, None, None, MEDIUM, "Truststore file"),
    _K("ssl.truststore.password", PASSWORD, None, None, MEDIUM, "Truststore password"),
    _K("ssl.truststore.certificates", PASSWORD, None, None, MEDIUM, "Trusted certificates in PEM"),
    _K("ssl.keymanager.algorithm", STRING, "SunX509", None, MEDIUM, "Key manager algorithm"),
    _K("ssl.trustmanager.algorithm", STRING, "PKIX", None, MEDIUM, "Trust manager algorithm"),
    _K("ssl.endpoint.identification.algorithm", STRING, "https", None, LOW, "Host name check of peers"),
    _K("ssl.secure.random.implementation", STRING, None, None, LOW, "SecureRandom implementation"),
    _K("ssl.client.auth", STRING, "none", OneOf(("required", "requested", "none")), MEDIUM, "Whether clients must present certificates"),
    _K("ssl.cipher.suites", LIST, [], None, MEDIUM, "Cipher suites enabled; empty means all"),
    _K("ssl.principal.mapping.rules", STRING, "DEFAULT", None, LOW, "Rules mapping certificate names to principals"),
    _K("ssl.engine.factory.class", CLASS, None, None, LOW, "Custom SSLEngine factory"),
    _K("ssl.allow.dn.changes", BOOLEAN, False, None, LOW, "Allow a keystore update to change the certificate DN"),
    _K("ssl.allow.san.changes", BOOLEAN, False, None, LOW, "Allow a keystore update to change the certificate SANs"),
    _K("sasl.mechanism.inter.broker.protocol", STRING, "GSSAPI", None, MEDIUM, "SASL mechanism between brokers"),
    _K("sasl.jaas.config", PASSWORD, None, None, MEDIUM, "JAAS login context"),
    _K("sasl.enabled.mechanisms", LIST, ["GSSAPI"], None, MEDIUM, "SASL mechanisms served"),
    _K("sasl.server.callback.handler.class", CLASS, None, None, MEDIUM, "Server SASL callback handler"),
    _K("sasl.client.callback.handler.class", CLASS, None, None, MEDIUM, "Client SASL callback handler"),
    _K("sasl.login.class", CLASS, None, None, MEDIUM, "SASL login class"),
    _K("sasl.login.callback.handler.class", CLASS, None, None, MEDIUM, "SASL login callback handler"),
    _K("sasl.kerberos.service.name", STRING, None, None, MEDIUM, "Kerberos service name"),
    _K("sasl.kerberos.kinit.cmd", STRING, "/usr/bin/kinit", None, MEDIUM, "kinit command"),
    _K("sasl.kerberos.ticket.renew.window.factor", DOUBLE, 0.8, None, MEDIUM, "Share of ticket lifetime before renewal"),
    _K("sasl.kerberos.ticket.renew.jitter", DOUBLE, 0.05, None, MEDIUM, "Random jitter on renewal"),
    _K("sasl.kerberos.min.time.before.relogin", LONG, 60000, None, MEDIUM, "Shortest time between relogins"),
    _K("sasl.kerberos.principal.to.local.rules", LIST, ["DEFAULT"], None, MEDIUM, "Rules mapping Kerberos principals to names"),
    _K("sasl.login.refresh.window.factor", DOUBLE, 0.8, None, MEDIUM, "Share of credential lifetime before refresh"),
    _K("sasl.login.refresh.window.jitter", DOUBLE, 0.05, None, MEDIUM, "Random jitter on refresh"),
    _K("sasl.login.refresh.min.period.seconds", SHORT, 60, None, MEDIUM, "Shortest time between refreshes"),
    _K("sasl.login.refresh.buffer.seconds", SHORT, 300, None, MEDIUM, "Time kept before expiry when refreshing"),
    _K("sasl.login.connect.timeout.ms", INT, None, None, LOW, "OAuth login connect timeout"),
    _K("sasl.login.read.timeout.ms", INT, None, None, LOW, "OAuth login read timeout"),
    _K("sasl.login.retry.backoff.max.ms", LONG, 10000, None, LOW, "Longest OAuth login retry wait"),
    _K("sasl.login.retry.backoff.ms", LONG, 100, None, LOW, "First OAuth login retry wait"),
    _K("sasl.oauthbearer.scope.claim.name", STRING, "scope", None, LOW, "JWT claim holding the scope"),
    _K("sasl.oauthbearer.sub.claim.name", STRING, "sub", None, LOW, "JWT claim holding the subject"),
    _K("sasl.oauthbearer.token.endpoint.url", STRING, None, None, MEDIUM, "OAuth token endpoint"),
    _K("sasl.oauthbearer.jwks.endpoint.url", STRING, None, None, MEDIUM, "JWKS endpoint for token checks"),
    _K("sasl.oauthbearer.jwks.endpoint.refresh.ms", LONG, HOUR_MS, None, LOW, "How often the JWKS is refreshed"),
    _K("sasl.oauthbearer.jwks.endpoint.retry.backoff.ms", LONG, 100, None, LOW, "First JWKS retry wait"),
    _K("sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms", LONG, 10000, None, LOW, "Longest JWKS retry wait"),
    _K("sasl.oauthbearer.clock.skew.seconds", INT, 30, None, LOW, "Clock skew tolerated in tokens"),
    _K("sasl.oauthbearer.expected.audience", LIST, None, None, LOW, "Audiences a token must name"),
    _K("sasl.oauthbearer.expected.issuer", STRING, None, None, LOW, "Issuer a token must name"),
    # Delegation tokens and password encoding
    _K("delegation.token.master.key", PASSWORD, None, None, MEDIUM, "Deprecated alias of delegation.token.secret.key"),
    _K("delegation.token.secret.key", PASSWORD, None, None, MEDIUM, "Key signing delegation tokens; unset disables them"),
    _K("delegation.token.max.lifetime.ms", LONG, WEEK_MS, AtLeast(1), MEDIUM, "Longest life of a delegation token"),
    _K("delegation.token.expiry.time.ms", LONG, DAY_MS, AtLeast(1), MEDIUM, "Delegation token validity before renewal"),
    _K("delegation.token.expiry.check.interval.ms", LONG, HOUR_MS, AtLeast(1), LOW, "How often expired tokens are removed"),
    _K("password.encoder.secret", PASSWORD, None, None, MEDIUM, "Secret encoding dynamic passwords"),
    _K("password.encoder.old.secret", PASSWORD, None, None, MEDIUM, "Previous such secret, while rotating"),
    _K("password.encoder.keyfactory.algorithm", STRING, None, None, LOW, "SecretKeyFactory algorithm for that encoding"),
    _K("password.encoder.cipher.algorithm", STRING, "AES/CBC/PKCS5Padding", None, LOW, "Cipher for that encoding"),
    _K("password.encoder.key.length", INT, 128, AtLeast(8), LOW, "Key length for that encoding"),
    _K("password.encoder.iterations", INT, 4096, AtLeast(1024), LOW, "Iterations for that encoding"),
)  # fmt: skip

_T, _S = TopicConfigKey, Synonym
TOPIC_CONFIGS: tuple[TopicConfigKey, ...] = (
    _T("cleanup.policy", LIST, ["delete"], CLEANUP_POLICIES, "delete, compact or both", (_S("log.cleanup.policy"),)),
    _T("compression.type", STRING, "producer", COMPRESSION, "Codec batches are stored with", (_S("compression.type"),)),
    _T("compression.gzip.level", INT, -1, GZIP_LEVEL, "gzip level", (_S("compression.gzip.level"),)),
    _T("compression.lz4.level", INT, 9, LZ4_LEVEL, "lz4 level", (_S("compression.lz4.level"),)),
    _T("compression.zstd.level", INT, 3, ZSTD_LEVEL, "zstd level", (_S("compression.zstd.level"),)),
    _T("delete.retention.ms", LONG, DAY_MS, AtLeast(0), "How long tombstones outlive compaction", (_S("log.cleaner.delete.retention.ms"),)),
    _T("file.delete.delay.ms", LONG, 60000, AtLeast(0), "Wait before a deleted segment's files are removed", (_S("log.segment.delete.delay.ms"),)),
    _T("flush.messages", LONG, LONG_MAX, AtLeast(1), "Messages appended before an fsync", (_S("log.flush.interval.messages"),)),
    _T("flush.ms", LONG, LONG_MAX, AtLeast(0), "Longest time data waits for an fsync", (_S("log.flush.interval.ms"), _S("log.flush.scheduler.interval.ms"))),
    _T("follower.replication.throttled.replicas", LIST, [], THROTTLED_REPLICAS, "Replicas throttled on the follower side"),
    _T("index.interval.bytes", INT, 4096, AtLeast(0), "Bytes appended between offset index entries", (_S("log.index.interval.bytes"),)),
    _T("leader.replication.throttled.replicas", LIST, [], THROTTLED_REPLICAS, "Replicas throttled on the leader side"),
    _T("local.retention.bytes", LONG, -2, AtLeast(-2), "Tiered storage: local retention size", (_S("log.local.retention.bytes"),)),
    _T("local.retention.ms", LONG, -2, AtLeast(-2), "Tiered storage: local retention time", (_S("log.local.retention.ms"),)),
    _T("max.compaction.lag.ms", LONG, LONG_MAX, AtLeast(1), "Maximum time a record stays uncompacted", (_S("log.cleaner.max.compaction.lag.ms"),)),
    _T("max.message.bytes", INT, MIB + 12, AtLeast(0), "Largest record batch accepted", (_S("message.max.bytes"),)),
    _T("message.downconversion.enable", BOOLEAN, True, None, "Convert records for old fetchers", (_S("log.message.downconversion.enable"),)),
    _T("message.format.version", STRING, "3.0-IV1", METADATA_VERSION, "Record format (ignored at IBP 3.0 and later)", (_S("log.message.format.version"),)),
    _T("message.timestamp.after.max.ms", LONG, LONG_MAX, AtLeast(0), "How far a CreateTime may lie in the future", (_S("log.message.timestamp.after.max.ms"),)),
    _T("message.timestamp.before.max.ms", LONG, LONG_MAX, AtLeast(0), "How far a CreateTime may lie in the past", (_S("log.message.timestamp.before.max.ms"),)),
    _T("message.timestamp.difference.max.ms", LONG, LONG_MAX, AtLeast(0), "Deprecated: largest timestamp skew", (_S("log.message.timestamp.difference.max.ms"),)),
    _T("message.timestamp.type", STRING, "CreateTime", TIMESTAMP_TYPES, "CreateTime or LogAppendTime", (_S("log.message.timestamp.type"),)),
    _T("min.cleanable.dirty.ratio", DOUBLE, 0.5, Between(0, 1), "Dirty share of a log before it is compacted", (_S("log.cleaner.min.cleanable.ratio"),)),
    _T("min.compaction.lag.ms", LONG, 0, AtLeast(0), "Minimum record age before compaction", (_S("log.cleaner.min.compaction.lag.ms"),)),
    _T("min.insync.replicas", INT, 1, AtLeast(1), "In-sync replicas needed to accept an acks=all write", (_S("min.insync.replicas"),)),
    _T("preallocate", BOOLEAN, False, None, "Preallocate segment files", (_S("log.preallocate"),)),
    _T("remote.storage.enable", BOOLEAN, False, None, "Tiered storage (not supported by kbroker)"),
    _T("retention.bytes", LONG, -1, None, "Partition size before old segments go; -1 is no limit", (_S("log.retention.bytes"),)),
    _T("retention.ms", LONG, WEEK_MS, AtLeast(-1), "Data age before deletion; -1 keeps forever",
       (_S("log.retention.ms"), _S("log.retention.minutes", MINUTE_MS), _S("log.retention.hours", HOUR_MS))),
    _T("segment.bytes", INT, 1024 * MIB, AtLeast(14), "Segment size before a roll", (_S("log.segment.bytes"),)),
    _T("segment.index.bytes", INT, 10 * MIB, AtLeast(4), "Largest offset index file", (_S("log.index.size.max.bytes"),)),
    _T("segment.jitter.ms", LONG, 0, AtLeast(0), "Random jitter taken off the roll time",
       (_S("log.roll.jitter.ms"), _S("log.roll.jitter.hours", HOUR_MS))),
    _T("segment.ms", LONG, WEEK_MS, AtLeast(1), "Segment age before a roll", (_S("log.roll.ms"), _S("log.roll.hours", HOUR_MS))),
    _T("unclean.leader.election.enable", BOOLEAN, False, None, "Allow an out-of-sync replica to lead, losing data", (_S("unclean.leader.election.enable"),)),
)  # fmt: skip

TOPIC_CONFIG_BY_NAME: dict[str, TopicConfigKey] = {key.name: key for key in TOPIC_CONFIGS}
_TOPIC_NAME_OF_BROKER_KEY = {syn.broker_name: key.name for key in TOPIC_CONFIGS for syn in key.synonyms}
BROKER_CONFIGS: tuple[ConfigKey, ...] = tuple(
    key._replace(topic_name=_TOPIC_NAME_OF_BROKER_KEY.get(key.name)) for key in _BROKER_TABLE
)
BROKER_CONFIG_BY_NAME: dict[str, ConfigKey] = {key.name: key for key in BROKER_CONFIGS}


def parse_topic_config(name: str, value: str) -> Any:
    """A topic-level setting's text to its typed value; ConfigError when unknown or bad."""
    key = TOPIC_CONFIG_BY_NAME.get(name)
    if key is None:
        raise ConfigError(f"Unknown topic config name: {name}")
    return check_setting(name, key.type, key.validator, value)


def validate_topic_config(name: str, value: str) -> str | None:
    """None when `name=value` is a valid topic setting, else the reason (for INVALID_CONFIG)."""
    try:
        parse_topic_config(name, value)
    except ConfigError as exc:
        return str(exc)
    return None
