"""The protocol foundation over raw sockets: framing, ApiVersions, Metadata, DescribeCluster,
bad input and shutdown, against a `python -m kbroker` subprocess.

Requests are built with struct (kbroker/testing/wire.py); larger responses are decoded with kafka-python's
schema classes and must re-encode byte for byte, so a misplaced or extra field fails the test.
Expected behaviour is Apache Kafka's (KAFKA-FACTS.md §9 and §11).
"""

from __future__ import annotations

import base64
import importlib.metadata
import random
import signal
import socket
import struct
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from kafka.protocol.admin import DescribeClusterResponse
from kafka.protocol.metadata import MetadataResponse

from kbroker.testing import wire

UNSUPPORTED_VERSION = 35
INVALID_REQUEST = 42
UNKNOWN_TOPIC_OR_PARTITION = 3
CLUSTER_ID_LENGTH = 22  # a UUID in URL-safe base64 without padding
FUZZ_SEEDS = (20240601, 7, 1234567)
FUZZ_CONNECTIONS = 1000  # per seed: about 3,000 hostile frames each


@pytest.fixture(scope="module")
def shared_broker(module_broker_factory):
    """One default broker for the read-only tests of this module (broker.id defaults to 0)."""
    return module_broker_factory()


def api_versions(port: int, version: int, correlation_id: int = 11) -> wire.ApiVersionsAnswer:
    payload = wire.roundtrip(port, wire.api_versions_request(correlation_id, version))
    answer = wire.parse_api_versions(payload, version)
    assert answer.correlation_id == correlation_id
    return answer


def metadata(port: int, version: int, topics: list[str] | None = None, correlation_id: int = 21):
    payload = wire.roundtrip(port, wire.metadata_request(correlation_id, version, topics))
    received_id, response = wire.decode_with_kafka_python(MetadataResponse, payload, version)
    assert received_id == correlation_id
    return response


def assert_still_serving(broker) -> None:
    """A fresh connection gets ApiVersions and Metadata answers and the process is alive."""
    assert broker.alive(), f"broker exited with {broker.proc.returncode}"
    assert api_versions(broker.port, 3).error_code == 0
    response = metadata(broker.port, 12)
    assert [(b.host, b.port) for b in response.brokers] == [("127.0.0.1", broker.port)]


# --- ApiVersions ------------------------------------------------------------------------------


@pytest.mark.parametrize("version", range(5))
def test_api_versions_answers_every_supported_version(shared_broker, version):
    answer = api_versions(shared_broker.port, version, correlation_id=1000 + version)

    assert answer.error_code == 0
    assert answer.api_keys[wire.API_VERSIONS] == (0, 4)
    assert answer.api_keys[wire.METADATA] == (0, 13)
    assert answer.api_keys[wire.DESCRIBE_CLUSTER][0] == 0
    # DescribeAcls, CreateAcls, DeleteAcls: clients refuse ACL calls to a broker that lacks them.
    assert [answer.api_keys.get(key) for key in (29, 30, 31)] == [(0, 3)] * 3
    if version >= 1:
        assert answer.throttle_time_ms == 0


def test_api_versions_advertises_only_ranges_kafka_defines(shared_broker):
    kafka_ranges = wire.kafka_schema_ranges()
    advertised = api_versions(shared_broker.port, 4).api_keys

    for api_key, (low, high) in advertised.items():
        assert api_key in kafka_ranges, f"api key {api_key} is not a Kafka API"
        assert 0 <= low <= high <= kafka_ranges[api_key][1], f"api key {api_key}: {low}-{high}"


def test_api_versions_lists_the_same_apis_in_every_version(shared_broker):
    answers = [api_versions(shared_broker.port, version).api_keys for version in range(5)]
    assert all(keys == answers[0] for keys in answers)


@pytest.mark.parametrize("version", [5, 127, 32767])
def test_api_versions_unsupported_version_gets_v0_answer_with_own_range(shared_broker, version):
    # Kafka does not parse the body of an unsupported ApiVersions version (KIP-511).
    body = wire.compact_string("future-client") + b"\x7f\x00\x01garbage-from-a-future-version"
    request = wire.request_frame(wire.API_VERSIONS, version, 4242, body, flexible=True)

    payload = wire.roundtrip(shared_broker.port, request)

    answer = wire.parse_api_versions(payload, 0)  # v0 format: no throttle time, no tags
    assert answer.correlation_id == 4242
    assert answer.error_code == UNSUPPORTED_VERSION
    assert answer.api_keys == {wire.API_VERSIONS: (0, 4)}


