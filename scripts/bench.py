#!/usr/bin/env python3
"""scripts/bench: issue 6's benchmark, run against kbroker (and optionally other brokers).

Starts kbroker on a fresh temporary data directory (or uses --bootstrap), runs the scenarios of
bench_scenarios.py --runs times with confluent-kafka as the load client in separate processes
(bench_client.py), alternating between brokers when --against is given (each scenario's samples
go A B, then B A on the next run, and so on, so neither target always goes first), and prints a
table (medians, with each target's min / median / max over its samples) and JSON lines. Before
each sample the page cache's dirty pages are written back (os.sync(), then a wait until
/proc/meminfo's Dirty + Writeback is under DIRTY_SETTLED_BYTES), so the writeback of one sample's
records does not land in the next one's time; every sample writes a topic of its own (named after
its run), on its broker's own data directory. The cluster scenarios then run --runs times against three kbroker processes
and a ZooKeeper (bench_cluster.py) when Debian's ZooKeeper is installed, and are reported as
skipped, with the reason, when it is not. Each run also measures the loopback TCP bandwidth, so
every throughput is reported as a fraction of it. Every measurement is verified (record counts, offsets, first and
last payloads); a failed one is reported and makes the exit code 1. Touches only its own
temporary directory and the processes it starts; never kbroker's code or other data.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import bench_metadata
from bench_broker import BENCH_BROKER_SETTINGS, BrokerSpec, RunningBroker, pinned, start_broker, stop_broker
from bench_cluster import (
    CLUSTER_SIZE,
    RunningCluster,
    start_cluster,
    stop_cluster,
    zookeeper_unavailable_reason,
)
from bench_connections import run_connections
from bench_partitions import compare_with_produce_1k, run_partitions
from bench_partitions import skip_reason as scenario_skip_reason
from bench_report import (
    detail_table,
    json_lines,
    loopback_summary,
    memory_summary,
    ratio_table,
    ratios,
    skipped_summary,
    summarize,
)
from bench_scenarios import E2E_INTERVAL_MS, SCENARIO_KEYS, SCENARIOS, Scenario
from bench_scenarios import select as select_scenarios

from kbroker.testing.apache_kafka import KAFKA_VERSION, apache_kafka_unavailable_reason

SCRIPTS = Path(__file__).resolve().parent
CLIENT = SCRIPTS / "bench_client.py"
CLIENT_ALONE = "client alone"  # the target name of the no-broker baseline
AGAINST_KAFKA = "kafka"  # --against kafka: Apache Kafka itself
SASL_SSL = "+sasl_ssl"  # --sasl-ssl: a broker's twin whose clients connect over SASL_SSL (kbroker+sasl_ssl, kafka+sasl_ssl)
CLUSTER = f"kbroker x{CLUSTER_SIZE}"
# --with-metrics: the metrics endpoint on a port of its own (nothing scrapes it during the run;
# what it costs the hot path is the counting, measured against the same broker without it).
METRICS_VARIANT = "kbroker+metrics:metrics.listener=http://127.0.0.1:0"  # the target name of the cluster scenarios
NOT_AGAINST = "--against does not apply: the other brokers have no ZooKeeper mode; this runs on kbroker only"
LOOPBACK_BYTES = 2_000_000_000
MIN_LOOPBACK_BYTES = 64 * 1024 * 1024
LOOPBACK_CHUNK = 4 * 1024 * 1024
IDLE_SETTLE_S = 1.0  # after the first Metadata answer, before reading idle RSS
CLIENT_SLACK_S = 60.0  # a client process gets its own timeout plus this before it is killed
# Before each sample: written-back dirty pages down to this much (other processes may keep writing,
# so not zero), waited for at most SETTLE_TIMEOUT_S (os.sync() has written back what was dirty
# when it was called; what stays dirty longer is someone else's, and is logged).
DIRTY_SETTLED_BYTES = 32 * 1024 * 1024
SETTLE_TIMEOUT_S = 15.0
SETTLE_POLL_S = 0.1


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ client processes


def client_command(spec: dict) -> list[str]:
    return [sys.executable, str(CLIENT), json.dumps(spec)]


def parse_client_output(stdout: str, stderr: str, returncode: int) -> dict:
    """The client's last stdout line is its JSON result; anything else is a failure to report."""
    lines = stdout.strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        tail = " | ".join(stderr.strip().splitlines()[-5:])
        return {"error": f"client exited with code {returncode} and no result: {tail}"}


