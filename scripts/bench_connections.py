#!/usr/bin/env python3
"""The `connections-1k` scenario of scripts/bench (issue 15): many connections and group members at once.

At full scale, for DURATION_S seconds together:
- 1,000 client connections, spread over PRODUCER_PROCESSES asyncio processes, each sending one
  real Produce request (v9, acks=1, one record of RECORD_BYTES) per second to a topic of 50
  partitions, its second's phase spread evenly so the broker sees a steady 1,000 requests/s. The
  requests are encoded once per connection with kbroker's schema codec (only the correlation id
  changes), so a few processes hold the connections; each request's latency is from the write to
  its acknowledgment on that connection;
- 200 consumer group members in 20 groups of 10 (aiokafka consumers, GROUPS_PER_PROCESS groups
  per process, RoundRobin, the clients' default heartbeat, reads batched by MEMBER_FETCH), subscribed
  to that topic from the earliest offset, counting what they read;
- one more group (REBALANCE_MEMBERS aiokafka members, heartbeat.interval.ms REBALANCE_HEARTBEAT_MS,
  in a process of its own) whose rebalances are timed: 49 members join and settle, then
  `rebalance_join_ms` is the time from the 50th member's start() to the moment every one of the 50
  has received an assignment (on_partitions_assigned) after that start and the 50 assignments cover
  the partitions once each; `rebalance_leave_ms` the time from that member's stop() (LeaveGroup)
  to the same for the 49 left. Both include the time until each member's next heartbeat learns of
  the rebalance (at most one heartbeat interval), the clients' own work, and the broker's.

Verified: every connection's every request acknowledged without error (none missing at the end),
the acknowledged offsets of each partition exactly 0..high watermark-1 (nothing lost or doubled),
every group of 10 read exactly the acknowledged records with no rebalance after it first settled,
and both timed rebalances completed. Reported: broker CPU seconds and % of one core over the
window, the seconds its threads waited for a CPU meanwhile (Linux's schedstat: on a shared
two-core machine most of a request's latency is that wait, not the broker's work), the broker's
largest RSS during it, produce latency percentiles over all connections, the two rebalance
times, the clients' CPU.

Run as a script, it is one of the worker processes (`bench_connections.py '<json spec>'`); the
orchestration (`run_connections`) is imported by scripts/bench. Only the Kafka protocol is spoken:
it runs unchanged against any broker (`--against`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import select
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench_broker import cpu_seconds_of, rss_mib_of  # scripts/ is sys.path[0] when run as a script

SELF = Path(__file__).resolve()
FULL_CONNECTIONS = 1000
DURATION_S = 40.0
MIN_DURATION_S = 4.0
PRODUCER_PROCESSES = 4
GROUPS = 20
MEMBERS_PER_GROUP = 10
GROUPS_PER_PROCESS = 5
REBALANCE_MEMBERS = 50
REBALANCE_HEARTBEAT_MS = 1000
RECORD_BYTES = 100
# The groups' members batch their reads as consumers of a busy topic do: with fetch.min.bytes=1
# (the clients' default) each of the 200 Python consumers fetched nearly every record as it
# arrived (~1,500 Fetch requests/s), and the clients alone took more than one of the two cores.
MEMBER_FETCH = {"fetch_min_bytes": 16 * 1024, "fetch_max_wait_ms": 500}
PRODUCE_VERSION = 9  # flexible; served by Kafka 2.8 to 4.x and by kbroker
ACKS = 1
CONNECT_ALLOWANCE_S = 5.0  # producers open their connections before the common start time
READY_TIMEOUT_S = 120.0
DRAIN_TIMEOUT_S = 60.0  # after the producers: for the groups to read the last records
SLACK_S = 60.0
TARGET_P99_MS = 20.0
RSS_POLL_S = 0.5


@dataclass(frozen=True)
class Plan:
    """The scenario's sizes at a scale (count = connections; 1,000 at full scale)."""

    connections: int
    duration_s: float
    groups: int
    members_per_group: int
    rebalance_members: int

    @classmethod
    def for_connections(cls, connections: int) -> Plan:
        fraction = connections / FULL_CONNECTIONS
        return cls(
            connections=connections,
            duration_s=max(MIN_DURATION_S, DURATION_S * min(1.0, fraction)),
            groups=max(2, round(GROUPS * min(1.0, fraction))),
            members_per_group=max(2, min(MEMBERS_PER_GROUP, round(MEMBERS_PER_GROUP * fraction))),
            rebalance_members=max(3, min(REBALANCE_MEMBERS, round(REBALANCE_MEMBERS * fraction))),
        )

    @property
    def partitions(self) -> int:
        return max(self.rebalance_members, self.members_per_group)

    @property
    def ticks(self) -> int:
        """Requests each connection sends: one a second."""
        return int(self.duration_s)


