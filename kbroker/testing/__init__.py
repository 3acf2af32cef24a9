"""Test support for kbroker, shared by tests/, compat-tests/ and scripts/: import what you need.

For your own application's tests (the public part):
- `KafkaBroker` (`from kbroker.testing import KafkaBroker`): `with KafkaBroker() as broker:` a real
  broker subprocess, `broker.bootstrap_servers`; also `async with`, and `KafkaBroker(brokers=3)`
  for a cluster with ZooKeeper (module `broker`);
- `plugin`: the pytest plugin kbroker registers by entry point: `kafka_broker` (session) and
  `kafka_topic` (function) fixtures;
- `admin`: `create_topic` over a plain socket, no client library needed.

For kbroker's own suites:

Start real processes on 127.0.0.1 and stop them by pid:
- `processes`: `free_port()`, `BrokerProcess` (one `python -m kbroker` subprocess with its own
  log dir, ready once it answers ApiVersions) and `BrokerLauncher` (starts brokers, stops them all);
- `zookeeper`: `ZooKeeperProcess`, a throwaway ZooKeeper (Debian's `zookeeper` package);
- both take another `host` and an `argv_prefix` (scripts/chaos runs them in network namespaces);
- `cluster`: `KafkaCluster`, brokers 1..N registered in that ZooKeeper, with znode readers;
- `apache_kafka`: Apache Kafka 4.4 itself (single-node KRaft from the Maven jars scripts/test
  copies into compat-tests/java/kafka/target/lib), the reference of the differential tests and
  `scripts/bench --against kafka`, and `run_kafka_tool` for Kafka's CLI tools by script name;
- `pytest_plugin`: the `broker`, `broker_factory`, `module_broker_factory` and `zookeeper`
  fixtures, and `apache_kafka` (one per module) (register it with `pytest_plugins = ["kbroker.testing.pytest_plugin"]`).

Wait and talk to a broker:
- `waiting`: `eventually(condition, what=...)`, the one polling helper, with a deadline;
- `wire`: request frames built with struct and responses read off a plain socket;
- `raw_client`: `RawClient`, requests encoded with kbroker's codec, and one-partition requests;
- `tools`: kcat and the KafkaJS scripts under compat-tests/js;
- `txn_log`: transactional batches, WriteTxnMarkers as a coordinator sends it, and Fetch /
  ListOffsets under an isolation level.

Data and in-process harnesses:
- `batches`: record batches written and read by kafka-python, an oracle independent of kbroker;
- `records`: a deterministic sample data set and the batches a broker stored on disk;
- `group_harness`: a GroupCoordinator over real storage with a fake clock;
- `replication_cluster`: several brokers' replication parts in one event loop.

Importing this package imports none of its modules: the heavy client libraries (kafka-python,
confluent-kafka, aiokafka) load only with the modules that use them.
"""

from typing import Any

__all__ = ["KafkaBroker"]


def __getattr__(name: str) -> Any:
    # `from kbroker.testing import KafkaBroker` without importing it with the package (and with no
    # import of it here: the package's own modules import the package).
    if name == "KafkaBroker":
        from kbroker.testing.broker import KafkaBroker

        return KafkaBroker
    raise AttributeError(f"module 'kbroker.testing' has no attribute {name!r}")