def run_client(spec: dict) -> dict:
    try:
        done = subprocess.run(
            client_command(spec), capture_output=True, text=True, timeout=spec["timeout_s"] + CLIENT_SLACK_S
        )
    except subprocess.TimeoutExpired:
        return {"error": f"client {spec['mode']} did not finish within {spec['timeout_s'] + CLIENT_SLACK_S:.0f} s"}
    return parse_client_output(done.stdout, done.stderr, done.returncode)


def throughput_timeout_s(scenario: Scenario) -> float:
    """Generous: the scenario at 1 MB/s plus a minute, so only a stuck broker times out."""
    return 60.0 + scenario.value_bytes / 1e6


def base_spec(mode: str, scenario: Scenario, broker: RunningBroker | RunningCluster, topic: str) -> dict:
    return {
        "mode": mode,
        "bootstrap": broker.bootstrap,
        "topic": topic,
        "count": scenario.count,
        "size": scenario.size,
        "producer_config": scenario.producer_config,
        "consumer_config": scenario.consumer_config,
        "replication_factor": scenario.replication_factor,
        "topic_config": scenario.topic_config,
        "transaction_records": scenario.transaction_records,
        "broker_pids": broker.pids(),
        "broker_pid_groups": broker.pid_groups(),
        "client_config": broker.client_config,
        "cpus": list(broker.client_cpus),
        "timeout_s": throughput_timeout_s(scenario),
    }


def run_e2e(scenario: Scenario, broker: RunningBroker, topic: str) -> dict:
    """Consumer process first (it prints "ready" once fetching), then the paced producer."""
    spec = base_spec("e2e-consume", scenario, broker, topic)
    spec["interval_ms"] = E2E_INTERVAL_MS
    spec["timeout_s"] = 60.0 + scenario.count * E2E_INTERVAL_MS / 1000
    with tempfile.TemporaryFile("w+") as consumer_err:
        consumer = subprocess.Popen(client_command(spec), stdout=subprocess.PIPE, stderr=consumer_err, text=True)
        try:
            ready, _, _ = select.select([consumer.stdout], [], [], spec["timeout_s"])
            line = consumer.stdout.readline().strip() if ready else ""
            if line != "ready":
                consumer.kill()
                consumer.wait()
                consumer_err.seek(0)
                return parse_client_output(line, consumer_err.read(), consumer.returncode)
            produced = run_client({**spec, "mode": "e2e-produce"})
            rest = consumer.stdout.read()  # the consumer stops by itself: all records or its deadline
            consumer.wait(CLIENT_SLACK_S)
        finally:
            if consumer.poll() is None:
                consumer.kill()
                consumer.wait()
        consumer_err.seek(0)
        consumed = parse_client_output(rest, consumer_err.read(), consumer.returncode)
    if "error" in produced or "error" in consumed:
        return {"error": "; ".join(part["error"] for part in (produced, consumed) if "error" in part)}
    return {
        **{key: value for key, value in consumed.items() if key.startswith(("p", "max"))},
        "seconds": produced["seconds"],
        "broker_cpu_s": produced["broker_cpu_s"],
        "client_cpu_s": produced["client_cpu_s"] + consumed["client_cpu_s"],
    }


# ------------------------------------------------------------------------------ the page cache


def dirty_bytes() -> int | None:
    """Dirty + Writeback of /proc/meminfo in bytes (None where there is no /proc/meminfo)."""
    try:
        with open("/proc/meminfo") as meminfo:
            fields = dict(line.split(":", 1) for line in meminfo if ":" in line)
        return sum(int(fields[name].split()[0]) * 1024 for name in ("Dirty", "Writeback"))
    except (OSError, KeyError, ValueError):
        return None


def settle_page_cache() -> None:
    """Writes dirty pages back and waits until little is left, so that the kernel's writeback of
    what one sample wrote does not run during the next sample (it did: produce-1k's samples were
    bimodal, 530-730 MB/s and 220-330 MB/s, for every broker)."""
    os.sync()
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while (pending := dirty_bytes()) is not None and pending > DIRTY_SETTLED_BYTES:
        if time.monotonic() >= deadline:
            log(f"page cache: {pending / 1e6:,.0f} MB still dirty after {SETTLE_TIMEOUT_S:.0f} s; measuring anyway")
            return
        time.sleep(SETTLE_POLL_S)


# ------------------------------------------------------------------------------ one run of a scenario