# ------------------------------------------------------------------------------ orchestration


def worker(spec: dict) -> subprocess.Popen:
    """A worker process. Its result (a producer's holds every latency and offset: hundreds of KB)
    goes to a file of its own, read once it has exited; stdout carries only the group workers'
    "ready", stdin the acknowledged count; stderr (the clients' logs, unbounded) goes to a file."""
    err = tempfile.TemporaryFile("w+")
    fd, result_path = tempfile.mkstemp(prefix="bench-connections-", suffix=".json")
    os.close(fd)
    process = subprocess.Popen([sys.executable, str(SELF), json.dumps({**spec, "result_path": result_path})],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True)
    process.err_file = err  # type: ignore[attr-defined]
    process.result_path = result_path  # type: ignore[attr-defined]
    return process


def stderr_tail(process: subprocess.Popen) -> str:
    err = process.err_file  # type: ignore[attr-defined]
    err.seek(0)
    return " | ".join(err.read().strip().splitlines()[-3:])


def read_line(process: subprocess.Popen, timeout_s: float) -> str:
    ready, _, _ = select.select([process.stdout], [], [], timeout_s)
    return process.stdout.readline().strip() if ready else ""


def result_of(process: subprocess.Popen, timeout_s: float) -> dict:
    """The worker's JSON result, from its result file once it has exited."""
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return {"error": f"{mode_of(process)} worker did not finish within {timeout_s:.0f} s: {stderr_tail(process)}"}
    try:
        with open(process.result_path) as result:  # type: ignore[attr-defined]
            return json.load(result)
    except (OSError, json.JSONDecodeError):
        return {"error": f"{mode_of(process)} worker exited with code {process.returncode} and no result: "
                         f"{stderr_tail(process)}"}


def mode_of(process: subprocess.Popen) -> str:
    return json.loads(process.args[2])["mode"]  # type: ignore[index]


def stop_all(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.err_file.close()  # type: ignore[attr-defined]
        with contextlib.suppress(OSError):
            os.unlink(process.result_path)  # type: ignore[attr-defined]


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)], request_timeout=30)[topic].result(timeout=60)


def high_watermarks(bootstrap: str, topic: str, partitions: int) -> list[int]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "kbroker-bench-hw", "enable.auto.commit": False})
    try:
        return [consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in range(partitions)]
    finally:
        consumer.close()


