"""Apache Kafka 4.4 itself, from the Maven jars under compat-tests/java/kafka/target/lib: the
reference broker of the differential tests and of `scripts/bench --against kafka`, and Kafka's
command-line tools run as its bin/*.sh scripts run them (`java -cp <jars> <main class>`).

    kafka = ApacheKafkaProcess(tmp_path).start()   # single-node KRaft, returns once it answers
    run_kafka_tool("kafka-topics", "--bootstrap-server", kafka.bootstrap, "--list")
    kafka.stop()                                   # SIGTERM, then SIGKILL to its process group

    kafka = ApacheKafkaProcess(tmp_path, sasl_ssl=True).start()
    Producer(kafka.sasl_ssl.client_config())       # SASL_SSL, SCRAM-SHA-512, the test CA trusted

With `sasl_ssl=True` it also has a SASL_SSL listener (SaslSslListener): a PKCS12 key store issued
by kbroker.testing.tls's test CA, SCRAM-SHA-512 the one mechanism, and one SCRAM user that
`kafka-storage format --add-scram` writes into the bootstrap metadata (KIP-900), so it exists from
the first start; readiness, the controller and the inter-broker listener stay PLAINTEXT.

`python -m kbroker.testing.apache_kafka PORT DIR [--sasl-ssl-port N --keystore P12 ...]` formats
DIR and execs into the broker in the foreground (scripts/bench's `--against kafka` runs that, so
the pid it measures is the JVM's; with `--sasl-ssl` it passes the SASL_SSL listener's options).
scripts/test fetches the jars with Maven (compat-tests/java/kafka/pom.xml); where java or the
jars are missing, `apache_kafka_unavailable_reason()` says why, for a skip.
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

from kbroker.testing import wire
from kbroker.testing.processes import free_port, start_failure, start_session_process, terminate_then_kill

KAFKA_VERSION = "4.4.0"
KAFKA_DIR = Path(__file__).resolve().parents[2] / "compat-tests" / "java" / "kafka"
KAFKA_LIB = KAFKA_DIR / "target" / "lib"
LOG4J_CONFIG = KAFKA_DIR / "log4j2.properties"
SERVER_HEAP = "1G"  # Kafka's kafka-server-start.sh default
TOOL_HEAP = "256m"  # kafka-run-class.sh's default for the tools
START_TIMEOUT = 90.0
TOOL_TIMEOUT = 120.0

# The main classes Kafka 4.4's bin/*.sh scripts run (checked against the jars).
TOOL_CLASSES = {
    "kafka-topics": "org.apache.kafka.tools.TopicCommand",
    "kafka-consumer-groups": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
    "kafka-configs": "org.apache.kafka.tools.ConfigCommand",
    "kafka-console-producer": "org.apache.kafka.tools.ConsoleProducer",
    "kafka-console-consumer": "org.apache.kafka.tools.consumer.ConsoleConsumer",
    "kafka-get-offsets": "org.apache.kafka.tools.GetOffsetShell",
    "kafka-delete-records": "org.apache.kafka.tools.DeleteRecordsCommand",
    "kafka-leader-election": "org.apache.kafka.tools.LeaderElectionCommand",
    "kafka-reassign-partitions": "org.apache.kafka.tools.reassign.ReassignPartitionsCommand",
    "kafka-log-dirs": "org.apache.kafka.tools.LogDirsCommand",
    "kafka-producer-perf-test": "org.apache.kafka.tools.ProducerPerformance",
    "kafka-consumer-perf-test": "org.apache.kafka.tools.ConsumerPerformance",
    "kafka-transactions": "org.apache.kafka.tools.TransactionsCommand",
    "kafka-acls": "org.apache.kafka.tools.AclCommand",
    "kafka-dump-log": "org.apache.kafka.tools.DumpLogSegments",
    "kafka-storage": "kafka.tools.StorageTool",
}


def apache_kafka_unavailable_reason() -> str | None:
    """Why Kafka's jars cannot run here (for pytest.skip), or None when they can."""
    if shutil.which("java") is None:
        return "java is not installed (Java 17 runs Apache Kafka 4.4)"
    if not (KAFKA_LIB / f"kafka_2.13-{KAFKA_VERSION}.jar").exists():
        return f"Apache Kafka {KAFKA_VERSION}'s jars are not in {KAFKA_LIB} (scripts/test fetches them with Maven)"
    return None