class Datasets:
    """Topics already filled in this run, per broker, so consume reads what produce wrote."""

    def __init__(self) -> None:
        self.topics: dict[tuple[str, str], str] = {}

    def remember(self, broker: str, scenario: str, topic: str) -> None:
        self.topics[(broker, scenario)] = topic

    def topic_for(self, broker: str, scenario: str) -> str | None:
        return self.topics.get((broker, scenario))


def measure(
    scenario: Scenario, broker: RunningBroker | RunningCluster, topic_prefix: str, datasets: Datasets, by_key: dict[str, Scenario]
) -> dict:
    """One sample; a harness bug or a broken broker becomes this sample's error, not the end of the run."""
    try:
        settle_page_cache()
        return run_scenario(scenario, broker, topic_prefix, datasets, by_key)
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


def run_scenario(
    scenario: Scenario, broker: RunningBroker | RunningCluster, topic_prefix: str, datasets: Datasets, by_key: dict[str, Scenario]
) -> dict:
    topic = f"{topic_prefix}-{scenario.key}"
    if scenario.kind == "produce":
        sample = run_client(base_spec("produce", scenario, broker, topic))
        if "error" not in sample:
            datasets.remember(broker.name, scenario.key, topic)
    elif scenario.kind == "consume":
        sample = run_consume(scenario, broker, topic_prefix, datasets, by_key)
    elif scenario.kind == "idle":
        sample = run_client(base_spec("idle-connections", scenario, broker, topic))
    elif scenario.kind == "partitions":
        spec = {**base_spec("partitions", scenario, broker, topic), "client": scenario.client, "data_dir": broker.data_dir}
        sample = run_partitions(spec, parse_client_output)
    elif scenario.kind == "connections":
        sample = run_connections(scenario.count, broker.bootstrap, broker.pids(), topic)
    else:
        sample = run_e2e(scenario, broker, topic)
    if "error" in sample and (note := broker.exit_note()):
        sample["error"] += f" ({note})"
    return sample


def run_consume(
    scenario: Scenario, broker: RunningBroker | RunningCluster, topic_prefix: str, datasets: Datasets, by_key: dict[str, Scenario]
) -> dict:
    """Reads the records its produce scenario wrote in this run, filling a topic (untimed) if needed."""
    topic = datasets.topic_for(broker.name, scenario.dataset)
    if topic is None:
        source = replace(by_key[scenario.dataset], count=scenario.count)
        topic = f"{topic_prefix}-fill-{scenario.dataset}"
        filled = run_client(base_spec("produce", source, broker, topic))
        if "error" in filled:
            return {"error": f"filling {topic} failed: {filled['error']}"}
        datasets.remember(broker.name, scenario.dataset, topic)
        settle_page_cache()  # the fill's writeback is not the consumer's
    return run_client(base_spec("consume", scenario, broker, topic))


def target_names(scenario: Scenario, specs: list[BrokerSpec]) -> list[str]:
    if scenario.kind == "client":
        return [CLIENT_ALONE]
    if scenario.brokers > 1:
        return [CLUSTER]
    # A SASL_SSL broker runs what the load client connects to (produce, consume, e2e): the start
    # and the idle connections (raw ApiVersions) would measure its PLAINTEXT listener again.
    # The Java producers of partitions-1k-java speak PLAINTEXT only.
    return [spec.name for spec in specs if not (spec.sasl_ssl and (scenario.kind in ("start", "idle", "metadata", "connections")
                                                                    or scenario.client == "java"))]


def client_alone_spec(scenario: Scenario) -> dict:
    """The produce() loop with no broker reachable: the most the client itself can push."""
    return {
        "mode": "produce-loop",
        "topic": "bench-client-alone",
        "count": scenario.count,
        "size": scenario.size,
        "producer_config": scenario.producer_config,
        "broker_pids": [],
        "timeout_s": throughput_timeout_s(scenario),
    }


def measure_start(spec: BrokerSpec, work_dir: str) -> dict:
    """A throwaway broker on a fresh data directory, timed to its first Metadata answer; for
    kbroker, with its interpreter's floor measured next to it (measure_runtime_floor)."""
    try:
        broker = start_broker(spec, work_dir)
    except Exception as exc:
        return {"error": f"did not start: {exc}"}
    stop_broker(broker)
    sample = {"start_ms": broker.start_ms}
    if spec.command is None and spec.bootstrap is None:
        sample.update(measure_runtime_floor(spec.cpus))
    return sample


