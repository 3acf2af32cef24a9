"""The web console end to end (issue 14): the page in headless Chromium, its JSON API, and how
the broker (`console.listener`) and `kbroker console` serve it.

Records are produced and consumed with confluent-kafka; the page (compat-tests/js/console_page.js,
one browser for all of a run's steps) must then show them: the topic list with its partition
count, the end offsets, the browser's keys and values (text and hex) and its search, a record
produced from the page that a consumer reads, a group's lag and its reset, a deleted topic's
page. Screenshots are kept in compat-tests/artifacts/console/<test>/ (ignored by git, kept
after the run for CI to collect; the path is printed). Without Chromium or
playwright-core the browser tests skip, saying why.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from kbroker.testing.cluster import KafkaCluster
from kbroker.testing.processes import free_port
from kbroker.testing.sasl import sasl_listener_overrides
from kbroker.testing.tools import run_console_page
from kbroker.testing.waiting import eventually

pytestmark = pytest.mark.long_running  # Chromium and brokers
TOPIC = "orders"
PER_PARTITION = {0: 4, 1: 7, 2: 2}  # records produced to each partition of TOPIC
GROUP = "billing"
COMMITTED = {1: 3}  # the offsets GROUP commits: lag 4 on partition 1
GONE = "gone-topic"
TICKER = "ticker"  # produced to while the page shows live throughput
WATCHERS = "watchers"  # a group with a member polling while the page looks at it
ARTIFACTS = Path(__file__).resolve().parent / "artifacts" / "console"


def key_of(partition: int, i: int) -> bytes:
    return f"key-{partition}-{i}".encode()


def value_of(partition: int, i: int) -> bytes:
    return json.dumps({"order": i, "partition": partition}).encode()


@pytest.fixture(scope="module")
def cluster(module_broker_factory) -> dict:
    """A broker serving the console, with TOPIC's records, GROUP's commits and a deleted topic."""
    console_port = free_port()
    broker = module_broker_factory.start(f"console.listener=http://127.0.0.1:{console_port}")
    bootstrap = f"127.0.0.1:{broker.port}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    new_topics = [NewTopic(TOPIC, len(PER_PARTITION), 1), NewTopic(GONE, 1, 1), NewTopic(TICKER, 1, 1)]
    for future in admin.create_topics(new_topics).values():
        future.result(30)
    producer = Producer({"bootstrap.servers": bootstrap})
    for partition, count in PER_PARTITION.items():
        for i in range(count):
            producer.produce(TOPIC, key=key_of(partition, i), value=value_of(partition, i), partition=partition,
                             headers=[("source", b"compat-test")])
    assert producer.flush(30) == 0
    commit(bootstrap, GROUP, {TopicPartition(TOPIC, p, o) for p, o in COMMITTED.items()})
    admin.delete_topics([GONE])[GONE].result(30)
    eventually(lambda: GONE not in admin.list_topics(timeout=10).topics, what=f"{GONE} to be deleted")
    return {"broker": broker, "bootstrap": bootstrap, "url": f"http://127.0.0.1:{console_port}/", "admin": admin}


def commit(bootstrap: str, group: str, offsets: set[TopicPartition]) -> None:
    """A consumer of `group` reads the partitions up to the offsets, commits them and leaves."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(tp.topic, tp.partition, 0) for tp in offsets])
        wanted = sum(tp.offset for tp in offsets)
        read = 0
        while read < wanted:
            message = consumer.poll(10)
            assert message is not None and message.error() is None, message and message.error()
            read += 1
        consumer.commit(offsets=list(offsets), asynchronous=False)
    finally:
        consumer.close()


def committed_offsets(admin: AdminClient, group: str) -> dict[int, int]:
    answer = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(30)
    return {tp.partition: tp.offset for tp in answer.topic_partitions if tp.topic == TOPIC}