def java_argv(main_class: str, args: list[str] | tuple[str, ...], *, heap: str = TOOL_HEAP,
              quick_start: bool = True) -> list[str]:
    """The java command running `main_class` over Kafka's jars. `quick_start` trades peak speed
    for start-up time (C1 only, serial GC): right for a CLI run that lasts a second or two, wrong
    for a broker or a benchmark."""
    tuning = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"] if quick_start else ["-XX:+UseG1GC"]
    return [
        "java", f"-Xmx{heap}", *tuning, "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
        "-cp", f"{KAFKA_LIB}/*", main_class, *args,
    ]  # fmt: skip


def run_kafka_tool(tool: str, *args: str, input_text: str | None = None, timeout: float = TOOL_TIMEOUT,
                   quick_start: bool = True, heap: str = TOOL_HEAP) -> subprocess.CompletedProcess:
    """Run one of Kafka's tools by its script name (`kafka-topics`), output captured as text.
    The exit code is the caller's to judge: error paths are part of what tests compare."""
    argv = java_argv(TOOL_CLASSES[tool], args, heap=heap, quick_start=quick_start)
    try:
        return subprocess.run(argv, capture_output=True, text=True, input=input_text, timeout=timeout,
                              stdin=None if input_text is not None else subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"{tool} {' '.join(args)} timed out after {timeout}s\n"
                             f"stdout:\n{_text(exc.stdout)}\nstderr:\n{_text(exc.stderr)}") from None


def _text(output: bytes | str | None) -> str:
    return output.decode(errors="replace") if isinstance(output, bytes) else output or ""


def random_cluster_id() -> str:
    """A cluster id as `kafka-storage random-uuid` prints it: 16 random bytes, URL-safe base64,
    never starting with '-' (Kafka's Uuid.randomUuid draws again: a command line would read it
    as an option)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


SCRAM_LOGIN_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"


@dataclass(frozen=True)
class SaslSslListener:
    """A SASL_SSL listener for clients, SCRAM its one mechanism, and the one user who may log in.

    The broker needs the port, the PKCS12 key store and the user; `ca_pem` is what its clients
    trust (None where only the broker's side is known, as in `main`'s options)."""

    port: int
    keystore: Path
    store_password: str
    user: str
    password: str
    mechanism: str = "SCRAM-SHA-512"
    ca_pem: Path | None = None
    host: str = "127.0.0.1"

    @classmethod
    def issued(cls, pki_dir: Path, user: str, password: str, port: int | None = None) -> SaslSslListener:
        """A listener whose certificate kbroker.testing.tls's test CA issues in `pki_dir` (made
        there now: never committed keys)."""
        from kbroker.testing.tls import STORE_PASSWORD, CertificateAuthority  # cryptography: only when asked

        ca = CertificateAuthority(pki_dir)
        return cls(port or free_port(), ca.issue("broker").pkcs12, STORE_PASSWORD, user, password,
                   ca_pem=ca.cert_pem)

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def properties(self) -> list[str]:
        """Kafka's settings of the listener (named SASL_SSL, so the protocol map maps it to itself):
        the server side of SCRAM needs no login of its own, only the module."""
        prefix = "listener.name.sasl_ssl."
        return [f"sasl.enabled.mechanisms={self.mechanism}",
                f"{prefix}{self.mechanism.lower()}.sasl.jaas.config={SCRAM_LOGIN_MODULE} required;",
                f"{prefix}ssl.keystore.type=PKCS12", f"{prefix}ssl.keystore.location={self.keystore}",
                f"{prefix}ssl.keystore.password={self.store_password}"]

    def scram_credential(self) -> str:
        """`kafka-storage format --add-scram`'s argument (KIP-900; 4,096 iterations by default)."""
        return f"{self.mechanism}=[name={self.user},password={self.password}]"

    def client_config(self) -> dict[str, str]:
        """librdkafka's (confluent-kafka's) settings to log in as the user."""
        assert self.ca_pem is not None, "a client needs the CA that issued the listener's certificate"
        return {"bootstrap.servers": self.bootstrap, "security.protocol": "SASL_SSL",
                "ssl.ca.location": str(self.ca_pem), "sasl.mechanism": self.mechanism,
                "sasl.username": self.user, "sasl.password": self.password}

    def options(self) -> list[str]:
        """The listener as `python -m kbroker.testing.apache_kafka`'s options (see `main`)."""
        return ["--sasl-ssl-port", str(self.port), "--keystore", str(self.keystore),
                "--store-password", self.store_password, "--scram-user", self.user,
                "--scram-password", self.password, "--mechanism", self.mechanism]