# What every kbroker process pays before a line of kbroker runs: the interpreter with the event
# loop's modules imported (asyncio pulls in ssl; uvloop when installed, as run_broker uses it).
# It prints its RSS once imported; the time to that line is the floor under "start ms", and the
# RSS the floor under the idle RSS (issue 15's targets: 50 ms, 20 MiB).
RUNTIME_FLOOR_PROGRAM = """
import asyncio, sys
try:
    import uvloop
except ImportError:
    pass
status = open('/proc/self/status').read()
sys.stdout.write(status.split('VmRSS:')[1].split()[0] + '\\n')
sys.stdout.flush()
"""


def measure_runtime_floor(cpus: tuple[int, ...]) -> dict:
    """kbroker's interpreter importing asyncio and uvloop, nothing else: ms from spawn to its
    output, and its RSS then (MiB), on the broker's CPUs."""
    with pinned(cpus):
        started = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-c", RUNTIME_FLOOR_PROGRAM], stdout=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()
        floor_ms = (time.perf_counter() - started) * 1000
    finally:
        child.wait(30)
    return {"floor_ms": floor_ms, "floor_rss_mib": int(line) / 1024}


def measure_own_broker(scenario: Scenario, spec: BrokerSpec, work_dir: str, prefix: str) -> dict:
    try:
        settle_page_cache()
        return bench_metadata.measure_metadata(scenario, spec, work_dir, prefix)
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


