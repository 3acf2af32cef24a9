#!/usr/bin/env python3
"""scripts/chaos: a Jepsen-style fault-injection run against three kbroker processes and a real
ZooKeeper (issue 16), with a checker at the end.

    scripts/chaos --mode ci                     # every nemesis once, a few minutes (compat-tests/test_chaos.py)
    scripts/chaos --mode soak --duration 30m    # nemeses at random until the time is up
    scripts/chaos --mode ci --seed 7            # replays seed 7's schedule (targets, hold times, order)

The cluster (chaos_cluster.py) runs in network namespaces made for the run (chaos_net.py) when
it can, else on 127.0.0.1 without the network nemeses (the reason is printed). While idempotent
acks=all producers, a transactional producer (its own topic) and a consumer group committing
offsets run (chaos_workload.py), nemeses (chaos_nemesis.py) kill, pause, partition, drop
packets, fill a disk, fail one with EIO (chaos_fuse.py) and restart; each is healed and the
cluster whole again (full ISRs) before the next. At the end everything is healed, the producers
flushed, the group caught up, every partition read back, and the checker (chaos_checker.py)
counts lost, misplaced, duplicated and reordered records, committed transactions missing or
aborted ones visible to read_committed, lost or impossible commits, replicas that diverge
below the high watermark, and the unavailability window of each fault. It prints a table, then
JSON lines, and exits 1 on any violation (2 when the harness itself failed). It touches only its
work directory (kept on failure or with --keep), the processes it started (stopped by pid) and
the namespaces and bridge it created.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from chaos_checker import (
    Fault,
    check_group,
    check_records,
    check_transactions,
    check_txn_offsets,
    replica_divergence,
    unavailability,
)
from chaos_cluster import BROKER_IDS, ChaosCluster
from chaos_nemesis import NEMESES, Nemesis, skipped
from chaos_net import make_network
from chaos_workload import (
    ConsumerWorker,
    ProducerWorker,
    TransactionalProducerWorker,
    group_committed,
    high_watermarks,
    read_partitions,
    workload_notes,
)
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from kbroker.testing.processes import tail
from kbroker.testing.waiting import eventually

TOPIC = "chaos"
TXN_TOPIC = "chaos-txn"  # the transactional producers' own topic, read back with read_committed
GROUP = "chaos-group"
PARTITIONS = 6
CI_SEED = 16  # CI replays one schedule; a soak draws a fresh seed and prints it
HEAL_TIMEOUT_S = 120.0
DRAIN_TIMEOUT_S = 120.0
DIVERGENCE_TIMEOUT_S = 60.0
LOG_TAIL_LINES = 60
QUERY_ATTEMPTS = 3  # the checker's read-backs (high watermarks, offsets, the log)
_T = TypeVar("_T")


@dataclass(frozen=True)
class Mode:
    producers: int
    rate: float  # records per second per producer
    txn_producers: int
    txn_rate: float  # records per second per transactional producer (in transactions of TXN_RECORDS)
    consumers: int
    gap_s: tuple[float, float]  # quiet time before each fault


MODES = {
    "ci": Mode(producers=2, rate=150, txn_producers=1, txn_rate=40, consumers=2, gap_s=(2, 4)),
    "soak": Mode(producers=3, rate=200, txn_producers=2, txn_rate=40, consumers=2, gap_s=(5, 15)),
}


@dataclass
class Outcome:
    faults: list[Fault] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)


def parse_duration(text: str) -> float:
    """Seconds from `90`, `90s`, `30m` or `1h`."""
    units = {"s": 1, "m": 60, "h": 3600}
    if text and text[-1] in units:
        return float(text[:-1]) * units[text[-1]]
    return float(text)


class Run:
    def __init__(self, args: argparse.Namespace, seed: int, workdir: Path) -> None:
        self.args = args
        self.mode = MODES[args.mode]
        self.rng = random.Random(seed)
        self.seed = seed
        self.workdir = workdir
        self.t0 = time.monotonic()
        self.outcome = Outcome()
        self.producers: list[ProducerWorker] = []
        self.consumers: list[ConsumerWorker] = []
        self.txn_producers: list[TransactionalProducerWorker] = []
        self.cluster: ChaosCluster | None = None

    def say(self, line: str) -> None:
        print(f"[{time.monotonic() - self.t0:7.1f}s] {line}", flush=True)

    # -- the run ---------------------------------------------------------------------------------------
    def execute(self) -> Outcome:
        network = make_network(["zk", *(f"b{b}" for b in BROKER_IDS)], not self.args.no_netns)
        try:
            cluster = self.cluster = ChaosCluster(self.workdir, network, TOPIC, PARTITIONS)
        except BaseException:
            network.close()
            raise
        where = ", ".join(f"{n.name} {n.host}:{n.port}" for n in network.nodes.values())
        self.say(f"network: {type(network).__name__} ({where})")
        try:
            cluster.start()
            self._create_topic(cluster)
            self._start_workload(cluster)
            eventually(lambda: self._acked() > 0 and any(c.commits for c in self.consumers),
                       what="the first acknowledged record and commit", timeout=60)
            cluster.wait_healthy(HEAL_TIMEOUT_S)
            self.say(f"cluster up, workload running ({self._acked()} acked)")
            self._faults(cluster)
            self._heal(cluster, "end of the faults")
            self._finish(cluster)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C must not cut the clean-up short
                signal.signal(sig, signal.SIG_IGN)
            for worker in [*self.producers, *self.consumers, *self.txn_producers]:
                worker.stop()
            cluster.close()
        return self.outcome

    def print_log_tails(self, lines: int = LOG_TAIL_LINES) -> None:
        """The end of each broker's output (a stuck one's thread stacks included), for a failed run."""
        if self.cluster is None:
            return
        for broker_id, broker in sorted(self.cluster.kafka.brokers.items()):
            print(f"--- broker {broker_id}, last {lines} lines of {broker.output_path}:\n"
                  f"{tail(broker.output_path, lines)}", file=sys.stderr)

    def _create_topic(self, cluster: ChaosCluster) -> None:
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
        topics = [NewTopic(name, PARTITIONS, len(BROKER_IDS), config={"min.insync.replicas": "2"})
                  for name in (TOPIC, TXN_TOPIC)]
        for future in admin.create_topics(topics, operation_timeout=30).values():
            future.result(60)
        cluster.wait(lambda: all(cluster.leader(p) in BROKER_IDS for p in range(PARTITIONS)),
                     f"leaders for {TOPIC}'s partitions")

    def _start_workload(self, cluster: ChaosCluster) -> None:
        self.producers = [ProducerWorker(i, cluster.bootstrap, TOPIC, PARTITIONS, self.mode.rate)
                          for i in range(self.mode.producers)]
        self.consumers = [ConsumerWorker(i, cluster.bootstrap, TOPIC, GROUP) for i in range(self.mode.consumers)]
        self.txn_producers = [TransactionalProducerWorker(i, cluster.bootstrap, TXN_TOPIC, PARTITIONS, self.mode.txn_rate)
                              for i in range(self.mode.txn_producers)]
        for worker in [*self.producers, *self.consumers, *self.txn_producers]:
            worker.start()

    def _acked(self) -> int:
        return sum(len(p.stats.acks) for p in self.producers)

    # -- faults -----------------------------------------------------------------------------------------
    def _faults(self, cluster: ChaosCluster) -> None:
        reasons = skipped(cluster)
        self.outcome.notes.update({f"skipped {name}": reason for name, reason in reasons.items()})
        for name, reason in reasons.items():
            self.say(f"nemesis {name} skipped: {reason}")
        runnable = [n for n in NEMESES if n.name not in reasons and (not self.args.nemesis or n.name in self.args.nemesis)]
        for nemesis in self._schedule(runnable):
            time.sleep(self.rng.uniform(*self.mode.gap_s))
            self._one_fault(cluster, nemesis)

    def _schedule(self, runnable: list[Nemesis]):
        """CI: every runnable nemesis once, in a seeded order. Soak: seeded random picks until the
        duration is up."""
        if self.args.mode == "ci":
            order = list(runnable)
            self.rng.shuffle(order)
            yield from order
            return
        deadline = self.t0 + parse_duration(self.args.duration)
        while time.monotonic() < deadline:
            yield self.rng.choice(runnable)

    def _one_fault(self, cluster: ChaosCluster, nemesis: Nemesis) -> None:
        self.say(f"nemesis {nemesis.name} ...")
        try:
            fault = nemesis.run(cluster, self.rng)
        except AssertionError as failure:  # a wait inside the nemesis ran out: the cluster did not recover
            # BrokerFailed's message carries the tail of the broker's log (with its threads' stacks:
            # kill_stuck); the violation keeps its first line.
            self.outcome.violations.append(f"not_recovered: during {nemesis.name}: {str(failure).splitlines()[0]}")
            self.say(f"nemesis {nemesis.name} FAILED: {failure}")
        else:
            self.outcome.faults.append(fault)
            self.say(f"nemesis {fault.nemesis} on {fault.target}: held {fault.healed - fault.started:.1f}s")
        self._heal(cluster, f"after {nemesis.name}")

    def _heal(self, cluster: ChaosCluster, when: str) -> None:
        try:
            cluster.heal_everything()
            took = cluster.wait_healthy(HEAL_TIMEOUT_S)
            self.say(f"cluster whole again {when} ({took:.1f}s, {self._acked()} acked)")
        except AssertionError as failure:  # a broker that would not start again included: go on to the checker
            self.outcome.violations.append(f"not_healed: {when}: {str(failure).splitlines()[0]}")
            self.say(f"cluster NOT whole {when}: {failure}")

    # -- the end: quiesce, read back, check --------------------------------------------------------------
    def _finish(self, cluster: ChaosCluster) -> None:
        for producer in [*self.producers, *self.txn_producers]:
            producer.stop()
        for producer in [*self.producers, *self.txn_producers]:
            producer.join(timeout=DRAIN_TIMEOUT_S + 60)
        ends = self._query("high watermarks", high_watermarks, cluster.bootstrap, TOPIC, PARTITIONS)
        self.say(f"producers flushed; high watermarks {ends}")
        self._drain_group(ends)
        committed = self._query("the group's offsets", group_committed, cluster.bootstrap, TOPIC, GROUP, PARTITIONS)
        log = self._query("the log", read_partitions, cluster.bootstrap, TOPIC, ends)
        acks = [a for p in self.producers for a in p.stats.acks]
        record_counts, record_violations = check_records(acks, log)
        consumed = [c for member in self.consumers for c in member.consumed]
        commits = [c for member in self.consumers for c in member.commits]
        group_counts, group_violations = check_group(consumed, commits, committed, log)
        diverged = self._divergence(cluster, ends)
        txn_counts, txn_violations = self._check_transactions(cluster)
        self.outcome.counts.update(txn_counts)
        self.outcome.violations += txn_violations
        self.outcome.counts.update(record_counts)
        self.outcome.counts.update(group_counts)
        self.outcome.counts.update({
            "sent": sum(p.stats.sent for p in self.producers),
            "failed": sum(sum(p.stats.failed.values()) for p in self.producers),
            "unflushed": sum(p.unflushed for p in self.producers),
            "producer_fatal": sum(len(p.stats.fatal) for p in self.producers),
            "diverged_partitions": len(diverged),
            "faults": len(self.outcome.faults),
        })
        self.outcome.violations += record_violations + group_violations + diverged
        self.outcome.violations += [f"worker_crashed: {w.name}: {w.crashed}"
                                    for w in [*self.producers, *self.consumers, *self.txn_producers] if w.crashed]
        self._notes()
        if record_counts["acked"] == 0:
            self.outcome.violations.append("no_acks: not one record was acknowledged")

    def _check_transactions(self, cluster: ChaosCluster) -> tuple[dict[str, int], list[str]]:
        """read_committed isolation on the transactional topic (nothing when none ran)."""
        if not self.txn_producers:
            return {}, []
        stats = [p.stats for p in self.txn_producers]
        ends = self._query("high watermarks", high_watermarks, cluster.bootstrap, TXN_TOPIC, PARTITIONS)
        log = self._query("the log", read_partitions, cluster.bootstrap, TXN_TOPIC, ends)
        counts, violations = check_transactions([r for s in stats for r in s.committed], [r for s in stats for r in s.aborted],
                                                [r for s in stats for r in s.indeterminate], log)
        if counts["txn_committed"] == 0:
            violations.append("no_commits: not one transaction was committed")
        counts.update(txn_offset_commits=0, txn_offsets_wrong=0)
        for worker in self.txn_producers:
            final = self._query("a transactional group's offsets", group_committed, cluster.bootstrap, TXN_TOPIC, worker.group,
                                PARTITIONS)[worker.offsets_partition.partition]
            offset_counts, offset_violations = check_txn_offsets(worker.stats.marks, final)
            for key, value in offset_counts.items():
                counts[key] += value
            violations += offset_violations
        return counts, violations

    def _query(self, what: str, read: Callable[..., _T], *args: object) -> _T:
        """One of the checker's read-backs, tried again (up to QUERY_ATTEMPTS times) when the client
        gives up on it: a time-out of the client's is no finding about the data. Each failure is said
        and kept in the notes, so a broker that stops answering still shows."""
        for attempt in range(1, QUERY_ATTEMPTS + 1):
            try:
                return read(*args)
            except (KafkaException, RuntimeError) as failure:
                self.outcome.notes[f"checker query failed: {what}, attempt {attempt}"] = str(failure)
                self.say(f"reading {what} failed (attempt {attempt} of {QUERY_ATTEMPTS}): {failure}")
                if attempt == QUERY_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    def _drain_group(self, ends: dict[int, int]) -> None:
        def consumed_ends() -> dict[int, int]:
            reached: dict[int, int] = defaultdict(int)
            for member in self.consumers:
                for c in list(member.consumed):
                    reached[c.partition] = max(reached[c.partition], c.offset + 1)
            return reached

        try:
            eventually(lambda: all(consumed_ends()[p] >= end for p, end in ends.items()),
                       what="the group to consume up to the high watermarks", timeout=DRAIN_TIMEOUT_S, interval=0.5)
        except AssertionError:
            self.outcome.violations.append(f"group_stuck: consumed ends {dict(consumed_ends())} below {ends}")
        for member in self.consumers:
            member.stop()
        for member in self.consumers:
            member.join(timeout=60)

    def _divergence(self, cluster: ChaosCluster, ends: dict[int, int]) -> list[str]:
        found = []
        for partition, end in ends.items():
            last: list[str | None] = [None]

            def identical(p: int = partition, e: int = end, seen: list[str | None] = last) -> bool:
                seen[0] = replica_divergence(cluster.replica_logs(p), e)
                return seen[0] is None
            try:
                eventually(identical, what=f"{TOPIC}-{partition}'s replicas", timeout=DIVERGENCE_TIMEOUT_S,
                           interval=0.5)
            except AssertionError:
                found.append(f"diverged: {TOPIC}-{partition}: {last[0]}")
        return found

    def _notes(self) -> None:
        for note in workload_notes():
            self.outcome.notes["workload"] = note
        for producer in [*self.producers, *self.txn_producers]:
            for fatal in producer.stats.fatal:
                self.outcome.notes[f"producer fatal {fatal.split(':')[0]}"] = fatal
        errors = {
            "producer failures (indeterminate, not checked)": _summed(p.stats.failed for p in self.producers),
            "produce() calls refused by the client (retried)": _summed(p.stats.refused for p in self.producers),
            "commit errors (retried)": _summed(m.commit_errors for m in self.consumers),
            "transactional producer errors": _summed(p.stats.errors for p in self.txn_producers),
            "idempotent producers' recoveries (librdkafka debug eos)": _summed(p.stats.eos_events for p in self.producers),
        }
        self.outcome.notes.update({key: json.dumps(counts) for key, counts in errors.items() if counts})
        for producer in self.producers:  # the recoveries themselves: which partition and sequence
            if producer.stats.eos_lines:
                self.outcome.notes[f"librdkafka eos lines of {producer.name}"] = " | ".join(producer.stats.eos_lines)


def _summed(counters: Iterable[dict[str, int]]) -> dict[str, int]:
    """Error name -> count, added up over the workers."""
    total: dict[str, int] = defaultdict(int)
    for counter in counters:
        for name, count in counter.items():
            total[name] += count
    return dict(total)


# -- the report ------------------------------------------------------------------------------------------
def report(run: Run, seconds: float) -> None:
    outcome = run.outcome
    print(f"\nchaos {run.args.mode}: seed {run.seed}, {len(outcome.faults)} faults, {seconds:.0f} s")
    counts = outcome.counts
    for title, keys in (("records", ["sent", "acked", "acked_without_offset", "failed", "unflushed", "in_log", "lost", "misplaced",
                                     "duplicated", "reordered", "producer_fatal"]),
                        ("group", ["consumed", "commits_acked", "commit_lost", "committed_beyond_consumed",
                                   "skipped_below_commit", "consumed_not_in_log"]),
                        ("txn", ["txn_committed", "txn_aborted", "txn_indeterminate", "txn_in_log", "txn_missing",
                                 "txn_aborted_visible", "txn_duplicated", "txn_reordered", "txn_offset_commits",
                                 "txn_offsets_wrong"]),
                        ("replicas", ["diverged_partitions"])):
        print(f"  {title:9}" + "  ".join(f"{k} {counts.get(k, '-')}" for k in keys))
    windows = unavailability(outcome.faults, [a for p in run.producers for a in p.stats.acks], PARTITIONS, run.t0)
    if windows:
        columns = ["at_s", "held_s", "first_ack_s", "all_partitions_s", "longest_gap_s"]
        print(f"\n  {'nemesis':20} {'target':60}" + "".join(f" {c:>16}" for c in columns))
        for w in windows:
            print(f"  {w['nemesis']:20} {w['target']:60}" + "".join(f" {str(w[c]):>16}" for c in columns))
    for key, note in outcome.notes.items():
        print(f"  note: {key}: {note}")
    for violation in outcome.violations:
        print(f"  VIOLATION {violation}")
    print(f"  result: {'FAIL' if outcome.violations else 'ok'}\n")
    lines = [{"kind": "summary", "mode": run.args.mode, "seed": run.seed, "seconds": round(seconds, 1),
              "violations": len(outcome.violations), **counts}]
    lines += [{"kind": "fault", **w} for w in windows]
    lines += [{"kind": "note", "key": k, "note": n} for k, n in outcome.notes.items()]
    lines += [{"kind": "violation", "detail": v} for v in outcome.violations]
    for line in lines:
        print(json.dumps(line), flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/chaos", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=sorted(MODES), default="ci",
                        help="ci: every nemesis once (a few minutes); soak: random nemeses for --duration")
    parser.add_argument("--duration", default="30m", help="soak length: 90s, 30m, 1h (default 30m)")
    parser.add_argument("--seed", type=int, help=f"schedule seed (ci default {CI_SEED}; soak: random, printed)")
    parser.add_argument("--workdir", type=Path, help="where logs and data go (default: a new temporary dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory after a passing run")
    parser.add_argument("--no-netns", action="store_true", help="run on 127.0.0.1 without network nemeses")
    parser.add_argument("--nemesis", action="append", choices=[n.name for n in NEMESES],
                        help="only this nemesis (repeatable; default: all), e.g. to soak one fault")
    return parser.parse_args(argv)


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # kazoo (the runner's own znode reader) logs every dropped connection while ZooKeeper is down.
    logging.getLogger("kazoo").setLevel(logging.ERROR)
    seed = args.seed if args.seed is not None else (CI_SEED if args.mode == "ci" else random.randrange(2**31))
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix=f"kbroker-chaos-{seed}-"))
    workdir.mkdir(parents=True, exist_ok=True)
    for sig in (signal.SIGINT, signal.SIGTERM):  # both clean up (SIGINT too when started in the background)
        signal.signal(sig, _interrupt)
    run = Run(args, seed, workdir)
    run.say(f"chaos --mode {args.mode} --seed {seed}"
            + (f" --duration {args.duration}" if args.mode == "soak" else "") + f"; work dir {workdir}")
    try:
        run.execute()
    except KeyboardInterrupt:
        print(f"chaos: interrupted; every process stopped; work dir kept: {workdir}", file=sys.stderr)
        return 130
    except Exception:
        run.print_log_tails()
        traceback.print_exc()  # after the tails: a caller that keeps only the output's end still sees it
        print(f"chaos: the harness failed (seed {seed}); work dir kept: {workdir}", file=sys.stderr)
        return 2
    report(run, time.monotonic() - run.t0)
    if run.outcome.violations or args.keep:
        print(f"chaos: work dir kept: {workdir}")
    elif args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if run.outcome.violations else 0


if __name__ == "__main__":
    sys.exit(main())
