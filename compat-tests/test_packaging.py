"""The package and the image as a user gets them.

- `python -m build --wheel` makes a wheel holding the protocol schemas, the web console's assets,
  the licence and the entry points (the `kbroker` command, the pytest plugin); installed on its own into a fresh directory,
  it starts a broker that clients reach, with no bytecode step and no source checkout.
- The image's pinned requirements cover every runtime dependency of pyproject.toml.
- The docker-compose files' kbroker services carry settings kbroker accepts, and the healthcheck
  asks the configured listener.
- A testcontainers module: it needs a Docker engine, and skips, saying so, where there is none.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from kbroker.config import KafkaConfig
from kbroker.healthcheck import configured_address, configured_protocol
from kbroker.healthcheck import main as healthcheck
from kbroker.testing import wire
from kbroker.testing.processes import free_port
from kbroker.testing.waiting import eventually

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    completed = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out),
                                str(ROOT)], capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    [built] = out.glob("kbroker-*.whl")
    return built


def test_wheel_holds_schemas_licence_and_entry_points(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = next(archive.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt"))

    schemas = [n for n in names if n.startswith("kbroker/protocol/schemas/kafka/") and n.endswith(".json")]
    assert len(schemas) > 100
    assert "kbroker/protocol/schemas/kafka/NOTICE" in names
    # The web console's page: every asset in the package (no CDN).
    assert {f"kbroker/console/static/{asset}" for asset in ("index.html", "console.js", "console.css")} <= set(names)
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "kbroker = kbroker.__main__:main" in entry_points
    assert "kbroker = kbroker.testing.plugin" in entry_points
    assert not any(n.startswith(("tests/", "compat-tests/", "scripts/")) for n in names)


@pytest.mark.timeout(180)
def test_installed_wheel_runs_a_broker(wheel, tmp_path):
    target = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
                              str(target), str(wheel)], capture_output=True, text=True, timeout=120)
    assert install.returncode == 0, install.stderr
    port = free_port()
    # -P and a directory outside the checkout: nothing but the installed wheel can be imported as
    # kbroker (its dependencies come from this interpreter's environment).
    env = {**os.environ, "PYTHONPATH": str(target)}
    where = subprocess.run([sys.executable, "-P", "-c", "import kbroker; print(kbroker.__file__)"], env=env,
                           cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert where.stdout.strip().startswith(str(target)), where.stdout + where.stderr
    broker = subprocess.Popen([sys.executable, "-P", "-m", "kbroker", "--override",
                               f"listeners=PLAINTEXT://127.0.0.1:{port}", "--override",
                               f"log.dirs={tmp_path / 'data'}"], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def answers() -> bool:
            try:
                wire.roundtrip(port, wire.api_versions_request(1), timeout=2)
            except OSError:
                return False
            return True

        eventually(answers, what="the wheel's broker to answer ApiVersions", timeout=60)
        assert healthcheck([f"127.0.0.1:{port}"]) == 0
    finally:
        broker.terminate()
        output, _ = broker.communicate(timeout=30)
    assert broker.returncode == 0, output
    assert "started in" in output


def test_image_requirements_pin_every_runtime_dependency():
    pins = {}
    for line in (ROOT / "docker" / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            requirement = Requirement(line)
            [spec] = requirement.specifier
            assert spec.operator == "==", f"{line}: the image's dependencies are pinned"
            pins[canonicalize_name(requirement.name)] = spec.version
    project = PYPROJECT["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["fast"],
              *project["optional-dependencies"]["tools"], *project["optional-dependencies"]["metrics"],
              *project["optional-dependencies"]["console"]]

    for text in wanted:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not pinned in docker/requirements.txt"
        assert requirement.specifier.contains(pins[name]), (text, pins[name])


def compose_services(name: str) -> dict[str, dict]:
    return yaml.safe_load((ROOT / name).read_text())["services"]


@pytest.mark.parametrize("compose_file", ["docker-compose.yml", "docker-compose.cluster.yml"])
def test_compose_services_carry_settings_kbroker_accepts(compose_file, tmp_path):
    services = {name: s for name, s in compose_services(compose_file).items() if s.get("image", "").startswith("kbroker")}
    assert services

    for name, service in services.items():
        env = {key: str(value) for key, value in service["environment"].items()}
        env["KBROKER_LOG_DIRS"] = str(tmp_path / name)  # the volume's path does not exist here
        config = KafkaConfig.load(env=env)
        published = {int(p.split(":")[0]) for p in service["ports"]}
        advertised = env["KBROKER_ADVERTISED_LISTENERS"]

        assert any(f"localhost:{port}" in advertised for port in published), (name, advertised)
        assert configured_address(env["KBROKER_LISTENERS"]).startswith("127.0.0.1:")
        if "zookeeper" in compose_services(compose_file):
            assert config.get("zookeeper.connect") == "zookeeper:2181"
            assert env["KBROKER_INTER_BROKER_LISTENER_NAME"] == "INTERNAL"


def test_healthcheck_follows_the_configured_listener():
    assert configured_address(None) == "127.0.0.1:9092"
    assert configured_address("PLAINTEXT://0.0.0.0:29092") == "127.0.0.1:29092"
    assert configured_address("INTERNAL://:19092,EXTERNAL://0.0.0.0:9092") == "127.0.0.1:19092"
    assert configured_address("PLAINTEXT://[::1]:9093") == "::1:9093"
    assert configured_address("PLAINTEXT://broker.example:9094") == "broker.example:9094"
    assert configured_protocol(None, None) == "PLAINTEXT"
    assert configured_protocol("SASL_SSL://:9093,PLAINTEXT://:9092", None) == "SASL_SSL"
    assert configured_protocol("external://:9093", "INTERNAL:PLAINTEXT,EXTERNAL:SSL") == "SSL"


def test_healthcheck_reports_a_silent_port():
    assert healthcheck([f"127.0.0.1:{free_port()}"]) == 1


def docker_unavailable_reason() -> str | None:
    try:
        import docker

        docker.from_env(timeout=5).ping()
    except Exception as exc:  # no socket, no daemon, no permission: all mean no engine here
        return f"no Docker engine reachable ({type(exc).__name__}: {exc})"
    return None


def test_testcontainers_module():
    reason = docker_unavailable_reason()
    if reason:
        print(f"SKIP test_testcontainers_module: {reason}")
        pytest.skip(reason)
    from confluent_kafka.admin import AdminClient

    from kbroker.testcontainers import KBrokerContainer

    with KBrokerContainer() as kafka:
        metadata = AdminClient({"bootstrap.servers": kafka.get_bootstrap_server()}).list_topics(timeout=30)
        assert len(metadata.brokers) == 1