def measure_loopback(total_bytes: int) -> float:
    """MB/s of one TCP stream on 127.0.0.1 from a sender process to this one."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(30)
        spec = {"mode": "loopback-send", "port": server.getsockname()[1], "bytes": total_bytes}
        sender = subprocess.Popen(client_command(spec), stdout=subprocess.DEVNULL)
        try:
            conn, _ = server.accept()
            with conn:
                buffer = memoryview(bytearray(LOOPBACK_CHUNK))
                first = conn.recv_into(buffer)  # timing starts once bytes flow, so sender start-up is excluded
                started = time.perf_counter()
                received = 0
                while chunk := conn.recv_into(buffer):
                    received += chunk
                seconds = time.perf_counter() - started
        finally:
            sender.wait(30)
    if first + received != total_bytes:
        raise RuntimeError(f"loopback received {first + received} bytes of {total_bytes}")
    return received / seconds / 1e6


# ------------------------------------------------------------------------------ the whole benchmark


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/bench",
        description="Benchmark kbroker (issue 6's scenarios) with confluent-kafka as the load client.",
    )
    parser.add_argument("--bootstrap", help="use a broker already running at HOST:PORT instead of starting kbroker")
    parser.add_argument("--broker-pid", type=int, action="append", default=[], help="with --bootstrap: its pid, for RSS and CPU")
    parser.add_argument(
        "--against",
        action="append",
        default=[],
        metavar="COMMAND",
        help="another broker to run the same single-broker scenarios against, alternating (the cluster scenarios "
        "run on kbroker only); {port} and {dir} are substituted "
        "(e.g. 'tansu broker --listener-url tcp://127.0.0.1:{port} --advertised-listener-url tcp://127.0.0.1:{port}'); "
        f"'{AGAINST_KAFKA}' is Apache Kafka {KAFKA_VERSION} itself, single-node KRaft from the Maven jars",
    )
    parser.add_argument(
        "--authorizer-acls",
        type=int,
        default=0,
        metavar="N",
        help="also run the single-broker scenarios against a kbroker with the ACL authorizer "
        "(allow.everyone.if.no.acl.found=true) holding N ACLs (issue 12: produce-1k should stay >= 0.95x)",
    )
    parser.add_argument(
        "--sasl-ssl",
        action="store_true",
        help="also run the single-broker produce, consume and e2e scenarios against a kbroker whose clients connect "
        "over SASL_SSL with SCRAM-SHA-512 (with --against kafka, an Apache Kafka too), with each one's ratio "
        "SASL_SSL / PLAINTEXT (issue 12: produce-1k and consume-1k should reach >= 0.6x)",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:key=value,...",
        help="kbroker again with more settings, as another target of the single-broker scenarios (alternating, "
        "with ratios to the first); e.g. 'kbroker+metrics:metrics.listener=http://127.0.0.1:0'",
    )
    parser.add_argument(
        "--with-metrics",
        action="store_true",
        help=f"shorthand for --variant '{METRICS_VARIANT}': kbroker with its Prometheus endpoint on, against it off",
    )
    parser.add_argument(
        "--pin-cpus",
        metavar="BROKER/CLIENT",
        help="run every single-broker target on the CPUs before the slash and its load clients on those after it "
        "(comma-separated CPU numbers, e.g. 1/0), the same for every target: on a small machine the scheduler's "
        "placement of the broker and the client's threads otherwise decides produce-1k-idempotent's speed",
    )
    parser.add_argument(
        "--consumer-setting",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a librdkafka setting added to the consume scenarios' consumers, for every target (e.g. "
        "fetch.wait.max.ms=10 against a broker that waits out the fetch's max wait after each read); "
        "the scenario's title names it",
    )
    parser.add_argument(
        "--scenarios", default=",".join(SCENARIO_KEYS), help=f"comma-separated subset of: {', '.join(SCENARIO_KEYS)}"
    )
    parser.add_argument("--scale", type=float, default=1.0, help="multiply record counts (e.g. 0.05 for a quick run)")
    parser.add_argument("--runs", type=int, default=3, help="runs per scenario; figures are medians (default 3)")
    parser.add_argument("--warmup-runs", type=int, default=0, metavar="N",
                        help="untimed runs of the single-broker produce, consume and e2e scenarios first, on every "
                        "target (a JVM broker's JIT warms up; each writes its records too: mind the disk)")
    parser.add_argument("--loopback-bytes", type=int, help=f"bytes per loopback sample (default {LOOPBACK_BYTES:,} x scale)")
    parser.add_argument("--json-only", action="store_true", help="print only the JSON lines on stdout")
    parser.add_argument("--keep-data", action="store_true", help="keep the temporary data directories")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.scale <= 0 or args.warmup_runs < 0:
        parser.error("--runs must be at least 1, --warmup-runs not negative and --scale positive")
    try:
        args.selected = select_scenarios([key.strip() for key in args.scenarios.split(",") if key.strip()], args.scale)
    except ValueError as exc:
        parser.error(str(exc))
    if not all("=" in setting for setting in args.consumer_setting):
        parser.error("--consumer-setting: expected KEY=VALUE")
    args.selected = [with_consumer_settings(scenario, args.consumer_setting) for scenario in args.selected]
    if args.with_metrics:
        args.variant.append(METRICS_VARIANT)
    for variant in args.variant:
        name, _, settings = variant.partition(":")
        if not name or not all("=" in setting for setting in settings.split(",")):
            parser.error(f"--variant {variant!r}: expected NAME:key=value[,key=value...]")
    if args.pin_cpus is not None:
        try:
            args.pin = parse_pin_cpus(args.pin_cpus)
        except ValueError as exc:
            parser.error(f"--pin-cpus {args.pin_cpus!r}: {exc}")
    if args.loopback_bytes is None:
        args.loopback_bytes = max(MIN_LOOPBACK_BYTES, round(LOOPBACK_BYTES * args.scale))
    return args


def with_consumer_settings(scenario: Scenario, settings: list[str]) -> Scenario:
    """A consume scenario with --consumer-setting's KEY=VALUE added to its consumers' config."""
    if scenario.kind != "consume" or not settings:
        return scenario
    extra = dict(setting.split("=", 1) for setting in settings)
    return replace(scenario, consumer_config={**scenario.consumer_config, **extra},
                   title=f"{scenario.title} (consumers also: {', '.join(settings)})")


def parse_pin_cpus(text: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """"1/0" -> ((1,), (0,)): the brokers' CPUs and the clients', each a CPU this process may use."""
    broker, slash, client = text.partition("/")
    if not slash:
        raise ValueError("expected BROKER/CLIENT CPU lists, e.g. 1/0")
    usable = os.sched_getaffinity(0)
    cpus = tuple(tuple(sorted({int(cpu) for cpu in part.split(",")})) for part in (broker, client))
    unusable = sorted(set(cpus[0] + cpus[1]) - usable)
    if unusable:
        raise ValueError(f"CPUs {unusable} are not among those this process may use: {sorted(usable)}")
    return cpus[0], cpus[1]


def broker_specs(args: argparse.Namespace) -> list[BrokerSpec]:
    first = (
        BrokerSpec(args.bootstrap, bootstrap=args.bootstrap, pids=args.broker_pid)
        if args.bootstrap
        else BrokerSpec("kbroker")
    )
    specs = [first]
    if args.authorizer_acls > 0:
        specs.append(BrokerSpec(f"kbroker+{args.authorizer_acls}acls", acls=args.authorizer_acls, overrides=(
            "authorizer.class.name=kafka.security.authorizer.AclAuthorizer", "allow.everyone.if.no.acl.found=true")))
    if args.sasl_ssl:
        specs.append(BrokerSpec("kbroker" + SASL_SSL, sasl_ssl=True))
    for command in args.against:
        if command == AGAINST_KAFKA:
            specs += [apache_kafka_spec()] + ([apache_kafka_spec(sasl_ssl=True)] if args.sasl_ssl else [])
            continue
        name = Path(command.split()[0]).name if command.split() else "other"
        while any(spec.name == name for spec in specs):
            name += "'"
        specs.append(BrokerSpec(name, command=command))
    for variant in args.variant:
        name, _, settings = variant.partition(":")
        specs.append(BrokerSpec(name, overrides=tuple(settings.split(","))))
    if args.pin_cpus is not None:
        broker_cpus, client_cpus = args.pin
        specs = [replace(spec, cpus=broker_cpus, client_cpus=client_cpus) for spec in specs]
    return specs


def apache_kafka_spec(sasl_ssl: bool = False) -> BrokerSpec:
    """Apache Kafka from compat-tests/java/kafka's jars: kbroker.testing.apache_kafka writes its
    server.properties into {dir}, formats it and execs into the JVM (heap 1 GiB), so the pid the
    benchmark measures is Kafka's. With `sasl_ssl` (`kafka+sasl_ssl`), a JVM of its own with the
    SASL_SSL listener and SCRAM user of a --sasl-ssl kbroker ({sasl_ssl}: bench_broker)."""
    reason = apache_kafka_unavailable_reason()
    if reason:
        raise SystemExit(f"scripts/bench: --against {AGAINST_KAFKA}: {reason}")
    settings = " ".join(f"--override {setting}" for setting in BENCH_BROKER_SETTINGS)
    command = f"{sys.executable} -m kbroker.testing.apache_kafka {{port}} {{dir}} {settings}"
    if sasl_ssl:
        return BrokerSpec(AGAINST_KAFKA + SASL_SSL, command=command + " {sasl_ssl}", sasl_ssl=True)
    return BrokerSpec(AGAINST_KAFKA, command=command)


def ratio_pairs(specs: list[BrokerSpec]) -> list[tuple[str, str]]:
    """(numerator, denominator) targets of the ratio lines: the first target over each other one,
    but a SASL_SSL target over its own PLAINTEXT twin (issue 12's SASL_SSL / PLAINTEXT, per
    broker; over the first target when it has no twin, as with --bootstrap), and kbroker over
    SASL_SSL over each other broker over SASL_SSL."""
    names = [spec.name for spec in specs]
    first, first_secure = names[0], names[0] + SASL_SSL
    pairs = []
    for spec in specs[1:]:
        twin = spec.name.removesuffix(SASL_SSL)
        pairs.append((spec.name, twin) if spec.sasl_ssl and twin in names else (first, spec.name))
    if first_secure in names:
        pairs += [(first_secure, spec.name) for spec in specs if spec.sasl_ssl and spec.name != first_secure]
    return pairs


def describe(scenario: Scenario, sample: dict) -> str:
    if "error" in sample:
        return f"FAILED: {sample['error']}"
    if "start_ms" in sample:
        return f"{sample['start_ms']:.1f} ms"
    if "metadata_ms" in sample:
        return bench_metadata.describe(sample)
    if "rss_growth_mib" in sample:
        return f"broker RSS +{sample['rss_growth_mib']:,.1f} MiB for {scenario.count:,} idle connections"
    if "p50_ms" in sample:
        return f"p50 {sample['p50_ms']:.2f} ms, p99 {sample['p99_ms']:.2f} ms"
    seconds = sample["seconds"]
    return f"{scenario.count / seconds:,.0f} records/s, {scenario.value_bytes / seconds / 1e6:,.1f} MB/s"


def run_benchmark(args: argparse.Namespace, specs: list[BrokerSpec], work_dir: str) -> dict:
    """Everything measured: samples per (target, scenario), loopback samples, RSS, skipped scenarios.

    The single-broker scenarios first, with their brokers; then, with those stopped, the cluster
    scenarios, so neither phase shares the two cores with the other's idle processes.
    """
    by_key = {scenario.key: scenario.scaled(args.scale) for scenario in SCENARIOS}  # consume may need any dataset
    scenarios = [s for s in args.selected if not (s.kind in ("start", "metadata") and args.bootstrap)]
    token = secrets.token_hex(3)
    cannot = {s.key: why for s in scenarios if (why := scenario_skip_reason(s))}  # partitions-1k-java without Java
    for key, why in cannot.items():
        log(f"{key} skipped: {why}")
    single = [s for s in scenarios if s.brokers == 1 and s.key not in cannot]
    measured = run_single_broker_scenarios(args, specs, work_dir, single, by_key, token)
    clustered = [s for s in scenarios if s.brokers > 1]
    skip_reason = cluster_skip_reason(args) if clustered else None
    if skip_reason:
        log(f"cluster scenarios skipped: {skip_reason}")
    elif clustered:
        measured["samples"].update(run_cluster_scenarios(args, work_dir, clustered, by_key, token))
    measured["skipped"] = {**cannot, **{scenario.key: skip_reason for scenario in clustered if skip_reason}}
    measured["scenarios"] = scenarios
    return measured


def run_single_broker_scenarios(
    args: argparse.Namespace, specs: list[BrokerSpec], work_dir: str, scenarios: list[Scenario], by_key: dict[str, Scenario], token: str
) -> dict:
    brokers: dict[str, RunningBroker] = {}
    samples: dict[tuple[str, str], list[dict]] = defaultdict(list)
    loopback: list[float] = []
    specs_by_name = {spec.name: spec for spec in specs}
    try:
        for spec in specs:
            brokers[spec.name] = broker = start_broker(spec, work_dir)
            log(f"{spec.name} answers Metadata at {broker.bootstrap}" + (f" after {broker.start_ms:.1f} ms" if broker.start_ms else "")
                + (f" on CPUs {sorted(os.sched_getaffinity(broker.process.pid))}" if spec.cpus and broker.process else ""))
            if broker.start_ms is not None:
                samples[(spec.name, "start")].append({"start_ms": broker.start_ms})
        time.sleep(IDLE_SETTLE_S)
        idle = {name: broker.rss_mib() for name, broker in brokers.items()}
        warm_up(args.warmup_runs, specs, brokers, scenarios, by_key, token)
        for run in range(args.runs):
            loopback.append(measure_loopback(args.loopback_bytes))
            log(f"run {run + 1}/{args.runs}: loopback {loopback[-1]:,.0f} MB/s")
            datasets = Datasets()
            order = specs if run % 2 == 0 else specs[::-1]  # alternate who goes first
            for scenario in scenarios:
                for name in target_names(scenario, order):
                    if scenario.kind == "client":
                        sample = run_client(client_alone_spec(scenario))
                    elif scenario.kind == "start":
                        if run == 0:
                            continue  # the first sample is the start of the broker under load
                        settle_page_cache()
                        sample = measure_start(specs_by_name[name], work_dir)
                    elif scenario.kind == "metadata":  # on a broker of its own, restarted twice
                        sample = measure_own_broker(scenario, specs_by_name[name], work_dir, f"bench-{token}-r{run + 1}")
                    else:
                        sample = measure(scenario, brokers[name], f"bench-{token}-r{run + 1}", datasets, by_key)
                    samples[(name, scenario.key)].append(sample)
                    log(f"run {run + 1}/{args.runs} {scenario.key} on {name}: {describe(scenario, sample)}")
            drop_run_topics(brokers.values(), f"bench-{token}-r{run + 1}")
        after = {name: broker.rss_mib() for name, broker in brokers.items()}
    finally:
        for broker in brokers.values():
            stop_broker(broker)
    return {"samples": samples, "loopback": loopback, "idle": idle, "after": after}


def drop_run_topics(brokers: Iterable[RunningBroker | RunningCluster], run_prefix: str) -> None:
    """Delete a run's topics (each named `<run_prefix>-...`) on every target once the run's samples
    are taken, so a long benchmark holds one run's data at a time (BENCH_BROKER_SETTINGS).
    A broker that cannot delete keeps them: logged, never the run's failure."""
    from confluent_kafka.admin import AdminClient

    for broker in brokers:
        try:
            admin = AdminClient({"bootstrap.servers": broker.bootstrap, **getattr(broker, "client_config", {})})
            topics = [name for name in admin.list_topics(timeout=30).topics if name.startswith(run_prefix + "-")]
            for future in (admin.delete_topics(topics, operation_timeout=30).values() if topics else ()):
                future.result(timeout=60)
        except Exception as exc:
            log(f"{broker.name} keeps the topics of {run_prefix}: deleting them failed: {type(exc).__name__}: {exc}")