def run_connections(connections: int, bootstrap: str, broker_pids: list[int], topic: str) -> dict:
    """One sample of the scenario (see the module's docstring); an {"error": ...} when it did not hold."""
    plan = Plan.for_connections(connections)
    create_topic(bootstrap, topic, plan.partitions)
    base = {"bootstrap": bootstrap, "topic": topic, "partitions": plan.partitions}
    group_names = [f"{topic}-g{g}" for g in range(plan.groups)]
    processes: list[subprocess.Popen] = []
    try:
        groups = [worker({**base, "mode": "group-members", "groups": group_names[i:i + GROUPS_PER_PROCESS],
                          "members": plan.members_per_group})
                  for i in range(0, plan.groups, GROUPS_PER_PROCESS)]
        processes += groups
        for process in groups:
            if (line := read_line(process, READY_TIMEOUT_S)) != "ready":
                return {"error": f"group members not settled within {READY_TIMEOUT_S:.0f} s ({line or 'no answer'}): "
                                 f"{result_of(process, 5).get('error', '')}"}
        start_at = time.time() + CONNECT_ALLOWANCE_S
        ids = list(range(plan.connections))
        producers = [worker({**base, "mode": "produce-connections", "ids": ids[i::PRODUCER_PROCESSES],
                             "connections": plan.connections, "ticks": plan.ticks, "start_at": start_at})
                     for i in range(min(PRODUCER_PROCESSES, plan.connections))]
        rebalance = worker({**base, "mode": "rebalance-group", "group": f"{topic}-rebalance",
                            "members": plan.rebalance_members})
        processes += [*producers, rebalance]
        time.sleep(max(0.0, start_at - time.time()))
        cpu0, wait0, t0 = cpu_seconds_of(broker_pids), runqueue_wait_s(broker_pids), time.perf_counter()
        rss = watch_rss(broker_pids, producers, plan.duration_s + SLACK_S)
        seconds = time.perf_counter() - t0
        cpu, wait = cpu_seconds_of(broker_pids), runqueue_wait_s(broker_pids)
        produced = [result_of(p, plan.duration_s + SLACK_S) for p in producers]
        rebalanced = result_of(rebalance, READY_TIMEOUT_S + SLACK_S)
        acked = sum(part.get("acked", 0) for part in produced)
        for process in groups:
            process.stdin.write(f"{acked}\n")
            process.stdin.flush()
        consumed = [result_of(p, DRAIN_TIMEOUT_S + SLACK_S) for p in groups]
    finally:
        stop_all(processes)
    errors = [part["error"] for part in (*produced, rebalanced, *consumed) if "error" in part]
    if errors:
        return {"error": "; ".join(errors)}
    problems = check_produced(plan, produced, high_watermarks(bootstrap, topic, plan.partitions))
    problems += check_groups(plan, consumed, acked) + check_rebalance(plan, rebalanced)
    if problems:
        return {"error": "verification failed: " + "; ".join(problems)}
    latencies = sorted(value for part in produced for value in part["latencies_ms"])
    broker_cpu = None if cpu0 is None or cpu is None else cpu - cpu0
    return {
        "seconds": seconds,
        "connections": plan.connections,
        "records": acked,
        "groups": plan.groups,
        "members": plan.groups * plan.members_per_group,
        "rebalance_members": plan.rebalance_members,
        "partitions": plan.partitions,
        "broker_cpu_s": broker_cpu,
        "broker_cpu_pct": None if broker_cpu is None else 100 * broker_cpu / seconds,
        "broker_rss_mib": rss,
        "broker_runqueue_wait_s": None if wait0 is None or wait is None else wait - wait0,
        **{f"p{name}_ms": percentile(latencies, q) for name, q in PERCENTILES},
        "max_ms": latencies[-1],
        "rebalance_join_ms": rebalanced["join_ms"],
        "rebalance_leave_ms": rebalanced["leave_ms"],
        "client_cpu_s": sum(part["client_cpu_s"] for part in (*produced, rebalanced, *consumed)),
    }


def runqueue_wait_s(pids: list[int]) -> float | None:
    """Seconds the processes' threads were runnable but waiting for a CPU (the second field of
    Linux's /proc/<pid>/task/<tid>/schedstat): on a shared two-core machine a request's latency is
    mostly this wait, not the broker's own work, and this tells the two apart."""
    total, seen = 0, False
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as stat:
                    total += int(stat.read().split()[1])
                    seen = True
            except (OSError, IndexError, ValueError):
                continue
    return total / 1e9 if seen else None


def watch_rss(broker_pids: list[int], producers: list[subprocess.Popen], timeout_s: float) -> float | None:
    """The broker's largest RSS, read every RSS_POLL_S until every producer has exited (each
    does once its last request is answered)."""
    largest = None
    deadline = time.monotonic() + timeout_s
    while any(p.poll() is None for p in producers) and time.monotonic() < deadline:
        rss = rss_mib_of(broker_pids)
        if rss is not None:
            largest = rss if largest is None else max(largest, rss)
        time.sleep(RSS_POLL_S)
    return largest