@pytest.mark.parametrize("version", [3, 4])
def test_api_versions_response_header_has_no_tagged_fields(shared_broker, version):
    payload = wire.roundtrip(shared_broker.port, wire.api_versions_request(77, version))

    # Header v0 is just the correlation id; the body's error code follows directly.
    correlation_id, error_code, compact_count = struct.unpack_from(">ihB", payload)
    assert (correlation_id, error_code) == (77, 0)
    assert compact_count > 3  # at least ApiVersions, Metadata and DescribeCluster, plus one


def test_api_versions_v3_with_invalid_software_name_is_invalid_request(shared_broker):
    request = wire.api_versions_request(5, 3, software=("not a valid name!", "1.0"))

    answer = wire.parse_api_versions(wire.roundtrip(shared_broker.port, request), 3)

    assert answer.error_code == INVALID_REQUEST


# --- Metadata and DescribeCluster -------------------------------------------------------------


@pytest.mark.parametrize("version", range(14))
def test_metadata_every_version_describes_this_broker(shared_broker, version):
    response = metadata(shared_broker.port, version, topics=None)

    assert [(b.node_id, b.host, b.port) for b in response.brokers] == [(0, "127.0.0.1", shared_broker.port)]
    assert response.topics == []
    if version >= 1:
        assert response.controller_id == 0
    if version >= 2:
        assert len(response.cluster_id) == CLUSTER_ID_LENGTH


def test_metadata_cluster_id_is_the_same_in_every_version(shared_broker):
    cluster_ids = {metadata(shared_broker.port, version).cluster_id for version in range(2, 14)}
    assert len(cluster_ids) == 1


@pytest.mark.parametrize("version", [4, 8, 9, 12, 13])
def test_metadata_unknown_topic_without_auto_create(shared_broker, version):
    response = metadata(shared_broker.port, version, topics=["no-such-topic"])

    assert [(t.name, t.error_code, t.partitions) for t in response.topics] == [
        ("no-such-topic", UNKNOWN_TOPIC_OR_PARTITION, [])
    ]


@pytest.mark.parametrize("version", range(3))
def test_describe_cluster_describes_this_broker(shared_broker, version):
    payload = wire.roundtrip(shared_broker.port, wire.describe_cluster_request(31, version))
    correlation_id, response = wire.decode_with_kafka_python(DescribeClusterResponse, payload, version)

    assert correlation_id == 31
    assert response.error_code == 0
    assert response.controller_id == 0
    assert response.cluster_id == metadata(shared_broker.port, 12).cluster_id
    assert [(b.broker_id, b.host, b.port) for b in response.brokers] == [(0, "127.0.0.1", shared_broker.port)]
    if version >= 1:
        assert response.endpoint_type == 1


# --- framing ----------------------------------------------------------------------------------


def test_pipelined_requests_are_answered_in_order(shared_broker):
    rng = random.Random(50)
    correlation_ids = rng.sample(range(-(2**31), 2**31), 50)
    requests = []
    for index, correlation_id in enumerate(correlation_ids):
        if index % 2:
            requests.append(("metadata", index % 14, wire.metadata_request(correlation_id, index % 14)))
        else:
            requests.append(("api_versions", index % 5, wire.api_versions_request(correlation_id, index % 5)))

    with wire.connect(shared_broker.port) as sock:
        sock.sendall(b"".join(request for _, _, request in requests))
        payloads = [wire.read_frame(sock) for _ in requests]

    assert [wire.correlation_id_of(p) for p in payloads] == correlation_ids
    for (kind, version, _), payload in zip(requests, payloads, strict=True):
        if kind == "metadata":
            wire.decode_with_kafka_python(MetadataResponse, payload, version)
        else:
            assert wire.parse_api_versions(payload, version).error_code == 0


@pytest.mark.parametrize(
    "bad_request",
    [
        pytest.param(wire.request_frame(32000, 0, 9), id="unknown-api-key"),
        pytest.param(wire.request_frame(-1, 0, 9), id="negative-api-key"),
        pytest.param(wire.request_frame(wire.METADATA, 99, 9, struct.pack(">i", -1)), id="metadata-v99"),
        pytest.param(
            wire.request_frame(wire.METADATA, 1, 9, struct.pack(">i", 5) + b"\x00\x03ab"), id="truncated-body"
        ),
        pytest.param(
            wire.request_frame(wire.METADATA, 1, 9, struct.pack(">i", 2**31 - 1)), id="huge-array-count"
        ),
        pytest.param(
            wire.request_frame(wire.METADATA, 12, 9, b"\xff" * 40, flexible=True), id="garbage-flexible"
        ),
        pytest.param(wire.frame(b"\x00\x03\x00"), id="truncated-header"),
        pytest.param(wire.frame(b""), id="empty-frame"),
        pytest.param(wire.frame(struct.pack(">hhih", 3, 1, 9, 200) + b"short"), id="client-id-past-end"),
    ],
)
def test_bad_request_closes_only_that_connection(shared_broker, bad_request):
    with wire.connect(shared_broker.port) as sock:
        sock.sendall(wire.api_versions_request(1, 0) + bad_request)
        # The good request before the bad one is still answered, in order; then the close.
        assert wire.parse_api_versions(wire.read_frame(sock), 0).correlation_id == 1
        assert wire.wait_closed(sock) == b""

    assert_still_serving(shared_broker)


