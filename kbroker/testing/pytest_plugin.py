"""pytest fixtures and hooks for tests that run real kbroker and ZooKeeper processes.

Register it from a conftest.py with `pytest_plugins = ["kbroker.testing.pytest_plugin"]`
(tests/ and compat-tests/ do).

Fixtures:
- `broker_factory(*overrides)` starts a kbroker subprocess per call (function scope);
  `module_broker_factory` is the same for brokers shared by a whole test module;
- `broker`: one broker with default settings (function scope);
- `zookeeper`: a real ZooKeeper for the session, as its "127.0.0.1:port" connect string;
- `apache_kafka`: Apache Kafka 4.4 (single-node KRaft, from the Maven jars) for a whole test
  module, the reference kbroker is compared against; skipped with the reason without java or jars.
Every process is stopped at teardown, passed or failed. When a test fails, the tail of each of
its brokers' output is attached to the report.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from kbroker.testing.apache_kafka import ApacheKafkaProcess, apache_kafka_unavailable_reason
from kbroker.testing.processes import BrokerLauncher, BrokerProcess
from kbroker.testing.zookeeper import ZooKeeperProcess, zookeeper_unavailable_reason

# Launchers whose brokers are (or were) running while the current test ran.
_active_launchers: list[BrokerLauncher] = []


def _launcher(root: Path) -> Iterator[BrokerLauncher]:
    launcher = BrokerLauncher(root)
    _active_launchers.append(launcher)
    try:
        yield launcher
    finally:
        launcher.stop_all()
        _active_launchers.remove(launcher)


@pytest.fixture
def broker_factory(tmp_path: Path) -> Iterator[BrokerLauncher]:
    """Call it with `key=value` overrides to start a broker: `broker_factory("broker.id=1")`."""
    yield from _launcher(tmp_path)


@pytest.fixture(scope="module")
def module_broker_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerLauncher]:
    yield from _launcher(tmp_path_factory.mktemp("brokers"))


@pytest.fixture
def broker(broker_factory: BrokerLauncher) -> BrokerProcess:
    return broker_factory()


@pytest.fixture(scope="session")
def zookeeper_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZooKeeperProcess]:
    reason = zookeeper_unavailable_reason()
    if reason:
        pytest.skip(reason)
    process = ZooKeeperProcess(tmp_path_factory.mktemp("zookeeper")).start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="session")
def zookeeper(zookeeper_process: ZooKeeperProcess) -> str:
    """A running ZooKeeper's connect string, "127.0.0.1:<port>"."""
    return zookeeper_process.connect_string


@pytest.fixture(scope="module")
def apache_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApacheKafkaProcess]:
    """Apache Kafka 4.4 started once per module (a JVM takes seconds to start and 1 GiB)."""
    reason = apache_kafka_unavailable_reason()
    if reason:
        pytest.skip(reason)
    process = ApacheKafkaProcess(tmp_path_factory.mktemp("apache-kafka")).start()
    try:
        yield process
    finally:
        process.stop()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "long_running: the module takes a minute or more (a whole-run chaos test, benchmarks, many JVMs); "
        "pytest-xdist workers are handed such modules first",
    )
    # kafka-python 3.0 loads its schemas with importlib.resources calls deprecated in 3.11:
    # one warning per schema file, which would bury every other warning.
    for message in ("read_text is deprecated", "open_text is deprecated"):
        config.addinivalue_line("filterwarnings", f"ignore:{message}:DeprecationWarning")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In a pytest-xdist worker, modules marked long_running first, then the rest by their number
    of tests, largest first (as xdist orders them itself, which ./scripts/test turns off with
    --no-loadscope-reorder so this order counts). Handed out last, a long module of few tests
    (scripts/chaos's run is one test of two minutes) would run alone while the other worker idles.

    Only the order of whole modules changes, never the order within one; a serial run keeps
    pytest's order."""
    if not hasattr(config, "workerinput"):
        return
    modules: dict[str, list[pytest.Item]] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::", 1)[0], []).append(item)

    def cost(tests: list[pytest.Item]) -> tuple[bool, int]:
        return (tests[0].get_closest_marker("long_running") is None, -len(tests))

    items[:] = [item for tests in sorted(modules.values(), key=cost) for item in tests]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport() -> Generator[None, pytest.TestReport, pytest.TestReport]:
    # pytest passes hook arguments by name, so the unused `item` and `call` are simply not asked for.
    report = yield
    if report.failed:
        for launcher in _active_launchers:
            for title, text in launcher.logs_for_report():
                report.sections.append((title, text))
    return report
