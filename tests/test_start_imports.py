"""What a broker imports before it answers: not the record, segment and log code.

A broker starting on an empty data directory needs the server, the handlers and the metadata
code to answer its first requests; the log stack (UnifiedLog, segments, indexes, records, the
validator) is imported with the first log. That keeps start-up to first Metadata short (issue 15
measures it with scripts/bench's `start` scenario); this test catches an eager import creeping
back in, which no timing would show reliably.
"""

from __future__ import annotations

import json
import subprocess
import sys

LOADED_WITH_THE_FIRST_LOG = {
    "kbroker.log.unified_log",
    "kbroker.log.segment",
    "kbroker.log.log_segments",
    "kbroker.log.log_loader",
    "kbroker.log.index",
    "kbroker.log.records",
    "kbroker.log.legacy_records",
    "kbroker.log.validator",
    "kbroker.log.producer_state",
    "kbroker.log.leader_epoch",
    "kbroker.log.crc",
    "kbroker.log.log_cleaner",
}

_LIST_MODULES = """
import json, sys
import kbroker.cli, kbroker.server
from kbroker.api.handlers import load_handlers
load_handlers()
assert "prometheus_client" not in sys.modules
assert "aiohttp" not in sys.modules and "confluent_kafka" not in sys.modules
print(json.dumps(sorted(sys.modules)))
"""


def test_start_up_imports_no_log_code() -> None:
    out = subprocess.run([sys.executable, "-c", _LIST_MODULES], capture_output=True, text=True, check=True).stdout
    every_module = set(json.loads(out))
    loaded = {m for m in every_module if m.startswith("kbroker")}
    assert "kbroker.server" in loaded
    # Handlers are imported by their API's first request; the controller's local deliveries
    # (LeaderAndIsr, UpdateMetadata, StopReplica) are the only ones a start needs.
    assert "kbroker.api.handlers.produce" not in loaded and "kbroker.api.handlers.join_group" not in loaded
    # Topic administration with its first request; connections to other brokers in cluster mode.
    assert "kbroker.metadata.admin_manager" not in loaded and "kbroker.network.network_client" not in loaded
    assert loaded & LOADED_WITH_THE_FIRST_LOG == set()
    # TLS contexts and certificate names (and `cryptography`) only with an SSL listener.
    assert not {m for m in loaded if m.startswith("kbroker.security.ssl")}
    # The subcommands (kbroker topics, ...) and their client library load only when one is run.
    assert not {m for m in loaded if m.startswith("kbroker.tools")}
    # The metrics endpoint and prometheus_client load only with metrics.listener set.
    assert "kbroker.metrics.exporter" not in loaded and "kbroker.broker_metrics" not in loaded
    # The web console (aiohttp, confluent-kafka) loads only with console.listener set.
    assert not {m for m in loaded if m.startswith("kbroker.console")}
    started = set(json.loads(subprocess.run(
        [sys.executable, "-c", _PARSE_COMMAND_LINE], capture_output=True, text=True, check=True).stdout))
    assert "confluent_kafka" not in started and "cryptography" not in started and "aiohttp" not in started
    # argparse's HelpFormatter would import shutil (with bz2, lzma and fnmatch) for the width.
    assert "shutil" not in started
    # ipaddress (ip quotas) and random (segment.jitter.ms) load when a setting needs them.
    assert not {"ipaddress", "random"} & every_module


_PARSE_COMMAND_LINE = """
import json, sys, kbroker.cli
kbroker.cli.parse_args(["--override", "log.dirs=/nonexistent", "--log-level", "INFO"])
print(json.dumps(sorted(sys.modules)))
"""


_FIRST_REQUEST = """
import asyncio, sys
from types import SimpleNamespace
from kbroker.api.handlers import load_handlers
from kbroker.protocol.api_keys import ApiKey

handlers = load_handlers()
assert "kbroker.api.handlers.api_versions" not in sys.modules
stand_in = handlers[ApiKey.API_VERSIONS].handle
ctx = SimpleNamespace(api_version=0, services=SimpleNamespace(config={"group.coordinator.rebalance.protocols": ["classic"]}))
response = asyncio.run(stand_in(ctx, {}))
module = sys.modules["kbroker.api.handlers.api_versions"]
assert handlers[ApiKey.API_VERSIONS].handle is module.handle  # later requests skip the stand-in
advertised = {k["api_key"]: (k["min_version"], k["max_version"]) for k in response["api_keys"]}
assert advertised[ApiKey.METADATA] == (0, 13) and ApiKey.CONSUMER_GROUP_HEARTBEAT not in advertised
assert asyncio.run(stand_in(ctx, {})) == response  # a stand-in held by a request in flight still serves
assert "kbroker.api.handlers.produce" not in sys.modules
"""