WARMED_KINDS = ("produce", "consume", "e2e")


def warm_up(runs: int, specs: list[BrokerSpec], brokers: dict[str, RunningBroker], scenarios: list[Scenario],
            by_key: dict[str, Scenario], token: str) -> None:
    """--warmup-runs: untimed runs of the produce, consume and e2e scenarios on every broker before
    the measured runs, so that a JVM's JIT has compiled its hot paths (Apache Kafka's first sample
    of produce-1k was up to 3x slower than its third, over SASL_SSL most). Logged, never recorded."""
    for run in range(runs):
        datasets = Datasets()
        for scenario in (s for s in scenarios if s.kind in WARMED_KINDS):
            for name in target_names(scenario, specs):
                sample = measure(scenario, brokers[name], f"bench-{token}-w{run + 1}", datasets, by_key)
                log(f"warm-up {run + 1}/{runs} {scenario.key} on {name}: {describe(scenario, sample)}")
        drop_run_topics(brokers.values(), f"bench-{token}-w{run + 1}")


def cluster_skip_reason(args: argparse.Namespace) -> str | None:
    if args.bootstrap:
        return "--bootstrap names one broker, and the cluster scenarios start a kbroker cluster of their own"
    reason = zookeeper_unavailable_reason()
    return f"no ZooKeeper to run a cluster with: {reason}" if reason else None


