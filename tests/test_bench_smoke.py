"""Smoke runs of scripts/bench with tiny counts: it starts real brokers (and, where Debian's
ZooKeeper is installed, a real three-broker cluster), verifies what it measures and prints JSON
lines with the documented keys. No timing is asserted: speed is the benchmark's business, not the
tests'."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kbroker.testing.apache_kafka import apache_kafka_unavailable_reason
from kbroker.testing.zookeeper import zookeeper_unavailable_reason

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
sys.path.insert(0, str(SCRIPTS))

from bench_partitions import java_unavailable_reason  # noqa: E402

# Each run starts brokers (and a cluster) and waits up to 90 s for scripts/bench; the full set
# (ten JVM producers and 1,000 connections among its scenarios) ~45 s on a quiet machine, up to 240 s.
pytestmark = [pytest.mark.timeout(300), pytest.mark.long_running]

TINY = ["--scale", "0.0005", "--runs", "1", "--loopback-bytes", str(8 * 1024 * 1024), "--json-only"]
THROUGHPUT_KEYS = {"records", "record_bytes", "seconds", "records_per_s", "mb_per_s", "loopback_fraction", "broker_cpu_s", "client_cpu_s"}  # fmt: skip


def run_bench(*args: str, timeout: float = 90) -> tuple[int, list[dict], str]:
    with subprocess.Popen([str(SCRIPTS / "bench"), *TINY, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as bench:
        try:
            stdout, stderr = bench.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            bench.terminate()  # SIGTERM: the bench stops its brokers (a SIGKILL would leave them running)
            _, stderr = bench.communicate(timeout=60)
            pytest.fail(f"scripts/bench did not finish within {timeout} s:\n{stderr[-5000:]}")
    return bench.returncode, [json.loads(line) for line in stdout.splitlines()], stderr


def by_scenario(lines: list[dict], target: str) -> dict[str, dict]:
    return {line["scenario"]: line for line in lines if line["kind"] == "result" and line["target"] == target}


CLUSTER_SCENARIOS = {"cluster-produce-1k-acks-all", "cluster-consume-1k"}


def assert_cluster_results(results: dict[str, dict]) -> None:
    """Verified on three brokers, every replica in the ISR, or skipped for want of ZooKeeper."""
    assert set(results) == CLUSTER_SCENARIOS
    reason = zookeeper_unavailable_reason()
    for result in results.values():
        assert (result["brokers"], result["replication_factor"]) == (3, 3)
        if reason is not None:
            assert result["skipped"] == f"no ZooKeeper to run a cluster with: {reason}" and not result["verified"]
            continue
        assert result["verified"] and result["runs"] == 1 and not result["errors"], result
        assert THROUGHPUT_KEYS <= result.keys() and result["records"] == 150 and result["broker_cpu_s"] is not None
    if reason is None:
        produced = results["cluster-produce-1k-acks-all"]
        assert produced["isr"] == [[1, 2, 3]] and produced["leader"][0] in (1, 2, 3)
        assert len(produced["broker_cpu_s_each"]) == 3
        assert sum(produced["broker_cpu_s_each"]) == pytest.approx(produced["broker_cpu_s"], abs=0.05)
        for result in results.values():  # every broker's log holds the 150 records' batches, leader or follower
            written, per_gb = result["replicated_bytes_each"], result["broker_cpu_s_per_replicated_gb_each"]
            assert len(written) == len(per_gb) == 3 and len(set(written)) == 1 and written[0] > 150 * 1024
            for cpu, size, figure in zip(result["broker_cpu_s_each"], written, per_gb, strict=True):
                assert figure == pytest.approx(cpu / (size / 1e9))


def test_full_scenario_set_verified_with_expected_keys():
    # A time limit against a hang, not a speed check: under the whole suite's load this took >90 s.
    code, lines, stderr = run_bench(timeout=240)
    assert code == 0, stderr
    assert_cluster_results(by_scenario(lines, "kbroker x3"))
    results = by_scenario(lines, "kbroker")
    assert set(results) == {"start", "idle-connections-2k", "metadata-10k", "produce-100b", "produce-1k", "produce-1k-zstd", "produce-1k-zstd-to-lz4", "produce-1k-idempotent", "produce-1k-transactional", "consume-100b", "consume-1k", "consume-1k-read-committed", "e2e-latency", "partitions-1k", "partitions-1k-java", "connections-1k"}  # fmt: skip
    if (reason := java_unavailable_reason()) is not None:  # reported as skipped, with the reason
        assert results.pop("partitions-1k-java")["skipped"] == reason
    assert all(result["verified"] and result["runs"] == 1 and not result["errors"] for result in results.values())
    assert_idle_result(results["idle-connections-2k"])
    assert_connections_result(results["connections-1k"])
    for key in ("produce-100b", "produce-1k", "produce-1k-zstd", "produce-1k-zstd-to-lz4", "produce-1k-idempotent",
                "produce-1k-transactional", "consume-100b", "consume-1k", "consume-1k-read-committed"):
        result = results[key]
        assert THROUGHPUT_KEYS <= result.keys()
        assert result["records"] == (500 if result["record_bytes"] == 100 else 150)
        assert result["mb_per_s"] == pytest.approx(result["records_per_s"] * result["record_bytes"] / 1e6)
        assert 0 < result["loopback_fraction"]
        assert result["client_cpu_s"] > 0 and result["broker_cpu_s"] is not None
    baseline = by_scenario(lines, "client alone")
    assert set(baseline) == {"client-alone-100b", "client-alone-1k"}
    assert all(result["verified"] and result["records_per_s"] > 0 for result in baseline.values())
    latency = results["e2e-latency"]
    assert latency["records"] == 20 and 0 < latency["p50_ms"] <= latency["p99_ms"] <= latency["max_ms"]
    assert results["start"]["start_ms"] > 0
    (loopback,) = [line for line in lines if line["kind"] == "loopback"]
    assert loopback["mb_per_s"] > 0 and loopback["bytes"] == 8 * 1024 * 1024
    (memory,) = [line for line in lines if line["kind"] == "memory"]
    assert memory["rss_idle_mib"] > 5 and memory["rss_after_mib"] > 5


IDLE_KEYS = {"connections", "rss_before_mib", "rss_after_mib", "rss_growth_mib", "kib_per_connection", "target_rss_growth_mib", "within_target"}  # fmt: skip


def assert_idle_result(result: dict) -> None:
    """The tiny scale still opens the minimum of 10 connections, and the target scales with them."""
    assert IDLE_KEYS <= result.keys() and result["connections"] == 10
    assert result["rss_before_mib"] > 5 and result["rss_growth_mib"] == result["all_rss_growth_mib"][0]
    assert result["target_rss_growth_mib"] == pytest.approx(0.1)


def test_idle_connections_scenario_alone():
    code, lines, stderr = run_bench("--scenarios", "idle-connections-2k")
    assert code == 0, stderr
    result = by_scenario(lines, "kbroker")["idle-connections-2k"]
    assert result["verified"] and result["runs"] == 1 and not result["errors"]
    assert_idle_result(result)


def assert_connections_result(result: dict) -> None:
    """The tiny scale: 10 connections for 4 s (one request a second each, all acknowledged), 2
    groups of 2 members, a 3-member group's two rebalances timed; broker CPU, RSS and latencies."""
    assert (result["connections"], result["records"], result["groups"], result["members"]) == (10, 40, 2, 4)
    assert result["rebalance_members"] == 3 and result["rebalance_join_ms"] > 0 and result["rebalance_leave_ms"] > 0
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
    assert result["broker_cpu_s"] is not None and result["broker_cpu_pct"] >= 0 and result["broker_rss_mib"] > 5
    assert result["broker_runqueue_wait_s"] >= 0
    assert result["target_p99_ms"] == 20.0 and result["within_target"] == (result["p99_ms"] <= 20.0)


