"""kbroker.testing itself: `eventually` waits with a deadline and names what it awaited, `free_port`
gives a port one can bind (from a slice of its own in each pytest-xdist worker), the suites' plugin
hands long_running modules to xdist's workers first, and importing the package and its process helpers loads no Kafka client
library (they are for users' tests too, which may not have those installed)."""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import subprocess
import sys

import pytest

from kbroker.testing.apache_kafka import (
    KAFKA_LIB,
    TOOL_CLASSES,
    SaslSslListener,
    apache_kafka_unavailable_reason,
    parse_main_args,
    random_cluster_id,
    server_properties,
)
from kbroker.testing.processes import LISTEN_PORTS, free_port, worker_port_range
from kbroker.testing.waiting import eventually, eventually_async

CLIENT_LIBRARIES = ("kafka", "confluent_kafka", "aiokafka")
LIGHT_MODULES = ("kbroker.testing", "kbroker.testing.waiting", "kbroker.testing.processes",
                 "kbroker.testing.zookeeper", "kbroker.testing.wire", "kbroker.testing.pytest_plugin",
                 "kbroker.testing.apache_kafka")


def test_eventually_returns_the_first_truthy_value():
    calls = itertools.count(1)
    assert eventually(lambda: next(calls) >= 3 and "ready", what="the third call", interval=0) == "ready"
    assert next(calls) == 4  # called exactly three times


def test_eventually_names_what_it_awaited_once_the_deadline_passes():
    with pytest.raises(AssertionError, match=r"timed out after 0s waiting for the impossible \(last seen: \[\]\)"):
        eventually(lambda: [], what="the impossible", timeout=0, interval=0)


def test_eventually_async_polls_without_blocking_the_loop():
    async def scenario() -> str:
        flag: list[str] = []
        asyncio.get_running_loop().call_soon(flag.append, "set by the loop")
        return (await eventually_async(lambda: flag, what="the loop's callback", interval=0))[0]

    assert asyncio.run(scenario()) == "set by the loop"


def test_eventually_async_names_what_it_awaited():
    with pytest.raises(AssertionError, match="waiting for nothing at all"):
        asyncio.run(eventually_async(lambda: None, what="nothing at all", timeout=0, interval=0))


def test_free_port_can_be_bound_on_loopback():
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        assert sock.getsockname() == ("127.0.0.1", port)