def run_cluster_scenarios(
    args: argparse.Namespace, work_dir: str, scenarios: list[Scenario], by_key: dict[str, Scenario], token: str
) -> dict[tuple[str, str], list[dict]]:
    """--runs runs of the cluster scenarios on one cluster, started for them and stopped after."""
    samples: dict[tuple[str, str], list[dict]] = defaultdict(list)
    try:
        cluster = start_cluster(CLUSTER, work_dir)
    except Exception as exc:
        log(f"{CLUSTER} did not start: {type(exc).__name__}: {exc}")
        for scenario in scenarios:
            samples[(CLUSTER, scenario.key)].append({"error": f"the cluster did not start: {type(exc).__name__}: {exc}"})
        return samples
    log(f"{CLUSTER} (ZooKeeper at {cluster.zookeeper.connect_string}) sees all brokers at {cluster.bootstrap} after {cluster.start_ms:,.0f} ms")
    try:
        for run in range(args.runs):
            datasets = Datasets()
            for scenario in scenarios:
                sample = measure(scenario, cluster, f"bench-{token}-c{run + 1}", datasets, by_key)
                if "error" not in sample and (topic := datasets.topic_for(CLUSTER, scenario.dataset or scenario.key)):
                    sample.update(cluster.replication_figures(topic, sample.get("broker_cpu_s_each")))
                samples[(CLUSTER, scenario.key)].append(sample)
                log(f"run {run + 1}/{args.runs} {scenario.key} on {CLUSTER}: {describe(scenario, sample)}")
            drop_run_topics([cluster], f"bench-{token}-c{run + 1}")
    finally:
        stop_cluster(cluster)
    return samples