def test_metadata_v11_asking_by_topic_id_is_an_invalid_request(shared_broker):
    """Found by scripts/fuzz (requests): v10-11 carry a topic id field, but an answer of those
    versions cannot name a topic without its name; Kafka refuses such a request as invalid."""
    frame = base64.b64decode("AAMACwAAAAcABGZ1enoAAgAAAARmdXp6AAIAAAAAAAAAAAAAAAAAAAA=")
    with wire.connect(shared_broker.port) as sock:
        sock.sendall(wire.frame(frame))
        assert wire.wait_closed(sock) == b""
    assert "unexpected error" not in shared_broker.output()
    assert_still_serving(shared_broker)


def test_bad_request_leaves_other_open_connections_alone(shared_broker):
    with wire.connect(shared_broker.port) as bystander, wire.connect(shared_broker.port) as culprit:
        culprit.sendall(wire.request_frame(32000, 0, 9))
        assert wire.wait_closed(culprit) == b""

        bystander.sendall(wire.api_versions_request(2, 2))
        assert wire.parse_api_versions(wire.read_frame(bystander), 2).correlation_id == 2


@pytest.fixture(scope="module")
def small_request_broker(module_broker_factory):
    return module_broker_factory("socket.request.max.bytes=1000")


@pytest.mark.parametrize("size", [1001, 2**31 - 1, -1, -(2**31)])
def test_frame_size_beyond_limit_closes_connection(small_request_broker, size):
    with wire.connect(small_request_broker.port) as sock:
        sock.sendall(struct.pack(">i", size) + b"\x00" * 100)
        assert wire.wait_closed(sock) == b""

    assert_still_serving(small_request_broker)


def test_requests_before_an_oversized_frame_are_still_answered(small_request_broker):
    # Kafka reads one request at a time, so the size check of a frame cannot drop earlier answers.
    with wire.connect(small_request_broker.port) as sock:
        sock.sendall(wire.api_versions_request(1, 0) + wire.metadata_request(2, 1) + struct.pack(">i", 5000))
        assert wire.correlation_id_of(wire.read_frame(sock)) == 1
        assert wire.correlation_id_of(wire.read_frame(sock)) == 2
        assert wire.wait_closed(sock) == b""


def metadata_request_of_exact_size(correlation_id: int, payload_size: int) -> tuple[bytes, list[str]]:
    """A Metadata v4 request whose frame payload is exactly `payload_size` bytes."""
    names = [letter * 249 for letter in "abc"]  # 249 is Kafka's longest legal topic name
    base = len(wire.metadata_request(correlation_id, 4, names + [""])) - 4
    names.append("d" * (payload_size - base))
    request = wire.metadata_request(correlation_id, 4, names)
    assert len(request) - 4 == payload_size
    return request, names


def test_frame_of_exactly_the_limit_is_served(small_request_broker):
    request, names = metadata_request_of_exact_size(61, 1000)

    payload = wire.roundtrip(small_request_broker.port, request)

    correlation_id, response = wire.decode_with_kafka_python(MetadataResponse, payload, 4)
    assert correlation_id == 61
    assert sorted(t.name for t in response.topics) == sorted(names)
    assert {t.error_code for t in response.topics} == {UNKNOWN_TOPIC_OR_PARTITION}


# --- fuzz -------------------------------------------------------------------------------------