def test_pytest_xdist_workers_draw_ports_from_disjoint_slices(monkeypatch):
    """Two workers never hand out the same port: each draws from its own slice of the range."""
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    slices = []
    for worker in ("gw0", "gw1"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        slices.append(worker_port_range())
        assert {free_port() for _ in range(20)} <= set(slices[-1])
    assert not set(slices[0]) & set(slices[1])
    assert len(slices[0]) == len(slices[1]) == len(LISTEN_PORTS) // 2
    monkeypatch.delenv("PYTEST_XDIST_WORKER")  # outside xdist (or one worker): the whole range
    assert worker_port_range() == LISTEN_PORTS


def test_the_package_and_its_process_helpers_import_no_client_library():
    """Checked in a fresh interpreter: this one has the clients loaded by other tests."""
    script = (f"import importlib, json, sys\nfor name in {LIGHT_MODULES!r}: importlib.import_module(name)\n"
              f"print(json.dumps([m for m in {CLIENT_LIBRARIES!r} if m in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(done.stdout) == []


def test_zookeeper_chooses_another_port_when_its_port_was_taken_before_it_bound(tmp_path, monkeypatch):
    """Several test runs share the machine: a port free_port() found free may be taken before the
    JVM binds it. ZooKeeperProcess then starts again on another port (one it chose: a given port
    is the caller's)."""
    from kbroker.testing import zookeeper

    if zookeeper.zookeeper_unavailable_reason():
        pytest.skip(zookeeper.zookeeper_unavailable_reason())
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    ports = iter([taken.getsockname()[1], free_port()])
    monkeypatch.setattr(zookeeper, "free_port", lambda: next(ports))
    process = zookeeper.ZooKeeperProcess(tmp_path)
    try:
        process.start()
        assert process.port != taken.getsockname()[1]
        assert zookeeper.four_letter_word(process.port, "ruok") == b"imok"
    finally:
        process.stop()
        taken.close()


def test_apache_kafka_server_properties_make_one_kraft_node(tmp_path):
    text = server_properties(9092, 9093, tmp_path)
    settings = dict(line.split("=", 1) for line in text.splitlines())
    assert settings["process.roles"] == "broker,controller"
    assert settings["controller.quorum.bootstrap.servers"] == "127.0.0.1:9093"
    assert settings["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert settings["log.dirs"] == str(tmp_path) and settings["offsets.topic.replication.factor"] == "1"


def test_apache_kafka_sasl_ssl_listener_beside_plaintext_and_as_command_options(tmp_path):
    listener = SaslSslListener(9094, tmp_path / "broker.p12", "store-secret", "alice", "alice-secret")
    settings = dict(line.split("=", 1) for line in server_properties(9092, 9093, tmp_path, sasl_ssl=listener).splitlines())
    assert settings["listeners"] == "PLAINTEXT://127.0.0.1:9092,SASL_SSL://127.0.0.1:9094,CONTROLLER://127.0.0.1:9093"
    assert settings["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9092,SASL_SSL://127.0.0.1:9094"
    assert settings["inter.broker.listener.name"] == "PLAINTEXT" and settings["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert settings["listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"] == \
        "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    assert settings["listener.name.sasl_ssl.ssl.keystore.location"] == str(tmp_path / "broker.p12")
    assert listener.scram_credential() == "SCRAM-SHA-512=[name=alice,password=alice-secret]"
    assert parse_main_args(["9092", str(tmp_path), *listener.options()]) == (9092, tmp_path, listener, [])
    assert parse_main_args(["9092", str(tmp_path)]) == (9092, tmp_path, None, [])
    assert parse_main_args(["9092", str(tmp_path), "--override", "a=1", "--override", "b=2"])[3] == ["a=1", "b=2"]
    with pytest.raises(SystemExit):  # a port without its key store and user
        parse_main_args(["9092", str(tmp_path), "--sasl-ssl-port", "9094"])


def test_a_cluster_id_is_sixteen_bytes_in_url_safe_base64():
    import base64

    for _ in range(500):  # one in 64 would start with '-', which kafka-storage reads as an option
        cluster_id = random_cluster_id()
        assert len(cluster_id) == 22 and len(base64.urlsafe_b64decode(cluster_id + "==")) == 16
        assert not cluster_id.startswith("-")


@pytest.mark.skipif(apache_kafka_unavailable_reason() is not None, reason=apache_kafka_unavailable_reason() or "")
def test_every_tool_main_class_is_in_kafkas_jars():
    import zipfile

    classes = set()
    for jar in KAFKA_LIB.glob("*.jar"):
        with zipfile.ZipFile(jar) as archive:
            classes.update(name for name in archive.namelist() if name.endswith(".class"))
    missing = {tool: main for tool, main in TOOL_CLASSES.items() if main.replace(".", "/") + ".class" not in classes}
    assert not missing


ORDERED_SUITE = {
    "conftest.py": 'pytest_plugins = ["kbroker.testing.pytest_plugin"]\n',
    "test_a_few.py": "def test_a1(): pass\ndef test_a2(): pass\n",
    "test_b_many.py": "import pytest\n@pytest.mark.parametrize('i', range(3))\ndef test_b(i): pass\n",
    "test_c_long.py": "import pytest\npytestmark = pytest.mark.long_running\ndef test_c(): pass\n",
}


@pytest.mark.timeout(180)
def test_xdist_workers_are_handed_long_running_modules_first(tmp_path):
    """As ./scripts/test runs the suite: the module marked long_running first (it has the fewest
    tests), then the others by their number of tests; a module's own order unchanged."""
    for name, text in ORDERED_SUITE.items():
        (tmp_path / name).write_text(text)
    done = subprocess.run([sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "-n", "1", "--dist",
                           "loadfile", "--no-loadscope-reorder", str(tmp_path)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=170)
    assert done.returncode == 0, done.stdout + done.stderr
    ran = [line.split("::", 1)[1].strip() for line in done.stdout.splitlines() if line.startswith("[gw0]") and "PASSED" in line]
    assert ran == ["test_c", "test_b[0]", "test_b[1]", "test_b[2]", "test_a1", "test_a2"], done.stdout