def test_connections_scenario_alone():
    code, lines, stderr = run_bench("--scenarios", "connections-1k")
    assert code == 0, stderr
    result = by_scenario(lines, "kbroker")["connections-1k"]
    assert result["verified"] and result["runs"] == 1 and not result["errors"], result
    assert_connections_result(result)
    assert result["spread"]["p99_ms"]["samples"] == [pytest.approx(result["p99_ms"])]


def test_start_reports_the_interpreter_floor_beside_kbroker_only():
    """From the second run on, a start sample of kbroker comes with its interpreter's floor: the
    same Python importing asyncio and uvloop, nothing else. Its RSS is below the broker's, which
    imports all of that and more; a broker given as a command gets no floor."""
    other = f"{sys.executable} -m kbroker --override listeners=PLAINTEXT://127.0.0.1:{{port}} --override log.dirs={{dir}}"
    code, lines, stderr = run_bench("--scenarios", "start", "--runs", "2", "--against", other)
    assert code == 0, stderr
    started = by_scenario(lines, "kbroker")["start"]
    (memory,) = [line for line in lines if line["kind"] == "memory" and line["target"] == "kbroker"]
    assert started["floor_ms"] > 0 and 5 < started["floor_rss_mib"] < memory["rss_idle_mib"]
    assert "floor_ms" not in by_scenario(lines, Path(sys.executable).name)["start"]