def summary_of(scenario: Scenario, target: str, measured: dict, loopback_mb_s: float | None, against: bool) -> dict:
    if scenario.key in measured["skipped"]:
        summary = skipped_summary(scenario, target, measured["skipped"][scenario.key])
    else:
        summary = summarize(scenario, target, measured["samples"][(target, scenario.key)], loopback_mb_s)
    if against and scenario.brokers > 1:
        summary["notes"] = [NOT_AGAINST]
    return summary


def _stop_on_sigterm(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # unwinds every `finally`: the brokers are stopped


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # A SIGTERM (a test's time limit, a CI job's end) stops the brokers and removes the data too.
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    specs = broker_specs(args)
    work_dir = tempfile.mkdtemp(prefix="kbroker-bench-")
    try:
        measured = run_benchmark(args, specs, work_dir)
    except Exception as exc:
        log(f"benchmark aborted: {type(exc).__name__}: {exc}")
        return 1
    finally:
        if args.keep_data:
            log(f"data kept in {work_dir}")
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
    loopback = loopback_summary(measured["loopback"], args.loopback_bytes)
    results = [
        summary_of(scenario, name, measured, loopback["mb_per_s"], against=bool(args.against))
        for scenario in measured["scenarios"]
        for name in target_names(scenario, specs)
    ]
    compare_with_produce_1k(results)
    memory = [memory_summary(spec.name, measured["idle"][spec.name], measured["after"][spec.name]) for spec in specs]
    ratio_lines = ratios(results + memory, ratio_pairs(specs))
    if not args.json_only:
        print(detail_table(results, memory, loopback, args.runs))
        if ratio_lines:
            print(ratio_table(ratio_lines))
        print()
    print(json_lines([loopback, *results, *memory, *ratio_lines]), flush=True)
    return 0 if all(summary["verified"] for summary in results if "skipped" not in summary) else 1


if __name__ == "__main__":
    sys.exit(main())