def server_properties(port: int, controller_port: int, log_dir: Path, host: str = "127.0.0.1",
                      sasl_ssl: SaslSslListener | None = None) -> str:
    """A single-node KRaft broker and controller, its internal topics at replication factor 1 and
    no initial rebalance delay: the settings kbroker's single-node mode has by default. With
    `sasl_ssl`, clients may also connect to that listener; brokers and controllers still speak
    PLAINTEXT."""
    clients = [f"PLAINTEXT://{host}:{port}"] + ([f"SASL_SSL://{host}:{sasl_ssl.port}"] if sasl_ssl else [])
    protocols = ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"] + (["SASL_SSL:SASL_SSL"] if sasl_ssl else [])
    return "\n".join([
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.bootstrap.servers={host}:{controller_port}",
        f"listeners={','.join(clients)},CONTROLLER://{host}:{controller_port}",
        f"advertised.listeners={','.join(clients)}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        f"listener.security.protocol.map={','.join(protocols)}",
        *(sasl_ssl.properties() if sasl_ssl else []),
        f"log.dirs={log_dir}",
        "num.partitions=1",
        "offsets.topic.replication.factor=1",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        "group.initial.rebalance.delay.ms=0",
        "",
    ])  # fmt: skip


def prepare_server(workdir: Path, port: int, controller_port: int | None = None, host: str = "127.0.0.1",
                   sasl_ssl: SaslSslListener | None = None) -> list[str]:
    """Write server.properties into `workdir`, format its log dir (`kafka-storage format
    --standalone`, with `sasl_ssl`'s SCRAM user added) unless already formatted, and return the
    java command that serves it."""
    workdir = workdir.resolve()
    log_dir = workdir / "data"
    config = workdir / "server.properties"
    if not config.exists():
        workdir.mkdir(parents=True, exist_ok=True)
        config.write_text(server_properties(port, controller_port or free_port(), log_dir, host, sasl_ssl))
    if not (log_dir / "meta.properties").exists():
        scram = ["--add-scram", sasl_ssl.scram_credential()] if sasl_ssl else []
        argv = java_argv(TOOL_CLASSES["kafka-storage"],
                         ["format", "-t", random_cluster_id(), "-c", str(config), "--standalone", *scram])
        formatted = subprocess.run(argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT, check=False)
        if formatted.returncode != 0:
            raise RuntimeError(f"kafka-storage format failed:\n{formatted.stdout}{formatted.stderr}")
    return java_argv("kafka.Kafka", [str(config)], heap=SERVER_HEAP, quick_start=False)


SCRAM_USER, SCRAM_PASSWORD = "alice", "alice-secret"