def test_against_runs_the_same_scenarios_and_prints_ratios():
    other = f"{sys.executable} -m kbroker --override listeners=PLAINTEXT://127.0.0.1:{{port}} --override log.dirs={{dir}}"
    code, lines, stderr = run_bench("--scenarios", "start,produce-1k,e2e-latency", "--against", other)
    assert code == 0, stderr
    other_name = Path(sys.executable).name
    assert set(by_scenario(lines, other_name)) == {"start", "produce-1k", "e2e-latency"}
    ratios = {(line["scenario"], line["metric"]) for line in lines if line["kind"] == "ratio"}
    assert ratios == {
        ("start", "start_ms"), ("produce-1k", "mb_per_s"), ("e2e-latency", "p50_ms"), ("e2e-latency", "p99_ms"),
        ("memory", "rss_idle_mib"), ("memory", "rss_after_mib"),
    }  # fmt: skip
    assert all(line["ranges_overlap"] in (True, False) for line in lines
               if line["kind"] == "ratio" and line["scenario"] != "memory")
    produced = by_scenario(lines, "kbroker")["produce-1k"]
    assert_spread(produced["spread"]["mb_per_s"], produced["mb_per_s"])
    latency = by_scenario(lines, other_name)["e2e-latency"]
    assert_spread(latency["spread"]["p99_ms"], latency["p99_ms"])


def assert_spread(spread: dict, median: float) -> None:
    """One run: its one sample is the min, the median and the max."""
    assert spread["samples"] == [pytest.approx(median)]
    assert spread["min"] == spread["median"] == spread["max"] == pytest.approx(median)


def test_with_metrics_runs_kbroker_again_with_its_metrics_endpoint_and_prints_ratios():
    code, lines, stderr = run_bench("--scenarios", "produce-1k,consume-1k", "--with-metrics")
    assert code == 0, stderr
    for target in ("kbroker", "kbroker+metrics"):
        results = by_scenario(lines, target)
        assert set(results) == {"produce-1k", "consume-1k"} and all(r["verified"] for r in results.values())
    ratios = {(line["scenario"], line["denominator"]) for line in lines if line["kind"] == "ratio"}
    assert {("produce-1k", "kbroker+metrics"), ("consume-1k", "kbroker+metrics")} <= ratios


@pytest.mark.skipif(apache_kafka_unavailable_reason() is not None, reason=apache_kafka_unavailable_reason() or "")
def test_against_kafka_runs_apache_kafka_from_its_jars():
    code, lines, stderr = run_bench("--scenarios", "produce-1k", "--against", "kafka", timeout=180)
    assert code == 0, stderr
    result = by_scenario(lines, "kafka")["produce-1k"]
    assert result["verified"] and THROUGHPUT_KEYS <= result.keys(), result
    assert ("produce-1k", "mb_per_s") in {(line["scenario"], line["metric"]) for line in lines if line["kind"] == "ratio"}


def sasl_ssl_ratios(lines: list[dict]) -> dict[tuple[str, str, str], float]:
    return {(line["scenario"], line["numerator"], line["denominator"]): line["ratio"] for line in lines
            if line["kind"] == "ratio" and line["metric"] == "mb_per_s"}