def get(url: str, body: dict | bytes | None = None) -> tuple[int, dict | list]:
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if data is None else "POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture
def ticking(cluster) -> Iterator[None]:
    """A producer writing to TICKER every 20 ms in a thread until the test ends."""
    stop = threading.Event()

    def tick() -> None:
        producer = Producer({"bootstrap.servers": cluster["bootstrap"], "linger.ms": 0})
        while not stop.wait(0.02):
            producer.produce(TICKER, value=b"tick")
            producer.poll(0)
        producer.flush(10)

    thread = threading.Thread(target=tick, name="ticker", daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(15)


@pytest.fixture
def member(cluster) -> Iterator[None]:
    """A consumer of WATCHERS subscribed to TOPIC, polling in a thread until the test ends."""
    stop = threading.Event()
    joined = threading.Event()

    def run() -> None:
        consumer = Consumer({"bootstrap.servers": cluster["bootstrap"], "group.id": WATCHERS,
                             "client.id": "page-member", "auto.offset.reset": "earliest"})
        consumer.subscribe([TOPIC], on_assign=lambda _c, _p: joined.set())
        while not stop.is_set():
            consumer.poll(0.1)
        consumer.close()

    thread = threading.Thread(target=run, name="member", daemon=True)
    thread.start()
    eventually(joined.is_set, what=f"the consumer to join {WATCHERS}")
    eventually(lambda: get(f"{cluster['url']}api/groups/{WATCHERS}")[1].get("state") == "Stable",
               what=f"{WATCHERS} to be Stable")
    yield
    stop.set()
    thread.join(15)


def by_offset(rows: dict, column: str) -> dict[int, str]:
    return {int(offset): cells[column] for offset, cells in rows.items()}


@pytest.mark.usefixtures("ticking", "member")
def test_page_shows_and_changes_the_cluster(cluster):
    steps = [
        {"do": "brokers"},
        {"do": "topics"},
        {"do": "topic", "topic": TOPIC},
        {"do": "browse", "topic": TOPIC, "partition": 1, "position": 0},
        {"do": "browse", "topic": TOPIC, "partition": 1, "position": 0, "search": "key-1-5"},
        {"do": "browse", "topic": TOPIC, "partition": 0, "from": "timestamp", "position": "2001-09-09T01:46:40Z"},
        {"do": "browse", "topic": TOPIC, "partition": 0, "from": "last", "position": ""},
        {"do": "produce", "topic": TOPIC, "partition": 2, "key": "from-page", "value": "hello from the page",
         "headers": {"via": "console"}},
        {"do": "group", "group": GROUP},
        {"do": "group", "group": WATCHERS},
        {"do": "reset", "group": GROUP, "topic": TOPIC, "to": "earliest"},
        {"do": "topic", "topic": GONE},
        {"do": "group", "group": "no-such-group"},
        {"do": "throughput", "topic": TICKER},
    ]
    results = run_console_page(cluster["url"], ARTIFACTS / "in-broker", steps)
    for result in results:
        assert result["page_errors"] == [], result
    (brokers, topics, topic, browsed, searched, by_time, last, produced, group, watchers, reset, gone, no_group,
     throughput) = results

    assert brokers["brokers"] == ["0"] and brokers["controller"] == "0"
    assert topics["topics"][TOPIC]["partitions"] == str(len(PER_PARTITION))
    assert {int(p): int(cells["end"]) for p, cells in topic["partitions"].items()} == PER_PARTITION
    assert {int(p): int(cells["start"]) for p, cells in topic["partitions"].items()} == dict.fromkeys(PER_PARTITION, 0)
    assert "retention.ms" in topic["configs"]

    assert by_offset(browsed["text"], "key") == {i: key_of(1, i).decode() for i in range(PER_PARTITION[1])}
    assert by_offset(browsed["text"], "value") == {i: value_of(1, i).decode() for i in range(PER_PARTITION[1])}
    assert by_offset(browsed["hex"], "key")[2] == " ".join(f"{b:02x}" for b in key_of(1, 2))
    assert json.loads(by_offset(browsed["json"], "value")[3]) == json.loads(value_of(1, 3))
    assert "\n" in by_offset(browsed["json"], "value")[3]  # pretty-printed
    assert by_offset(browsed["text"], "headers")[0] == "source: compat-test"
    assert by_offset(searched["text"], "key") == {5: "key-1-5"}
    # From a time before every record (10^12 ms), and the last records: partition 0 whole.
    assert by_offset(by_time["text"], "key") == {i: key_of(0, i).decode() for i in range(PER_PARTITION[0])}
    assert by_offset(last["text"], "key") == by_offset(by_time["text"], "key")

    assert produced["status"] == f"Produced to partition 2 at offset {PER_PARTITION[2]}."
    consumer = Consumer({"bootstrap.servers": cluster["bootstrap"], "group.id": "reader", "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(TOPIC, 2, PER_PARTITION[2])])
        message = consumer.poll(15)
        assert message is not None and message.error() is None
        assert (message.key(), message.value(), message.headers()) == (
            b"from-page", b"hello from the page", [("via", b"console")])
    finally:
        consumer.close()

    assert group["state"] == "Empty" and group["reset_unavailable"] is None
    assert group["offsets"][f"{TOPIC}-1"] == {"committed": "3", "lag": str(PER_PARTITION[1] - 3)}
    assert group["total_lag"] == str(PER_PARTITION[1] - 3)
    [[member_id, client_id, _host, assignment]] = watchers["members"]
    assert watchers["state"] == "Stable" and member_id.startswith("page-member")
    assert client_id == "page-member"
    assert assignment == ", ".join(f"{TOPIC}-{p}" for p in sorted(PER_PARTITION))
    assert "only while the group is empty" in watchers["reset_unavailable"]
    assert reset["errors"] == [] and reset["flash"] == f"Offsets of {TOPIC} reset to earliest."
    assert {tp: cells["committed"] for tp, cells in reset["offsets"].items()} == {
        f"{TOPIC}-{p}": "0" for p in PER_PARTITION}
    assert committed_offsets(cluster["admin"], GROUP) == dict.fromkeys(PER_PARTITION, 0)

    assert gone["not_found"] == f'Topic "{GONE}" does not exist.'
    assert no_group["not_found"] == 'Consumer group "no-such-group" does not exist.'
    assert float(throughput["rates"][TICKER]["rate"]) > 0
    assert float(throughput["rates"][TOPIC]["rate"]) == 0  # nothing produced to it in the last poll


def test_api_answers_errors_with_status_codes(cluster):
    url = cluster["url"]
    assert get(f"{url}api/topics/{GONE}") == (404, {"error": f"topic '{GONE}' does not exist"})
    assert get(f"{url}api/topics/{TOPIC}/messages?partition=9")[0] == 404
    assert get(f"{url}api/groups/nobody")[0] == 404
    status, body = get(f"{url}api/topics/{TOPIC}/messages?partition=one")
    assert (status, body) == (400, {"error": "partition must be a whole number, not 'one'"})
    assert get(f"{url}api/topics/{TOPIC}/messages?partition=0&offset=-4")[0] == 400
    assert get(f"{url}api/topics/{TOPIC}/messages", b"not json") == (400, {"error": "the body must be a JSON object"})
    assert get(f"{url}api/topics/{TOPIC}/messages", {"value": 5})[0] == 400
    assert get(f"{url}api/topics/{GONE}/messages", {"value": "x"})[0] == 404
    # JSON only (a cross-site form can post text/plain but not application/json without CORS).
    form = urllib.request.Request(f"{url}api/groups/{GROUP}/reset", data=b'{"topic": "orders", "to": "latest"}',
                                  headers={"Content-Type": "text/plain"}, method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(form, timeout=10)
    assert refused.value.code == 415
    assert get(f"{url}api/groups/{GROUP}/reset", {"topic": TOPIC, "to": "yesterday"})[0] == 400
    assert get(f"{url}api/groups/{GROUP}/reset", {"topic": TOPIC, "to": "offset"})[0] == 400
    assert get(f"{url}api/groups/{GROUP}/reset", {"topic": GONE, "to": "earliest"})[0] == 404
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{url}static/nothing.js", timeout=10)
    assert missing.value.code == 404
    # Looking at a deleted topic does not bring it back (auto.create.topics.enable is on).
    assert GONE not in cluster["admin"].list_topics(timeout=10).topics


def test_messages_from_a_timestamp(cluster):
    url = f"{cluster['url']}api/topics/{TOPIC}/messages?partition=0"
    status, from_start = get(f"{url}&timestamp=0")
    assert status == 200 and [m["offset"] for m in from_start["messages"]] == list(range(PER_PARTITION[0]))
    status, future = get(f"{url}&timestamp={2**50}")  # after every record: an empty window at the end
    assert status == 200 and future["messages"] == [] and future["from_offset"] == PER_PARTITION[0]
    status, window = get(f"{url}&offset=1&limit=2")
    assert [m["offset"] for m in window["messages"]] == [1, 2]


def test_reset_is_refused_while_the_group_has_members(cluster):
    consumer = Consumer({"bootstrap.servers": cluster["bootstrap"], "group.id": "live", "auto.offset.reset": "earliest"})
    try:
        consumer.subscribe([TOPIC])

        def has_member() -> bool:
            consumer.poll(0.2)
            status, body = get(f"{cluster['url']}api/groups/live")
            return status == 200 and bool(body["members"])

        eventually(has_member, what="the consumer to join group live")
        status, body = get(f"{cluster['url']}api/groups/live/reset", {"topic": TOPIC, "to": "earliest"})
        assert status == 400 and "only while it is empty" in body["error"]
    finally:
        consumer.close()


def test_page_and_assets_come_from_the_package(cluster):
    with urllib.request.urlopen(cluster["url"], timeout=10) as response:
        index = response.read().decode()
    assert '<script src="/static/console.js">' in index
    for asset in ("console.js", "console.css"):
        with urllib.request.urlopen(f"{cluster['url']}static/{asset}", timeout=10) as response:
            text = response.read().decode()
        assert "https://" not in text and "http://" not in text, f"{asset} loads something from outside"


@contextlib.contextmanager
def kbroker_console(bootstrap: str, client_properties: str, workdir: Path) -> Iterator[str]:
    """`kbroker console` with a --command-config file, until the block ends (stopped by pid)."""
    port = free_port()
    config = workdir / "client.properties"
    config.write_text(client_properties)
    out_path = workdir / "console.out"
    with out_path.open("w") as output:
        proc = subprocess.Popen([sys.executable, "-m", "kbroker", "console", "--bootstrap-server", bootstrap,
                                 "--command-config", str(config), "--listen", f"http://127.0.0.1:{port}"],
                                stdout=output, stderr=subprocess.STDOUT)
        try:
            eventually(lambda: proc.poll() is None and _listening(port), what="kbroker console to listen")
            yield f"http://127.0.0.1:{port}/"
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
    assert "kbroker console at http://127.0.0.1:" in out_path.read_text()


@pytest.fixture
def standalone(cluster, tmp_path) -> Iterator[str]:
    with kbroker_console(cluster["bootstrap"], "client.id=standalone-console\n", tmp_path) as url:
        yield url


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def test_standalone_console_serves_the_same(standalone):
    topics, topic, gone = run_console_page(standalone, ARTIFACTS / "standalone", [
        {"do": "topics"}, {"do": "topic", "topic": TOPIC}, {"do": "topic", "topic": GONE}])
    assert topics["topics"][TOPIC]["partitions"] == str(len(PER_PARTITION))
    ends = {int(p): int(cells["end"]) for p, cells in topic["partitions"].items()}
    assert ends[0] == PER_PARTITION[0] and ends[1] == PER_PARTITION[1]
    assert gone["not_found"] == f'Topic "{GONE}" does not exist.'


def test_standalone_console_of_a_sasl_listener(broker_factory, tmp_path):
    plain_port, sasl_port = free_port(), free_port()
    broker_factory.start(*sasl_listener_overrides(plain_port, sasl_port, mechanisms=("PLAIN",)), port=plain_port)
    # A Java client's properties, as Kafka's tools take them (the tools translate sasl.jaas.config).
    properties = ("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\nsasl.jaas.config="
                  'org.apache.kafka.common.security.plain.PlainLoginModule required username="alice" '
                  'password="alice-secret";\n')
    with kbroker_console(f"127.0.0.1:{sasl_port}", properties, tmp_path) as url:
        status, body = get(f"{url}api/cluster")
        assert status == 200 and body["brokers"] == [{"id": 0, "host": "127.0.0.1", "port": sasl_port}]
    with kbroker_console(f"127.0.0.1:{sasl_port}", properties.replace("alice-secret", "wrong"),
                         tmp_path) as url:
        status, body = get(f"{url}api/topics")
        assert status == 502 and "uthentication" in body["error"], body


def test_standalone_console_usage_and_port_taken(cluster):
    usage = subprocess.run([sys.executable, "-m", "kbroker", "console"], capture_output=True, text=True, timeout=60)
    assert usage.returncode == 2 and "--bootstrap-server" in usage.stderr
    bad = subprocess.run([sys.executable, "-m", "kbroker", "console", "--bootstrap-server", cluster["bootstrap"],
                          "--listen", "127.0.0.1:80"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--listen" in bad.stderr
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "kbroker", "console", "--bootstrap-server", cluster["bootstrap"],
                               "--listen", f"http://127.0.0.1:{port}"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"kbroker console: error: cannot listen on http://127.0.0.1:{port}: Address already in use"]


def test_broker_without_console_listener_serves_none(broker_factory):
    broker = broker_factory.start()
    assert "web console at" not in broker.output()


def test_broker_console_port_taken_stops_the_start(broker_factory):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        broker = broker_factory.start(f"console.listener=http://127.0.0.1:{port}", start=False)
        proc = subprocess.run(broker.argv(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert f"cannot start: console.listener: cannot listen on http://127.0.0.1:{port}: Address already in use" in proc.stderr
    assert "Traceback" not in proc.stderr and "started in" not in proc.stderr


def test_broker_console_listener_must_be_http(broker_factory):
    broker = broker_factory.start("console.listener=127.0.0.1:8080", start=False)
    proc = subprocess.run(broker.argv(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "console.listener" in proc.stderr and "http://HOST:PORT" in proc.stderr


def test_broker_console_needs_a_plaintext_listener(broker_factory):
    port = free_port()
    broker = broker_factory.start(f"listeners=SASL_PLAINTEXT://127.0.0.1:{port}",
                                  "security.inter.broker.protocol=SASL_PLAINTEXT",
                                  f"console.listener=http://127.0.0.1:{free_port()}", start=False)
    proc = subprocess.run(broker.argv(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert "console.listener needs a PLAINTEXT listener" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.timeout(300)  # ZooKeeper and three brokers
def test_in_broker_console_of_a_cluster(zookeeper, broker_factory):
    console_port = free_port()
    with KafkaCluster(broker_factory, zookeeper, broker_overrides={
            2: (f"console.listener=http://127.0.0.1:{console_port}",)}) as kafka:
        url = f"http://127.0.0.1:{console_port}/api"
        admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
        admin.create_topics([NewTopic("spread", 2, 3)])["spread"].result(30)
        controller = admin.describe_cluster().result(30).controller.id

        def cluster_view() -> dict | None:
            status, body = get(f"{url}/cluster")
            return body if status == 200 and len(body["brokers"]) == 3 else None

        view = eventually(cluster_view, what="the console to see three brokers")
        assert [b["id"] for b in view["brokers"]] == [1, 2, 3] and view["controller_id"] == controller

        def replicated() -> dict | None:
            status, body = get(f"{url}/topics/spread")
            full = status == 200 and all(sorted(p["isr"]) == [1, 2, 3] for p in body["partitions"])
            return body if full else None

        topic = eventually(replicated, what="spread's partitions fully replicated in the console")
        assert [sorted(p["replicas"]) for p in topic["partitions"]] == [[1, 2, 3], [1, 2, 3]]
        assert all(p["leader"] in (1, 2, 3) and p["end_offset"] == 0 for p in topic["partitions"])


def test_broker_console_uses_a_plaintext_listener_when_the_first_is_sasl(broker_factory):
    plain_port, sasl_port, console_port = free_port(), free_port(), free_port()
    overrides = sasl_listener_overrides(plain_port, sasl_port, mechanisms=("PLAIN",))
    overrides[0] = f"listeners=SASL_PLAINTEXT://127.0.0.1:{sasl_port},PLAINTEXT://127.0.0.1:{plain_port}"
    broker_factory.start(*overrides, f"console.listener=http://127.0.0.1:{console_port}", port=plain_port)
    status, body = get(f"http://127.0.0.1:{console_port}/api/cluster")
    # Metadata names the brokers' endpoints of the listener it was asked on: the PLAINTEXT one.
    assert status == 200 and body["brokers"] == [{"id": 0, "host": "127.0.0.1", "port": plain_port}]
    assert get(f"http://127.0.0.1:{console_port}/api/topics")[0] == 200
