"""Apache Kafka 4.4 itself, from the Maven jars under compat-tests/java/kafka/target/lib: the
reference broker of the differential tests and of `scripts/bench --against kafka`, and Kafka's
command-line tools run as its bin/*.sh scripts run them (`java -cp <jars> <main class>`).

    kafka = ApacheKafkaProcess(tmp_path).start()   # single-node KRaft, returns once it answers
    run_kafka_tool("kafka-topics", "--bootstrap-server", kafka.bootstrap, "--list")
    kafka.stop()                                   # SIGTERM, then SIGKILL to its process group

`python -m kbroker.testing.apache_kafka PORT DIR` formats DIR and execs into the broker in the
foreground (scripts/bench's `--against kafka` runs that, so the pid it measures is the JVM's).
scripts/test fetches the jars with Maven (compat-tests/java/kafka/pom.xml); where java or the
jars are missing, `apache_kafka_unavailable_reason()` says why, for a skip.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
import uuid
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


def server_properties(port: int, controller_port: int, log_dir: Path, host: str = "127.0.0.1") -> str:
    """A single-node KRaft broker and controller, its internal topics at replication factor 1 and
    no initial rebalance delay: the settings kbroker's single-node mode has by default."""
    return "\n".join([
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.bootstrap.servers={host}:{controller_port}",
        f"listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}",
        f"advertised.listeners=PLAINTEXT://{host}:{port}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
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


def prepare_server(workdir: Path, port: int, controller_port: int | None = None, host: str = "127.0.0.1") -> list[str]:
    """Write server.properties into `workdir`, format its log dir (`kafka-storage format
    --standalone`) unless already formatted, and return the java command that serves it."""
    workdir = workdir.resolve()
    log_dir = workdir / "data"
    config = workdir / "server.properties"
    if not config.exists():
        workdir.mkdir(parents=True, exist_ok=True)
        config.write_text(server_properties(port, controller_port or free_port(), log_dir, host))
    if not (log_dir / "meta.properties").exists():
        argv = java_argv(TOOL_CLASSES["kafka-storage"],
                         ["format", "-t", random_cluster_id(), "-c", str(config), "--standalone"])
        formatted = subprocess.run(argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT, check=False)
        if formatted.returncode != 0:
            raise RuntimeError(f"kafka-storage format failed:\n{formatted.stdout}{formatted.stderr}")
    return java_argv("kafka.Kafka", [str(config)], heap=SERVER_HEAP, quick_start=False)


class ApacheKafkaProcess:
    """Apache Kafka 4.4, one KRaft node (broker and controller) on a free 127.0.0.1 port, in its
    own process group, its data and output under `workdir`."""

    def __init__(self, workdir: Path, *, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.output_path = workdir / "kafka.out"
        self.proc: subprocess.Popen | None = None
        workdir.mkdir(parents=True, exist_ok=True)

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
            argv = prepare_server(self.workdir, self.port)
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


def main(args: list[str]) -> int:
    """`python -m kbroker.testing.apache_kafka PORT DIR`: format DIR, exec into Apache Kafka."""
    if len(args) != 2 or not args[0].isdigit():
        print("usage: python -m kbroker.testing.apache_kafka PORT DIR", file=sys.stderr)
        return 2
    reason = apache_kafka_unavailable_reason()
    if reason:
        print(f"apache_kafka: {reason}", file=sys.stderr)
        return 3
    argv = prepare_server(Path(args[1]), int(args[0]))
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