def check_produced(plan: Plan, produced: list[dict], watermarks: list[int]) -> list[str]:
    problems = []
    expected = plan.connections * plan.ticks
    acked = sum(part["acked"] for part in produced)
    if acked != expected:
        problems.append(f"{acked:,} of {expected:,} requests acknowledged")
    refused = {code: n for part in produced for code, n in part["error_codes"].items()}
    if refused:
        problems.append(f"produce error codes {refused}")
    for partition, hw in enumerate(watermarks):
        offsets = sorted(o for part in produced for o in part["offsets"].get(str(partition), []))
        if offsets != list(range(hw)):
            problems.append(f"partition {partition}: {len(offsets)} acknowledged offsets, high watermark {hw}")
    return problems


def check_groups(plan: Plan, consumed: list[dict], acked: int) -> list[str]:
    problems = []
    for part in consumed:
        for group, seen in part["groups"].items():
            if seen["records"] != acked:
                problems.append(f"group {group} read {seen['records']:,} records of {acked:,}")
            if seen["rebalances_after_ready"]:
                problems.append(f"group {group} rebalanced {seen['rebalances_after_ready']} time(s) under load")
    if sum(len(part["groups"]) for part in consumed) != plan.groups:
        problems.append("not every group reported")
    return problems


def check_rebalance(plan: Plan, rebalanced: dict) -> list[str]:
    if rebalanced.get("join_ms") is None or rebalanced.get("leave_ms") is None:
        return [f"the {plan.rebalance_members}-member group's rebalances did not complete: {rebalanced}"]
    return []


PERCENTILES = (("50", 0.50), ("99", 0.99), ("999", 0.999))


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = min(len(sorted_values), max(1, math.ceil(q * len(sorted_values))))
    return sorted_values[rank - 1]


# ------------------------------------------------------------------------------ report


CONNECTIONS_KEYS = ("connections", "records", "groups", "members", "rebalance_members", "partitions", "broker_cpu_pct",
                    "broker_rss_mib", "broker_runqueue_wait_s", "p50_ms", "p99_ms", "p999_ms", "max_ms", "rebalance_join_ms", "rebalance_leave_ms")


def connections_fields(good: list[dict], median_of) -> dict:
    """bench_report's summary of the scenario: medians, and whether it held with p99 <= 20 ms."""
    fields = {key: median_of(good, key) for key in CONNECTIONS_KEYS}
    fields["target_p99_ms"] = TARGET_P99_MS
    fields["within_target"] = bool(good) and fields["p99_ms"] is not None and fields["p99_ms"] <= TARGET_P99_MS
    return fields


def connections_line(summary: dict, fmt) -> str:
    return (f"{'':14}{fmt(summary['connections'], ',.0f')} connections, {fmt(summary['records'], ',.0f')} records acknowledged; "
            f"{fmt(summary['members'], ',.0f')} members in {fmt(summary['groups'], ',.0f')} groups stable; "
            f"broker CPU {fmt(summary['broker_cpu_pct'])}% of a core (and {fmt(summary['broker_runqueue_wait_s'], ',.1f')} s "
            f"waiting for one), RSS {fmt(summary['broker_rss_mib'])} MiB; "
            f"{fmt(summary['rebalance_members'], ',.0f')}-member group rebalance: join {fmt(summary['rebalance_join_ms'], ',.0f')} ms, "
            f"leave {fmt(summary['rebalance_leave_ms'], ',.0f')} ms; p99 target <= {TARGET_P99_MS:.0f} ms: "
            f"{'met' if summary['within_target'] else 'MISSED'}")


# ------------------------------------------------------------------------------ producer worker