def assert_verified_throughput(lines: list[dict], target: str) -> None:
    results = by_scenario(lines, target)
    assert set(results) == {"produce-1k", "consume-1k"}, results
    for result in results.values():  # counted back as on PLAINTEXT
        assert result["verified"] and not result["errors"] and result["records"] == 150, result
        assert THROUGHPUT_KEYS <= result.keys()


def test_sasl_ssl_runs_kbroker_over_scram_and_prints_sasl_ssl_over_plaintext():
    code, lines, stderr = run_bench("--scenarios", "produce-1k,consume-1k", "--sasl-ssl")
    assert code == 0, stderr
    for target in ("kbroker", "kbroker+sasl_ssl"):
        assert_verified_throughput(lines, target)
    ratios = sasl_ssl_ratios(lines)
    assert set(ratios) == {("produce-1k", "kbroker+sasl_ssl", "kbroker"), ("consume-1k", "kbroker+sasl_ssl", "kbroker")}
    results, secure = by_scenario(lines, "kbroker"), by_scenario(lines, "kbroker+sasl_ssl")
    for scenario, ratio in ratios.items():  # SASL_SSL's figure over PLAINTEXT's, not the other way round
        assert ratio == pytest.approx(secure[scenario[0]]["mb_per_s"] / results[scenario[0]]["mb_per_s"])


@pytest.mark.skipif(apache_kafka_unavailable_reason() is not None, reason=apache_kafka_unavailable_reason() or "")
def test_against_kafka_with_sasl_ssl_runs_apache_kafka_over_sasl_ssl_too():
    """Four targets, each verified: kbroker and Apache Kafka, each over PLAINTEXT and over SASL_SSL
    with SCRAM-SHA-512; each broker's SASL_SSL / PLAINTEXT ratio, and the two over SASL_SSL. A
    warm-up run first on each, logged and not counted."""
    code, lines, stderr = run_bench("--scenarios", "produce-1k,consume-1k", "--sasl-ssl", "--against", "kafka",
                                    "--warmup-runs", "1", timeout=240)
    assert code == 0, stderr
    for target in ("kbroker", "kbroker+sasl_ssl", "kafka", "kafka+sasl_ssl"):
        assert_verified_throughput(lines, target)
        for scenario in ("produce-1k", "consume-1k"):
            assert f"warm-up 1/1 {scenario} on {target}: " in stderr
            assert len(by_scenario(lines, target)[scenario]["spread"]["mb_per_s"]["samples"]) == 1
    pairs = {("kbroker+sasl_ssl", "kbroker"), ("kbroker", "kafka"), ("kafka+sasl_ssl", "kafka"),
             ("kbroker+sasl_ssl", "kafka+sasl_ssl")}
    assert set(sasl_ssl_ratios(lines)) == {(scenario, *pair) for scenario in ("produce-1k", "consume-1k") for pair in pairs}
    assert "kafka+sasl_ssl answers Metadata at 127.0.0.1:" in stderr  # the SASL_SSL listener's address


