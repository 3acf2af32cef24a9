"""pytest plugin for applications tested against kbroker, registered by kbroker's `pytest11`
entry point: installing kbroker is enough, no conftest.py line needed.

Fixtures:
- `kafka_broker` (session): one real broker (kbroker.testing.KafkaBroker) for the whole session;
  `kafka_broker.bootstrap_servers` is what clients connect to. Its settings come from the
  `kafka_broker_settings` fixture: override it in a conftest.py to return other settings
  (`{"num.partitions": 3}`, or `{"brokers": 3}` for a cluster with ZooKeeper).
- `kafka_topic` (function): the name of a topic created for this test alone on that broker;
  `@pytest.mark.kafka_topic(partitions=3, config={"cleanup.policy": "compact"})` shapes it.

It imports nothing heavy until a test asks for a fixture, so it costs other test suites nothing.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

MAX_TOPIC_NAME = 249
_NOT_IN_TOPIC_NAMES = re.compile(r"[^a-zA-Z0-9._-]+")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "kafka_topic(partitions=1, replication_factor=1, config=None): how the kafka_topic fixture "
        "creates this test's topic",
    )


@pytest.fixture(scope="session")
def kafka_broker_settings() -> dict[str, Any]:
    """Settings of the session's broker, Kafka's keys: override this fixture to change them."""
    return {}


@pytest.fixture(scope="session")
def kafka_broker(kafka_broker_settings: dict[str, Any]) -> Iterator[Any]:
    from kbroker.testing.broker import KafkaBroker

    settings = dict(kafka_broker_settings)
    brokers = int(settings.pop("brokers", 1))
    with KafkaBroker(brokers, settings=settings) as broker:
        yield broker


def topic_name_for(test_name: str) -> str:
    """A legal, unique topic name that still says which test made it."""
    suffix = uuid.uuid4().hex[:8]
    readable = _NOT_IN_TOPIC_NAMES.sub("-", test_name).strip("-.") or "test"
    return f"{readable[: MAX_TOPIC_NAME - len(suffix) - 1]}-{suffix}"


@pytest.fixture
def kafka_topic(request: pytest.FixtureRequest, kafka_broker: Any) -> str:
    marker = request.node.get_closest_marker("kafka_topic")
    options = dict(marker.kwargs) if marker else {}
    name = topic_name_for(request.node.name)
    kafka_broker.create_topic(name, options.pop("partitions", 1), options.pop("replication_factor", 1),
                              options.pop("config", None))
    if options:
        raise pytest.UsageError(f"kafka_topic marker: unknown options {sorted(options)}")
    return name