class ProduceConnection:
    """One connection's Produce request, encoded once; only the correlation id changes."""

    CORRELATION = struct.Struct(">i")
    CORRELATION_AT = 8  # size (4), api key (2), api version (2)

    def __init__(self, ident: int, topic: str, partition: int) -> None:
        from kbroker.protocol.messages import request_codec
        from kbroker.testing import wire
        from kbroker.testing.batches import producer_batch

        value = (f"connection {ident} ".encode() + b"." * RECORD_BYTES)[:RECORD_BYTES]
        # Stamped now: a stale timestamp would be older than retention.ms, and the broker's first
        # retention pass (log.initial.task.delay.ms, 30 s, inside the run) would delete the records.
        body = request_codec(0, PRODUCE_VERSION).encode({
            "transactional_id": None, "acks": ACKS, "timeout_ms": 30_000,
            "topic_data": [{"name": topic, "partition_data": [{"index": partition, "records": producer_batch([value], timestamp=int(time.time() * 1000))}]}],
        })
        header = wire.request_header(0, PRODUCE_VERSION, 0, f"bench-connection-{ident}", True)
        self.frame = bytearray(wire.frame(header + body))
        self.partition = partition

    def request(self, correlation_id: int) -> bytearray:
        self.CORRELATION.pack_into(self.frame, self.CORRELATION_AT, correlation_id)
        return self.frame


def produce_answer(payload: bytes) -> tuple[int, int, int]:
    """(correlation id, error code, base offset) of a one-partition Produce answer."""
    from kbroker.protocol.messages import response_codec

    (correlation_id,) = struct.unpack_from(">i", payload)
    body, _ = response_codec(0, PRODUCE_VERSION).decode(payload, 5)  # after the header's empty tagged fields
    answer = body["responses"][0]["partition_responses"][0]
    return correlation_id, answer["error_code"], answer["base_offset"]


async def produce_every_second(ident: int, spec: dict, start_at: float, results: dict) -> None:
    connection = ProduceConnection(ident, spec["topic"], ident % spec["partitions"])
    host, port = spec["bootstrap"].rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        phase = ident / spec["connections"]
        for tick in range(spec["ticks"]):
            await asyncio.sleep(max(0.0, start_at + phase + tick - time.time()))
            sent = time.perf_counter()
            writer.write(connection.request(tick))
            size = struct.unpack(">i", await reader.readexactly(4))[0]
            correlation_id, error_code, base_offset = produce_answer(await reader.readexactly(size))
            results["latencies_ms"].append((time.perf_counter() - sent) * 1000)
            if correlation_id != tick:
                raise RuntimeError(f"connection {ident}: answer {correlation_id} for request {tick}")
            if error_code:
                results["error_codes"][str(error_code)] = results["error_codes"].get(str(error_code), 0) + 1
                continue
            results["acked"] += 1
            results["offsets"].setdefault(str(connection.partition), []).append(base_offset)
    finally:
        writer.close()


async def produce_connections(spec: dict) -> dict:
    results: dict = {"acked": 0, "error_codes": {}, "offsets": {}, "latencies_ms": []}
    cpu0 = time.process_time()
    tasks = [asyncio.create_task(produce_every_second(ident, spec, spec["start_at"], results)) for ident in spec["ids"]]
    await asyncio.gather(*tasks)
    return {**results, "client_cpu_s": time.process_time() - cpu0}


# ------------------------------------------------------------------------------ group workers


class Member:
    """One aiokafka consumer in a group, with the times of its assignments."""

    def __init__(self, spec: dict, group: str, index: int, **settings) -> None:
        from aiokafka import AIOKafkaConsumer
        from aiokafka.abc import ConsumerRebalanceListener

        member = self

        class Listener(ConsumerRebalanceListener):
            async def on_partitions_revoked(self, _revoked) -> None:
                member.assignment = frozenset()

            async def on_partitions_assigned(self, assigned) -> None:
                member.assignment = frozenset(tp.partition for tp in assigned)
                member.assigned_at.append(time.monotonic())

        self.group = group
        self.assignment: frozenset[int] = frozenset()
        self.assigned_at: list[float] = []
        self.records = 0
        self.consumer = AIOKafkaConsumer(bootstrap_servers=spec["bootstrap"], group_id=group,
                                         client_id=f"{group}-{index}", **settings)
        self.listener = Listener()
        self.topic = spec["topic"]
        self.task: asyncio.Task | None = None

    async def start(self) -> None:
        await self.consumer.start()
        self.consumer.subscribe([self.topic], listener=self.listener)
        self.task = asyncio.create_task(self.consume())

    async def consume(self) -> None:
        while True:
            batches = await self.consumer.getmany(timeout_ms=1000)
            self.records += sum(len(records) for records in batches.values())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
        await self.consumer.stop()