def test_a_handler_module_is_imported_by_its_first_request() -> None:
    subprocess.run([sys.executable, "-c", _FIRST_REQUEST], check=True)


_IDLE_MAINTENANCE = """
import json, sys
from kbroker.log.log_manager import LogManager
from kbroker.log.config import LogConfig

manager = LogManager([sys.argv[1]], cluster_id="idle", broker_id=0, default_config=LogConfig())
manager.run_retention()
manager.checkpoint()
manager.flush_if_due()
manager.start_cleaner(lambda name: None)
print(json.dumps(sorted(sys.modules)))
"""


def test_log_maintenance_without_logs_loads_no_log_code(tmp_path) -> None:
    """The server's maintenance task (every second) on a broker that has no log yet."""
    out = subprocess.run([sys.executable, "-c", _IDLE_MAINTENANCE, str(tmp_path)], capture_output=True, text=True,
                         check=True).stdout
    assert set(json.loads(out)) & LOADED_WITH_THE_FIRST_LOG == set()


_LISTEN = """
import sys
from kbroker.network.socket_server import _listen_sockets

for sock in _listen_sockets("127.0.0.1", 0, 5) + _listen_sockets("localhost", 0, 5):
    sock.close()
print("encodings.idna" in sys.modules, "unicodedata" in sys.modules)
"""


def test_listening_on_an_ascii_host_loads_no_idna_codec() -> None:
    """getaddrinfo encodes a str host with the "idna" codec, whose import (with unicodedata) costs
    a start-up about 3 ms and 0.7 MiB; an ASCII host goes to it as bytes."""
    out = subprocess.run([sys.executable, "-c", _LISTEN], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


_DATACLASS_DOCS = """
import dataclasses, json, sys
import kbroker.cli, kbroker.server
from kbroker.api.handlers import load_handlers
load_handlers()
undocumented = sorted(
    f"{name}.{cls.__qualname__}"
    for name, module in list(sys.modules.items()) if name.startswith("kbroker")
    for cls in vars(module).values()
    if isinstance(cls, type) and cls.__module__ == name and dataclasses.is_dataclass(cls)
    and (cls.__doc__ or "").startswith(cls.__name__ + "(")
)
print(json.dumps(undocumented))
"""


def test_start_up_dataclasses_have_docstrings() -> None:
    """A @dataclass without a docstring gets one made from inspect.signature when it is created
    (~0.2-0.5M instructions each on Python 3.11): the classes a start creates carry their own."""
    out = subprocess.run([sys.executable, "-c", _DATACLASS_DOCS], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []


def test_a_route_calls_the_handler_module_itself_not_the_stand_in() -> None:
    """KafkaApis keeps, per API and version, the handler module's own `handle`: later requests
    pay for no stand-in coroutine in front of it (the module is imported by the first request)."""
    import asyncio
    import importlib
    from types import SimpleNamespace

    from kbroker.api.kafka_apis import KafkaApis
    from kbroker.protocol.api_keys import ApiKey
    from kbroker.security.client_quota_manager import ClientQuotaManagers
    from kbroker.testing.wire import api_versions_request, correlation_id_of

    services = SimpleNamespace(sasl_listeners={}, authorizer=None, client_quotas=ClientQuotaManagers(),
                               config={"group.coordinator.rebalance.protocols": ["classic"]})
    apis = KafkaApis(services)  # type: ignore[arg-type]
    conn = SimpleNamespace(peer="10.0.0.9:4242", listener_name="PLAINTEXT", session=None, request_arrival=0.0)
    for correlation_id in (7, 8):
        chunks = asyncio.run(apis.process(conn, memoryview(api_versions_request(correlation_id, 3))[4:]))  # type: ignore[arg-type]
        assert correlation_id_of(b"".join(chunks)[4:]) == correlation_id
    module = importlib.import_module("kbroker.api.handlers.api_versions")
    assert apis._routes[(ApiKey.API_VERSIONS, 3)].handle is module.handle
    assert apis.handlers[ApiKey.API_VERSIONS].handle is module.handle