class ApacheKafkaProcess:
    """Apache Kafka 4.4, one KRaft node (broker and controller) on a free 127.0.0.1 port, in its
    own process group, its data and output under `workdir`; with `sasl_ssl`, a SASL_SSL listener
    too (`self.sasl_ssl`, its certificates under workdir/pki) where SCRAM_USER logs in."""

    def __init__(self, workdir: Path, *, port: int | None = None, sasl_ssl: bool = False) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.output_path = workdir / "kafka.out"
        self.proc: subprocess.Popen | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        self.sasl_ssl = SaslSslListener.issued(workdir / "pki", SCRAM_USER, SCRAM_PASSWORD) if sasl_ssl else None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_dir(self) -> Path:
        return self.workdir.resolve() / "data"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "Apache Kafka was never started"
        return self.proc.pid

    def start(self, timeout: float = START_TIMEOUT) -> ApacheKafkaProcess:
        """Format (first time), start, and wait until it answers ApiVersions on its listener, which
        KRaft opens to requests only once the broker has caught up with its metadata. A port
        taken between free_port() and the bind is drawn again, on a fresh log dir."""
        for attempt in range(3):
            argv = prepare_server(self.workdir, self.port, sasl_ssl=self.sasl_ssl)
            self.proc = start_session_process(argv, self.output_path, self.workdir)
            failure = start_failure(self.proc, self._answers, "Apache Kafka", "ApiVersions", timeout,
                                    self.output_path, self.stop)
            if failure is None:
                return self
            if "Address already in use" not in failure or attempt == 2:
                raise AssertionError(failure)
            shutil.rmtree(self.log_dir, ignore_errors=True)
            (self.workdir / "server.properties").unlink()
            self.port = free_port()
            if self.sasl_ssl is not None:  # either port may have been the one taken
                self.sasl_ssl = replace(self.sasl_ssl, port=free_port())
        raise AssertionError("unreachable")

    def _answers(self) -> bool:
        try:
            payload = wire.roundtrip(self.port, wire.api_versions_request(correlation_id=7), timeout=2.0)
        except (OSError, wire.ConnectionClosed):
            return False
        return wire.correlation_id_of(payload) == 7

    def stop(self) -> None:
        """SIGTERM (a controlled shutdown), then SIGKILL to the process group after 30 s."""
        terminate_then_kill(self.proc, 30)


def parse_main_args(args: list[str]) -> tuple[int, Path, SaslSslListener | None, list[str]]:
    """PORT DIR, the SASL_SSL listener when --sasl-ssl-port is given (SaslSslListener.options),
    and the --override KEY=VALUE settings for kafka.Kafka's own --override."""
    parser = argparse.ArgumentParser(prog="python -m kbroker.testing.apache_kafka",
                                     description="Format DIR and exec into Apache Kafka, one KRaft node.")
    parser.add_argument("port", type=int, help="the PLAINTEXT listener's port")
    parser.add_argument("dir", type=Path, help="its work directory (server.properties, data/)")
    parser.add_argument("--sasl-ssl-port", type=int, help="also a SASL_SSL listener on this port")
    parser.add_argument("--keystore", type=Path, help="the SASL_SSL listener's PKCS12 key store")
    parser.add_argument("--store-password", help="the key store's password")
    parser.add_argument("--scram-user", help="the SCRAM user kafka-storage format adds")
    parser.add_argument("--scram-password", help="its password")
    parser.add_argument("--mechanism", default="SCRAM-SHA-512", choices=("SCRAM-SHA-256", "SCRAM-SHA-512"))
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="a broker setting over server.properties (kafka.Kafka's --override); may be repeated")
    options = parser.parse_args(args)
    if options.sasl_ssl_port is None:
        return options.port, options.dir, None, options.override
    needed = ("keystore", "store_password", "scram_user", "scram_password")
    if missing := [name for name in needed if getattr(options, name) is None]:
        parser.error(f"--sasl-ssl-port also needs --{', --'.join(name.replace('_', '-') for name in missing)}")
    listener = SaslSslListener(options.sasl_ssl_port, options.keystore.resolve(), options.store_password,
                               options.scram_user, options.scram_password, options.mechanism)
    return options.port, options.dir, listener, options.override


def main(args: list[str]) -> int:
    """`python -m kbroker.testing.apache_kafka PORT DIR [SASL_SSL options] [--override KEY=VALUE]...`:
    format DIR, exec into Apache Kafka."""
    port, workdir, sasl_ssl, overrides = parse_main_args(args)
    reason = apache_kafka_unavailable_reason()
    if reason:
        print(f"apache_kafka: {reason}", file=sys.stderr)
        return 3
    argv = prepare_server(workdir, port, sasl_ssl=sasl_ssl)
    argv += [arg for setting in overrides for arg in ("--override", setting)]
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