def random_frame(rng: random.Random, api_keys: list[int]) -> bytes:
    """One hostile frame: noise, plausible headers with random bodies, mutations, bad sizes."""
    kind = rng.randrange(7)
    if kind == 0:  # random bytes, correctly framed
        return wire.frame(rng.randbytes(rng.randrange(0, 300)))
    if kind == 1:  # a real header (maybe a real api key) with a random body
        api_key = rng.choice(api_keys + [rng.randrange(-(2**15), 2**15)])
        version = rng.choice([0, 1, 3, 9, 12, 13, 14, 99, -1])
        body = rng.randbytes(rng.randrange(0, 200))
        return wire.request_frame(api_key, version, rng.randrange(2**31), body, flexible=rng.random() < 0.5)
    if kind == 2:  # a valid request with a few bytes flipped or cut off
        valid = bytearray(
            rng.choice(
                [
                    wire.metadata_request(1, rng.randrange(14), ["topic-a", "topic-b"]),
                    wire.api_versions_request(2, rng.randrange(5)),
                    wire.describe_cluster_request(3, rng.randrange(3)),
                ]
            )
        )
        payload = valid[4:]
        for _ in range(rng.randrange(1, 4)):
            payload[rng.randrange(len(payload))] = rng.randrange(256)
        return wire.frame(bytes(payload[: rng.randrange(1, len(payload) + 1)]))
    if kind == 3:  # a negative or absurd size followed by noise
        size = rng.choice([-1, -(2**31), rng.randrange(-(2**31), 0), 2**31 - 1, 200 * 2**20])
        return struct.pack(">i", size) + rng.randbytes(rng.randrange(0, 64))
    if kind == 4:  # a frame whose size promises more than is sent
        return struct.pack(">i", rng.randrange(10, 100_000)) + rng.randbytes(rng.randrange(0, 10))
    if kind == 5:  # a well-formed request, so the connection also carries legitimate traffic
        return wire.metadata_request(rng.randrange(2**31), rng.randrange(14))
    return rng.randbytes(rng.randrange(1, 16))  # unframed noise


def valid_request(rng: random.Random) -> bytes:
    correlation_id = rng.randrange(2**31)
    return rng.choice(
        [
            wire.metadata_request(correlation_id, rng.randrange(14)),
            wire.api_versions_request(correlation_id, rng.randrange(5)),
            wire.describe_cluster_request(correlation_id, rng.randrange(3)),
        ]
    )


def fuzz_one_connection(port: int, seed: int, api_keys: list[int]) -> int:
    """Send 0-3 valid requests, then 1-5 hostile frames, then close our side; return frames sent.

    The valid prefix puts the hostile frames at varied points of a connection's life.
    """
    rng = random.Random(seed)
    frames = [valid_request(rng) for _ in range(rng.randrange(0, 4))]
    frames += [random_frame(rng, api_keys) for _ in range(rng.randrange(1, 6))]
    with wire.connect(port) as sock:
        try:
            if rng.random() < 0.5:
                sock.sendall(b"".join(frames))
            else:
                for data in frames:
                    sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            return len(frames)  # the broker already closed the connection: fine
        # The broker must close a connection whose client has gone, whatever state it was in.
        wire.wait_closed(sock, timeout=10)
    return len(frames)


@pytest.mark.parametrize("seed", FUZZ_SEEDS)
def test_fuzzed_frames_never_take_the_broker_down(broker_factory, seed):
    broker = broker_factory()
    api_keys = sorted(api_versions(broker.port, 0).api_keys)
    connection_seeds = random.Random(seed).sample(range(2**32), FUZZ_CONNECTIONS)

    with ThreadPoolExecutor(max_workers=8) as pool:
        frames_sent = sum(pool.map(lambda s: fuzz_one_connection(broker.port, s, api_keys), connection_seeds))

    assert frames_sent >= 2 * FUZZ_CONNECTIONS
    assert_still_serving(broker)
    assert "Traceback" not in broker.output()


# --- shutdown and command line ----------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_the_broker_cleanly(broker, sig):
    assert broker.stop(sig, timeout=5) == 0
    assert "Traceback" not in broker.output()


def test_requests_in_flight_at_sigterm_are_answered_or_cleanly_cut(broker):
    correlation_ids = list(range(500, 520))
    with wire.connect(broker.port) as sock:
        sock.sendall(b"".join(wire.metadata_request(c, 12) for c in correlation_ids))
        broker.send_signal(signal.SIGTERM)
        answered = []
        # Each answer must be whole; a close is only acceptable between two answers.
        while (payload := wire.read_frame_or_none(sock)) is not None:
            received_id, _ = wire.decode_with_kafka_python(MetadataResponse, payload, 12)
            answered.append(received_id)

    assert answered == correlation_ids[: len(answered)]
    assert broker.wait(timeout=5) == 0  # one SIGTERM only: a second one would be a different test


@pytest.mark.parametrize("crash", [False, True], ids=["sigterm", "kill-9"])
def test_restart_keeps_the_cluster_id(broker, crash):
    cluster_id = metadata(broker.port, 12).cluster_id
    if crash:
        broker.kill()
    broker.restart()

    after = metadata(broker.port, 12)
    assert after.cluster_id == cluster_id
    assert [(b.node_id, b.port) for b in after.brokers] == [(0, broker.port)]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kbroker", *args], capture_output=True, text=True, timeout=30
    )


def test_version_flag_prints_the_package_version():
    completed = run_cli("--version")
    assert completed.returncode == 0, completed.stderr
    assert importlib.metadata.version("kbroker") in completed.stdout + completed.stderr


def test_help_flag_documents_override():
    completed = run_cli("--help")
    assert completed.returncode == 0, completed.stderr
    assert "--override" in completed.stdout