def settled(members: list[Member], partitions: int, since: float = 0.0) -> bool:
    """Every member assigned after `since`, the assignments covering the partitions once each."""
    if not all(m.assigned_at and m.assigned_at[-1] >= since and m.assignment for m in members):
        return False
    owned = [p for m in members for p in m.assignment]
    return sorted(owned) == list(range(partitions))


async def until(condition, timeout_s: float, poll_s: float = 0.005) -> float | None:
    """The monotonic time `condition` first held, or None after the timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return time.monotonic()
        await asyncio.sleep(poll_s)
    return None


async def group_members(spec: dict) -> dict:
    """Members of several groups: "ready" once all settle; then, given the acknowledged count on
    stdin, read until every group has read that many (or the drain time passes) and report."""
    cpu0 = time.process_time()
    members = [Member(spec, group, i, auto_offset_reset="earliest", **MEMBER_FETCH) for group in spec["groups"] for i in range(spec["members"])]
    await asyncio.gather(*(m.start() for m in members))
    by_group = {group: [m for m in members if m.group == group] for group in spec["groups"]}
    if await until(lambda: all(settled(g, spec["partitions"]) for g in by_group.values()), READY_TIMEOUT_S) is None:
        raise RuntimeError("groups did not settle")
    assignments_at_ready = {id(m): len(m.assigned_at) for m in members}
    print("ready", flush=True)
    acked = int(await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline))
    await until(lambda: all(sum(m.records for m in g) >= acked for g in by_group.values()), DRAIN_TIMEOUT_S, 0.1)
    await asyncio.sleep(0.5)  # what a rebalance would have delivered twice arrives too
    report = {group: {"records": sum(m.records for m in g),
                      "rebalances_after_ready": max(len(m.assigned_at) - assignments_at_ready[id(m)] for m in g)}
              for group, g in by_group.items()}
    await asyncio.gather(*(m.stop() for m in members))
    return {"groups": report, "client_cpu_s": time.process_time() - cpu0}


async def rebalance_group(spec: dict) -> dict:
    """All but one member join and settle; the last joins (timed), then leaves (timed)."""
    cpu0 = time.process_time()
    count, partitions = spec["members"], spec["partitions"]
    members = [Member(spec, spec["group"], i, auto_offset_reset="latest", heartbeat_interval_ms=REBALANCE_HEARTBEAT_MS)
               for i in range(count)]
    first, last = members[:-1], members[-1]
    await asyncio.gather(*(m.start() for m in first))
    if await until(lambda: settled(first, partitions), READY_TIMEOUT_S) is None:
        raise RuntimeError(f"{count - 1} members did not settle")
    joined = time.monotonic()
    await last.start()
    done = await until(lambda: settled(members, partitions, joined), READY_TIMEOUT_S)
    join_ms = None if done is None else (done - joined) * 1000
    left = time.monotonic()
    await last.stop()
    done = await until(lambda: settled(first, partitions, left), READY_TIMEOUT_S)
    leave_ms = None if done is None else (done - left) * 1000
    await asyncio.gather(*(m.stop() for m in first))
    return {"join_ms": join_ms, "leave_ms": leave_ms, "client_cpu_s": time.process_time() - cpu0}


WORKERS = {"produce-connections": produce_connections, "group-members": group_members, "rebalance-group": rebalance_group}


def main() -> int:
    spec = json.loads(sys.argv[1])
    try:
        import uvloop  # the clients' CPU competes with the broker's on two cores: the cheaper loop
        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    try:
        result = runner(WORKERS[spec["mode"]](spec))
        code = 0
    except Exception as exc:  # reported to the orchestrator as this sample's failure
        result, code = {"error": f"{spec['mode']}: {type(exc).__name__}: {exc}"}, 1
    with open(spec["result_path"], "w") as out:
        json.dump(result, out)
    return code


if __name__ == "__main__":
    sys.exit(main())