@pytest.mark.skipif(apache_kafka_unavailable_reason() is not None, reason=apache_kafka_unavailable_reason() or "")
def test_kafka_producer_perf_test_runs_against_both():
    done = subprocess.run([sys.executable, str(SCRIPTS / "bench_perf_test.py"), "--scale", "0.0005", "--runs", "1",
                           "--cases", "1k-acks-all"], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [row["case"] for row in rows] == ["1k-acks-all"]  # one case: each run is a JVM per broker
    for row in rows:
        for broker in ("kbroker", "kafka"):
            assert row[broker]["errors"] == [] and row[broker]["records_per_s"] > 0, row
        assert row["ratio_mb_per_s"] > 0


def test_cluster_scenarios_skipped_with_bootstrap_and_not_run_against_others(broker):
    """A skipped scenario is reported with its reason and does not fail the run; --against
    brokers get the single-broker scenarios only, and the cluster's result says so."""
    other = f"{sys.executable} -m kbroker --override listeners=PLAINTEXT://127.0.0.1:{{port}} --override log.dirs={{dir}}"
    code, lines, stderr = run_bench(
        "--bootstrap", broker.bootstrap, "--broker-pid", str(broker.proc.pid), "--against", other,
        "--scenarios", "produce-1k,cluster-produce-1k-acks-all",
    )  # fmt: skip
    assert code == 0, stderr
    assert by_scenario(lines, broker.bootstrap)["produce-1k"]["verified"]
    assert set(by_scenario(lines, Path(sys.executable).name)) == {"produce-1k"}
    (skipped,) = by_scenario(lines, "kbroker x3").values()
    assert skipped["skipped"].startswith("--bootstrap names one broker") and skipped["runs"] == 0
    assert skipped["notes"] == ["--against does not apply: the other brokers have no ZooKeeper mode; this runs on kbroker only"]
    assert "cluster scenarios skipped: --bootstrap names one broker" in stderr


def test_each_run_deletes_its_topics_once_measured(broker):
    """A long benchmark holds one run's data at a time: each run's topics (a warm-up run's too)
    are deleted once its samples are taken (consume still reads its run's produce), and no other
    topic is touched."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic("bench-not-a-run", 1, 1)])["bench-not-a-run"].result(timeout=30)
    code, lines, stderr = run_bench("--bootstrap", broker.bootstrap, "--broker-pid", str(broker.proc.pid),
                                    "--runs", "2", "--warmup-runs", "1", "--scenarios", "produce-1k,consume-1k")
    assert code == 0, stderr
    assert all(result["verified"] and result["runs"] == 2 for result in by_scenario(lines, broker.bootstrap).values())
    assert "keeps the topics" not in stderr
    remaining = {name for name in admin.list_topics(timeout=30).topics if name.startswith("bench-")}
    assert remaining == {"bench-not-a-run"}


def run_client(spec: dict) -> dict:
    done = subprocess.run(
        [sys.executable, str(SCRIPTS / "bench_client.py"), json.dumps(spec)], capture_output=True, text=True, timeout=60
    )
    return json.loads(done.stdout.splitlines()[-1])


def test_client_reports_missing_records(broker):
    spec = {
        "bootstrap": broker.bootstrap, "topic": "smoke", "size": 100, "broker_pids": [broker.proc.pid],
        "producer_config": {"acks": 1}, "consumer_config": {}, "timeout_s": 3.0,
    }  # fmt: skip
    assert "error" not in run_client({**spec, "mode": "produce", "count": 20})
    assert "error" not in run_client({**spec, "mode": "consume", "count": 20})
    short = run_client({**spec, "mode": "consume", "count": 25})
    assert short["error"] == "verification failed: received 20 records of 25 within 3.0 s"
    again = run_client({**spec, "mode": "produce", "count": 20})  # the log now spans [0, 40)
    assert again["error"].startswith("verification failed: a record beyond the 20 produced, at offset 20 (unverified timing: ")


def test_consume_counts_the_fetch_responses_librdkafka_received(broker):
    """The consume mode reads librdkafka's statistics: every value arrived in a Fetch response,
    each record was taken in once, none dropped as outdated."""
    spec = {
        "bootstrap": broker.bootstrap, "topic": "fetch-shape", "size": 1000, "count": 300, "broker_pids": [broker.proc.pid],
        "producer_config": {"acks": 1, "batch.size": 10_000}, "consumer_config": {"max.partition.fetch.bytes": 100_000},
        "timeout_s": 10.0,
    }  # fmt: skip
    assert "error" not in run_client({**spec, "mode": "produce"})
    result = run_client({**spec, "mode": "consume"})
    assert "error" not in result, result
    # 300 KB of values in batches of 10 KB, at most 100 KB a partition per fetch: three Fetch requests or more.
    assert result["fetch_requests"] >= 3 and result["fetch_response_bytes"] >= 300 * 1000
    assert result["partition_rxmsgs"] == 300 and result["partition_rx_ver_drops"] == 0
    assert result["fetch_rtt_avg_ms"] > 0


FETCH_KEYS = {"fetch_requests", "fetch_response_bytes", "fetch_bytes_per_request", "fetch_bytes_per_value_byte", "fetch_rtt_avg_ms", "client_cpu_s_per_mb", "broker_cpu_s_per_mb", "partition_rx_ver_drops", "max_fetchq_cnt", "client_minor_faults_per_mb"}  # fmt: skip


def test_consume_scenarios_report_fetch_requests_response_bytes_and_cpu_per_mb():
    done = subprocess.run([str(SCRIPTS / "bench"), *TINY[:-1], "--scenarios", "consume-100b,consume-1k"],
                          capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    results = by_scenario([json.loads(line) for line in lines if line.startswith("{")], "kbroker")
    assert set(results) == {"consume-100b", "consume-1k"}
    for result in results.values():
        assert FETCH_KEYS <= result.keys(), result
        assert result["fetch_requests"] >= 1 and result["fetch_response_bytes"] >= result["records"] * result["record_bytes"]
        assert result["fetch_bytes_per_value_byte"] >= 1 and result["client_cpu_s_per_mb"] > 0
        assert result["client_minor_faults_per_mb"] >= 0
    table_lines = [line for line in lines if line.strip().startswith("fetch: ")]
    assert len(table_lines) == 2 and all("MB of responses" in line and "CPU s per MB: client" in line
                                         and "minor page faults per MB" in line for line in table_lines)


def test_log_benchmark_runs_every_scenario(tmp_path):
    """scripts/bench_log.py once crashed at its LogAppendTime scenario unnoticed: run it small."""
    done = subprocess.run([sys.executable, str(SCRIPTS / "bench_log.py"), "--total-mb", "2", "--dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rates = [line for line in done.stdout.splitlines() if line.rstrip().endswith("batches)")]
    assert len(rates) == 7 and "LogAppendTime" in done.stdout
    assert list(tmp_path.iterdir()) == []  # it removes what it wrote


def test_produce_counts_the_produce_requests_librdkafka_sent(broker):
    """The produce mode reads librdkafka's statistics: every record went out in a Produce
    request, batches no larger than batch.size; and it splits the client's CPU by thread."""
    cpu = min(os.sched_getaffinity(0))
    spec = {
        "mode": "produce", "bootstrap": broker.bootstrap, "topic": "produce-shape", "size": 1000, "count": 300,
        "broker_pids": [broker.proc.pid], "producer_config": {"acks": "all", "enable.idempotence": True, "batch.size": 10_000},
        "consumer_config": {}, "timeout_s": 10.0, "cpus": [cpu],
    }  # fmt: skip
    result = run_client(spec)
    assert "error" not in result, result
    # 300 KB of values in batches of at most 10 KB (one partition, so one batch a request): 30 requests or more.
    assert result["produce_records"] == 300 and result["produce_requests"] >= 30 and result["produce_retries"] == 0
    assert result["records_per_request"] == pytest.approx(300 / result["produce_requests"])
    assert 1 <= result["batch_records_avg"] <= 10 and result["batch_bytes_avg"] <= 10_000
    assert result["produce_rtt_avg_ms"] > 0 and 0 < result["enqueue_s"] <= result["seconds"]
    assert any(name.startswith("rdk:") for name in result["client_thread_cpu_s"]), result["client_thread_cpu_s"]
    assert result["client_cpus"] == [cpu]  # spec["cpus"]: pinned, librdkafka's threads included


PRODUCE_KEYS = {"produce_requests", "records_per_request", "batch_records_avg", "batch_bytes_avg", "produce_rtt_avg_ms", "enqueue_s", "client_loop_cpu_s", "client_librdkafka_cpu_s", "client_cpu_s_per_mb", "broker_cpu_s_per_mb", "all_records_per_request", "all_produce_rtt_avg_ms"}  # fmt: skip


def test_produce_scenarios_report_request_shape_and_run_pinned():
    cpu = min(os.sched_getaffinity(0))
    done = subprocess.run([str(SCRIPTS / "bench"), *TINY[:-1], "--scenarios", "produce-1k-idempotent",
                           "--pin-cpus", f"{cpu}/{cpu}"], capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr
    assert f"on CPUs [{cpu}]" in done.stderr  # the broker, as the bench read it back from the kernel
    lines = done.stdout.splitlines()
    result = by_scenario([json.loads(line) for line in lines if line.startswith("{")], "kbroker")["produce-1k-idempotent"]
    assert PRODUCE_KEYS <= result.keys(), result
    assert result["produce_requests"] >= 1 and result["records_per_request"] * result["produce_requests"] == pytest.approx(150)
    table_lines = [line.strip() for line in lines if line.strip().startswith(("produce: ", "per sample: "))]
    assert len(table_lines) == 2 and "records each" in table_lines[0] and "CPU s per MB: client" in table_lines[0]


def test_consumer_setting_reaches_the_consume_scenarios_consumers():
    def consume_1k(setting: str, returncode: int) -> tuple[dict, list[str]]:
        done = subprocess.run([str(SCRIPTS / "bench"), *TINY[:-1], "--scenarios", "consume-1k", "--consumer-setting", setting],
                              capture_output=True, text=True, timeout=90)
        assert done.returncode == returncode, done.stderr  # 1: a scenario failed
        lines = done.stdout.splitlines()
        return by_scenario([json.loads(line) for line in lines if line.startswith("{")], "kbroker")["consume-1k"], lines

    result, lines = consume_1k("fetch.wait.max.ms=10", 0)
    assert result["verified"] and not result["errors"], result
    assert any("(consumers also: fetch.wait.max.ms=10)" in line for line in lines)
    result, _ = consume_1k("no.such.setting=1", 1)  # librdkafka itself refuses it: the setting reached the consumer
    assert not result["verified"] and any('No such configuration property: "no.such.setting"' in e for e in result["errors"])


def test_pin_cpus_must_name_usable_cpus():
    done = subprocess.run([str(SCRIPTS / "bench"), "--pin-cpus", "0"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "expected BROKER/CLIENT CPU lists" in done.stderr


METADATA_KEYS = {"metadata_ms", "list_topics_ms", "restarted_metadata_ms", "clean_start_s", "recovery_start_s", "rss_mib", "fds", "fds_loaded", "fds_restarted", "data_files", "within_targets"}  # fmt: skip


def test_metadata_scenario_restarts_the_broker_and_counts_its_records():
    """metadata-10k at a tiny scale: 10 partitions, created, filled, timed, restarted cleanly and
    after kill -9, every acknowledged record found again (the sample fails otherwise)."""
    code, lines, stderr = run_bench("--scenarios", "metadata-10k")
    assert code == 0, stderr
    (result,) = by_scenario(lines, "kbroker").values()
    assert result["verified"] and not result["errors"] and METADATA_KEYS <= result.keys(), result
    assert result["partitions"] == 10 and result["records"] == 10 * math.ceil(2**30 // 10_000 / 4096)
    assert 0 < result["metadata_ms"] and 0 < result["clean_start_s"] and 0 < result["recovery_start_s"]
    assert result["fds"] > 0 and result["data_files"] >= 10 and set(result["within_targets"]) == {"metadata_ms", "clean_start_s", "rss_mib"}


JAVA_MISSING = java_unavailable_reason()


@pytest.mark.skipif(JAVA_MISSING is not None, reason=f"partitions-1k-java needs the Java client: {JAVA_MISSING}")
def test_partitions_1k_java_runs_ten_java_producers_verified_with_the_ratio_to_produce_1k():
    """partitions-1k with the Java client's producers, at its minimum of a record per partition:
    read back by the group, every offset once; the Java client packs several partitions into a
    Produce request (librdkafka sends one), counted from the broker's log batches."""
    code, lines, stderr = run_bench("--scenarios", "produce-1k,partitions-1k-java", timeout=240)
    assert code == 0, stderr
    results = by_scenario(lines, "kbroker")
    result = results["partitions-1k-java"]
    assert result["verified"] and result["runs"] == 1 and not result["errors"], result
    assert (result["records"], result["partitions"], result["producers"], result["client"]) == (1000, 1000, 10, "java")
    assert result["mb_per_s"] > 0 and result["consume_mb_per_s"] > 0 and result["broker_cpu_s_per_mb"] is not None
    assert 0 < result["produce_record_p99_ms"] and result["produce_rtt_p99_ms"] is None
    assert result["log_batches"] == 1000 and result["partitions_per_request"] > 1
    assert result["vs_produce_1k"] == pytest.approx(result["mb_per_s"] / results["produce-1k"]["mb_per_s"])
