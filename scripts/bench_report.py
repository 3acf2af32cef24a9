"""Turns scripts/bench's per-run samples into summaries (medians), JSON lines and text tables.

Each result also carries `spread`: per headline figure (MB/s, p50/p99, start ms...), its min,
median and max over the samples and the samples themselves, printed under the target's line, so
a reader can tell a 5% difference from the noise; ratios are of medians, and say whether the two
targets' sample ranges overlap.

Plain functions over dicts; touches no process, socket or file. MB is 10^6 bytes of record
values (keys, headers and framing not counted); every throughput is also given as a fraction of
the loopback bandwidth measured in the same run.
"""

from __future__ import annotations

import json
import statistics

import bench_metadata
from bench_connections import connections_fields, connections_line
from bench_scenarios import Scenario

LATENCY_KEYS = ("p50_ms", "p99_ms", "p999_ms", "max_ms")


def median_of(samples: list[dict], key: str) -> float | None:
    values = [sample[key] for sample in samples if sample.get(key) is not None]
    return statistics.median(values) if values else None


def medians_per_broker(samples: list[dict], brokers: int, key: str = "broker_cpu_s_each") -> list[float | None]:
    """Per broker (broker.id order), the median over the samples of its entry in each sample's `key` list."""
    each = [sample[key] for sample in samples if len(sample.get(key) or []) == brokers]
    return [median_of([{"value": values[i]} for values in each], "value") for i in range(brokers)]


def summarize(scenario: Scenario, target: str, samples: list[dict], loopback_mb_s: float | None) -> dict:
    """One JSON-ready summary of a scenario on a target: medians over its successful runs, and
    the spread of each headline figure over them."""
    summary = medians(scenario, target, samples, loopback_mb_s)
    good = [sample for sample in samples if "error" not in sample]
    summary["spread"] = {metric: spread(sample_values(scenario, good, metric))
                         for metric, _ in HEADLINES.get(scenario.kind, [])}
    return summary


def sample_values(scenario: Scenario, good: list[dict], metric: str) -> list[float]:
    """A headline figure of each sample (MB/s from each sample's seconds)."""
    if metric == "mb_per_s":
        return [scenario.value_bytes / sample["seconds"] / 1e6 for sample in good if sample.get("seconds")]
    return [sample[metric] for sample in good if sample.get(metric) is not None]


def spread(values: list[float]) -> dict:
    return {"min": min(values, default=None), "median": statistics.median(values) if values else None,
            "max": max(values, default=None), "samples": values}


def medians(scenario: Scenario, target: str, samples: list[dict], loopback_mb_s: float | None) -> dict:
    """The summary's medians over the successful runs."""
    good = [sample for sample in samples if "error" not in sample]
    summary: dict = {
        "kind": "result",
        "target": target,
        "scenario": scenario.key,
        "type": scenario.kind,
        "title": scenario.title,
        "runs": len(good),
        "verified": len(good) == len(samples) and bool(samples),
        "errors": [sample["error"] for sample in samples if "error" in sample],
        "warnings": sorted({warning for sample in good for warning in sample.get("warnings", [])}),
    }
    summary.update(cluster_fields(scenario))
    if scenario.brokers > 1 and scenario.kind == "produce":  # per run: the ISR (verified to be all replicas), the leader
        summary["isr"] = [sample.get("isr") for sample in good]
        summary["leader"] = [sample.get("leader") for sample in good]
    if scenario.kind == "idle":
        return {**summary, **idle_fields(scenario, good)}
    if scenario.kind == "metadata":
        return {**summary, **bench_metadata.summary_fields(good)}
    if scenario.kind == "start":
        summary["start_ms"] = median_of(good, "start_ms")
        summary["all_start_ms"] = [sample["start_ms"] for sample in good]
        if any("floor_ms" in sample for sample in good):  # kbroker's (bench.measure_runtime_floor)
            summary["floor_ms"] = median_of(good, "floor_ms")
            summary["floor_rss_mib"] = median_of(good, "floor_rss_mib")
        return summary
    seconds = median_of(good, "seconds")
    summary.update(
        records=scenario.count,
        record_bytes=scenario.size,
        seconds=seconds,
        all_seconds=[sample["seconds"] for sample in good],
        broker_cpu_s=median_of(good, "broker_cpu_s"),
        client_cpu_s=median_of(good, "client_cpu_s"),
    )
    if scenario.brokers > 1:  # bench_cluster.py's replication_figures: what the denominator is
        for key in ("broker_cpu_s_each", "replicated_bytes_each", "broker_cpu_s_per_replicated_gb_each"):
            summary[key] = medians_per_broker(good, scenario.brokers, key)
    if scenario.kind == "e2e":
        summary.update({key: median_of(good, key) for key in LATENCY_KEYS})
        return summary
    if scenario.kind == "connections":
        return {**summary, **connections_fields(good, median_of)}
    mb_per_s = scenario.value_bytes / seconds / 1e6 if seconds else None
    summary.update(
        records_per_s=scenario.count / seconds if seconds else None,
        mb_per_s=mb_per_s,
        loopback_fraction=mb_per_s / loopback_mb_s if mb_per_s and loopback_mb_s else None,
    )
    if scenario.kind == "consume":
        summary.update(fetch_fields(scenario, good))
    if scenario.kind == "partitions":
        from bench_partitions import partitions_fields  # it imports this module

        summary.update(partitions_fields(scenario, good))
    if scenario.kind == "produce":
        summary.update(produce_fields(good), **cpu_per_mb(scenario, good))
    return summary


# From librdkafka's statistics, per consume sample (bench_client.fetch_stats): medians of these.
FETCH_KEYS = ("fetch_requests", "fetch_response_bytes", "fetch_rtt_avg_ms", "fetch_rtt_max_p99_ms",
              "partition_rx_ver_drops", "max_fetchq_cnt")


def fetch_fields(scenario: Scenario, good: list[dict]) -> dict:
    """The shape of the fetch responses as the client saw it, and what it cost the client per MB
    of record values: the response bytes per request and per value byte (framing, record
    overhead, and partial batches at the ends of responses that the client discards and fetches
    again), the client's and the broker's CPU seconds per MB."""
    fields: dict = {key: median_of(good, key) for key in FETCH_KEYS}
    requests, response_bytes = fields["fetch_requests"], fields["fetch_response_bytes"]
    fields.update(
        fetch_bytes_per_request=response_bytes / requests if response_bytes is not None and requests else None,
        fetch_bytes_per_value_byte=response_bytes / scenario.value_bytes if response_bytes is not None else None,
        **cpu_per_mb(scenario, good),
    )
    fields["client_minor_faults_per_mb"] = per_mb(scenario, median_of(good, "client_minor_faults"))
    return fields


def per_mb(scenario: Scenario, value: float | None) -> float | None:
    """`value` per MB (10^6 bytes) of the scenario's record values."""
    megabytes = scenario.value_bytes / 1e6
    return value / megabytes if value is not None and megabytes else None


def cpu_per_mb(scenario: Scenario, good: list[dict]) -> dict:
    """The client's and the broker's CPU seconds (medians) per MB of record values."""
    return {
        "client_cpu_s_per_mb": per_mb(scenario, median_of(good, "client_cpu_s")),
        "broker_cpu_s_per_mb": per_mb(scenario, median_of(good, "broker_cpu_s")),
    }


# From librdkafka's statistics, per produce sample (bench_client.produce_stats): medians of these,
# and of the per-sample ones also the samples in run order (to set them beside each sample's MB/s).
PRODUCE_KEYS = ("produce_requests", "produce_request_bytes", "produce_retries", "batch_bytes_avg",
                "produce_rtt_max_p99_ms", "int_latency_avg_ms", "outbuf_latency_avg_ms")
PRODUCE_SAMPLE_KEYS = ("enqueue_s", "records_per_request", "batch_records_avg", "produce_rtt_avg_ms")


def produce_fields(good: list[dict]) -> dict:
    """The shape of the Produce requests as the client sent them: how many, records per request
    and per batch, round trips and the client's own queueing; and the client's CPU split between
    the Python produce() loop and librdkafka's threads (which build, send and await the batches)."""
    split = [{**sample, **client_cpu_split(sample)} for sample in good]
    fields: dict = {key: median_of(split, key) for key in PRODUCE_KEYS + PRODUCE_SAMPLE_KEYS + CPU_SPLIT_KEYS}
    fields.update({f"all_{key}": [sample.get(key) for sample in split] for key in PRODUCE_SAMPLE_KEYS + CPU_SPLIT_KEYS})
    return fields


CPU_SPLIT_KEYS = ("client_loop_cpu_s", "client_librdkafka_cpu_s")


def client_cpu_split(sample: dict) -> dict:
    """A sample's client CPU seconds: librdkafka's threads (named rdk:*) and the rest (Python's)."""
    threads = sample.get("client_thread_cpu_s")
    if threads is None:
        return {}
    librdkafka = sum(seconds for name, seconds in threads.items() if name.startswith("rdk:"))
    return {"client_loop_cpu_s": sum(threads.values()) - librdkafka, "client_librdkafka_cpu_s": librdkafka}


def idle_fields(scenario: Scenario, good: list[dict]) -> dict:
    """The broker's RSS before and after opening the connections (medians), and per connection."""
    growth = median_of(good, "rss_growth_mib")
    fields = {
        "connections": scenario.count,
        "rss_before_mib": median_of(good, "rss_before_mib"),
        "rss_after_mib": median_of(good, "rss_after_mib"),
        "rss_growth_mib": growth,
        "all_rss_growth_mib": [sample["rss_growth_mib"] for sample in good],
        "kib_per_connection": growth * 1024 / scenario.count if growth is not None else None,
        "target_rss_growth_mib": scenario.rss_target_mib,
        "within_target": growth is not None and growth <= scenario.rss_target_mib,
        "seconds": median_of(good, "seconds"),
        "broker_cpu_s": median_of(good, "broker_cpu_s"),
        "client_cpu_s": median_of(good, "client_cpu_s"),
    }
    return fields


def cluster_fields(scenario: Scenario) -> dict:
    if scenario.brokers == 1:
        return {}
    return {"brokers": scenario.brokers, "replication_factor": scenario.replication_factor}


def skipped_summary(scenario: Scenario, target: str, reason: str) -> dict:
    """A scenario that could not run here: neither verified nor failed."""
    return {
        "kind": "result",
        "target": target,
        "scenario": scenario.key,
        "type": scenario.kind,
        "title": scenario.title,
        "runs": 0,
        "verified": False,
        "skipped": reason,
        "errors": [],
        "warnings": [],
        **cluster_fields(scenario),
    }


def memory_summary(target: str, idle_mib: float | None, after_mib: float | None) -> dict:
    return {"kind": "memory", "target": target, "rss_idle_mib": idle_mib, "rss_after_mib": after_mib}


def loopback_summary(samples_mb_s: list[float], sample_bytes: int) -> dict:
    return {
        "kind": "loopback",
        "mb_per_s": statistics.median(samples_mb_s) if samples_mb_s else None,
        "all_mb_per_s": samples_mb_s,
        "bytes": sample_bytes,
    }


# Per scenario type: the figures compared between brokers, and whether higher is better.
HEADLINES = {
    "start": [("start_ms", False)],
    "produce": [("mb_per_s", True)],
    "consume": [("mb_per_s", True)],
    "e2e": [("p50_ms", False), ("p99_ms", False)],
    "idle": [("rss_growth_mib", False)],
    "partitions": [("mb_per_s", True), ("consume_mb_per_s", True), ("produce_rtt_p99_ms", False)],
    "connections": [("p99_ms", False), ("broker_cpu_s", False), ("rebalance_join_ms", False)],
    "memory": [("rss_idle_mib", False), ("rss_after_mib", False)],
    "metadata": bench_metadata.HEADLINES,
}


def headline_metrics(summary: dict) -> list[tuple[str, bool]]:
    return HEADLINES[summary.get("type", summary["kind"])]


def ratios(summaries: list[dict], pairs: list[tuple[str, str]]) -> list[dict]:
    """For each (numerator, denominator) target pair, the one's figure divided by the other's, for
    every headline metric both have; grouped by scenario, in the order of `summaries`."""
    by_key = {(s["target"], s.get("scenario", "memory")): s for s in summaries if s["kind"] in ("result", "memory")}
    scenarios = dict.fromkeys(scenario for _, scenario in by_key)
    lines = []
    for scenario in scenarios:
        for numerator, denominator in pairs:
            mine, theirs = by_key.get((numerator, scenario)), by_key.get((denominator, scenario))
            if mine is None or theirs is None:
                continue
            for metric, higher_is_better in headline_metrics(mine):
                a, b = mine.get(metric), theirs.get(metric)
                lines.append(
                    {
                        "kind": "ratio",
                        "scenario": scenario,
                        "metric": metric,
                        "higher_is_better": higher_is_better,
                        "numerator": numerator,
                        "denominator": denominator,
                        "ratio": a / b if a is not None and b else None,
                        "ranges_overlap": ranges_overlap(mine, theirs, metric),
                    }
                )
    return lines


def ranges_overlap(mine: dict, theirs: dict, metric: str) -> bool | None:
    """Whether the two targets' [min, max] over their samples overlap (None without a spread)."""
    a, b = mine.get("spread", {}).get(metric), theirs.get("spread", {}).get(metric)
    if not a or not b or None in (a["min"], b["min"]):
        return None
    return a["min"] <= b["max"] and b["min"] <= a["max"]


def json_lines(records: list[dict]) -> str:
    return "\n".join(json.dumps(record, sort_keys=False) for record in records)


# ------------------------------------------------------------------------------ text tables


def fmt(value: float | None, spec: str = ",.1f", suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


DETAIL_COLUMNS = (
    ("target", 12, lambda s: s["target"]),
    ("records/s", 11, lambda s: fmt(s.get("records_per_s"), ",.0f")),
    ("MB/s", 8, lambda s: fmt(s.get("mb_per_s"))),
    ("loopback", 9, lambda s: fmt(s.get("loopback_fraction"), ".2%")),
    ("p50 ms", 8, lambda s: fmt(s.get("p50_ms"), ",.2f")),
    ("p99 ms", 8, lambda s: fmt(s.get("p99_ms"), ",.2f")),
    ("start ms", 9, lambda s: fmt(s.get("start_ms"), ",.1f")),
    ("broker CPU s", 13, lambda s: fmt(s.get("broker_cpu_s"), ",.2f")),
    ("client CPU s", 13, lambda s: fmt(s.get("client_cpu_s"), ",.2f")),
    ("runs", 5, lambda s: runs_cell(s)),
)


def runs_cell(summary: dict) -> str:
    if "skipped" in summary:
        return "skipped"
    return f"{summary['runs']}" + ("" if summary["verified"] else " FAILED")


def detail_table(results: list[dict], memory: list[dict], loopback: dict, runs: int) -> str:
    """Every scenario with each target beneath it, then memory and the loopback figure."""
    header = "  ".join(f"{name:>{width}}" for name, width, _ in DETAIL_COLUMNS)
    lines = [f"median of {runs} run(s), each target's samples beneath it; MB = 10^6 bytes of record values", ""]
    title = None
    for summary in results:
        if summary["title"] != title:
            title = summary["title"]
            lines += ["", title, header]
        lines.append("  ".join(f"{cell(summary):>{width}}" for _, width, cell in DETAIL_COLUMNS))
        lines += spread_lines(summary)
        lines += [f"{'':14}error: {error}" for error in summary["errors"]]
        lines += [f"{'':14}note: {warning}" for warning in summary["warnings"] + summary.get("notes", [])]
        if summary.get("broker_cpu_s_each"):
            ids = " / ".join(str(broker_id) for broker_id in range(1, len(summary["broker_cpu_s_each"]) + 1))
            each = " / ".join(fmt(cpu, ",.2f") for cpu in summary["broker_cpu_s_each"])
            leaders = f" (partition leader per run: {', '.join(map(str, summary['leader']))})" if summary.get("leader") else ""
            lines.append(f"{'':14}broker CPU s of brokers {ids}: {each}{leaders}")
            lines.append(replication_line(summary, ids))
        if summary.get("type") == "idle" and summary["runs"]:
            lines.append(
                f"{'':14}{summary['connections']:,} connections: broker RSS {fmt(summary['rss_before_mib'])} -> "
                f"{fmt(summary['rss_after_mib'])} MiB, +{fmt(summary['rss_growth_mib'])} MiB "
                f"({fmt(summary['kib_per_connection'])} KiB each; target <= {summary['target_rss_growth_mib']:,.1f} MiB: "
                f"{'met' if summary['within_target'] else 'MISSED'})"
            )
        if summary.get("type") == "metadata" and summary["runs"]:
            lines += bench_metadata.table_lines(summary)
        if summary.get("floor_ms") is not None:
            lines.append(floor_line(summary))
        if summary.get("type") == "consume" and summary["runs"]:
            lines.append(fetch_line(summary))
        if summary.get("type") == "connections" and summary["runs"]:
            lines.append(connections_line(summary, fmt))
        if summary.get("type") == "partitions" and summary["runs"]:
            from bench_partitions import partitions_line  # it imports this module

            lines.append(partitions_line(summary, fmt))
        if summary.get("type") == "produce" and summary["runs"] and summary.get("produce_requests") is not None:
            lines += produce_lines(summary)
        if "skipped" in summary:
            lines.append(f"{'':14}skipped: {summary['skipped']}")
    lines += ["", f"{'target':>12}  {'RSS idle MiB':>13}  {'RSS after the runs MiB':>23}"]
    for entry in memory:
        lines.append(f"{entry['target']:>12}  {fmt(entry['rss_idle_mib']):>13}  {fmt(entry['rss_after_mib']):>23}")
    lines += ["", f"loopback TCP bandwidth (127.0.0.1, {loopback['bytes'] / 1e9:.2f} GB per sample): "
              f"{fmt(loopback['mb_per_s'], ',.0f')} MB/s (samples: {', '.join(fmt(v, ',.0f') for v in loopback['all_mb_per_s'])})"]  # fmt: skip
    return "\n".join(lines)


def replication_line(summary: dict, ids: str) -> str:
    """A cluster result's CPU seconds per GB (10^9 bytes) of the topic's log on each broker, and those GB."""
    per_gb = " / ".join(fmt(value, ",.2f") for value in summary.get("broker_cpu_s_per_replicated_gb_each") or [])
    written = " / ".join(fmt(none_or(value, 1e-9), ",.3f") for value in summary.get("replicated_bytes_each") or [])
    return f"{'':14}CPU s per replicated GB of brokers {ids}: {per_gb or '-'} (GB in each broker's log of the topic: {written or '-'})"


def floor_line(summary: dict) -> str:
    """The start's floor: the same interpreter with asyncio and uvloop imported, nothing else."""
    return (
        f"{'':14}floor: Python with asyncio and uvloop imported, no kbroker code: {fmt(summary['floor_ms'])} ms to "
        f"its first output, RSS {fmt(summary['floor_rss_mib'])} MiB (medians; issue 15's targets: start <= 50 ms, "
        f"idle RSS <= 20 MiB)"
    )


def fetch_line(summary: dict) -> str:
    """A consume result's fetch responses as librdkafka counted them, and CPU per MB of values."""
    per_request = summary.get("fetch_bytes_per_request")
    return (
        f"{'':14}fetch: {fmt(summary.get('fetch_requests'), ',.0f')} requests, "
        f"{fmt(none_or(summary.get('fetch_response_bytes'), 1e-6), ',.1f')} MB of responses "
        f"({fmt(none_or(per_request, 1e-3), ',.0f')} kB each, {fmt(summary.get('fetch_bytes_per_value_byte'), '.3f')}x the values), "
        f"rtt avg {fmt(summary.get('fetch_rtt_avg_ms'), ',.2f')} ms; "
        f"CPU s per MB: client {fmt(summary.get('client_cpu_s_per_mb'), '.4f')}, broker {fmt(summary.get('broker_cpu_s_per_mb'), '.4f')}; "
        f"client minor page faults per MB {fmt(summary.get('client_minor_faults_per_mb'), ',.0f')}"
    )


def produce_lines(summary: dict) -> list[str]:
    """A produce result's requests as librdkafka counted them (medians), and per sample, in the
    order of the MB/s samples above: records per request, round trip, and the client's CPU
    seconds in the Python loop + in librdkafka's threads."""
    per_sample = ", ".join(
        f"{fmt(records, ',.0f')} @ {fmt(rtt, ',.2f')} ms, CPU {fmt(loop, '.2f')} + {fmt(rdk, '.2f')}"
        for records, rtt, loop, rdk in zip(summary["all_records_per_request"], summary["all_produce_rtt_avg_ms"],
                                           summary["all_client_loop_cpu_s"], summary["all_client_librdkafka_cpu_s"], strict=True)
    )
    return [
        f"{'':14}produce: {fmt(summary.get('produce_requests'), ',.0f')} requests, "
        f"{fmt(summary.get('records_per_request'), ',.0f')} records each "
        f"(batches of {fmt(summary.get('batch_records_avg'), ',.0f')} records, {fmt(none_or(summary.get('batch_bytes_avg'), 1e-3), ',.0f')} kB), "
        f"rtt avg {fmt(summary.get('produce_rtt_avg_ms'), ',.2f')} ms (p99 up to {fmt(summary.get('produce_rtt_max_p99_ms'), ',.2f')}), "
        f"queued in the client avg {fmt(summary.get('int_latency_avg_ms'), ',.2f')} ms, "
        f"retries {fmt(summary.get('produce_retries'), ',.0f')}; CPU s per MB: client "
        f"{fmt(summary.get('client_cpu_s_per_mb'), '.4f')}, broker {fmt(summary.get('broker_cpu_s_per_mb'), '.4f')}",
        f"{'':14}client CPU s: Python loop {fmt(summary.get('client_loop_cpu_s'), '.2f')}, librdkafka's threads "
        f"{fmt(summary.get('client_librdkafka_cpu_s'), '.2f')}"
        + ("" if summary.get("enqueue_s") is None else f"; produce() loop done after {summary['enqueue_s']:.2f} s"),
        f"{'':14}per sample: records per request @ rtt avg, client CPU s loop + librdkafka: {per_sample}",
    ]


def none_or(value: float | None, factor: float) -> float | None:
    return None if value is None else value * factor


SPREAD_FORMATS = {"mb_per_s": ("MB/s", ",.1f"), "p50_ms": ("p50 ms", ",.2f"), "p99_ms": ("p99 ms", ",.2f"),
                  "start_ms": ("start ms", ",.1f"), "rss_growth_mib": ("RSS growth MiB", ",.1f"),
                  **bench_metadata.SPREAD_FORMATS}


def spread_lines(summary: dict) -> list[str]:
    """Per headline figure: min / median / max over the samples, and the samples in run order."""
    lines = []
    for metric, values in summary.get("spread", {}).items():
        if not values["samples"]:
            continue
        label, spec = SPREAD_FORMATS.get(metric, (metric, ",.2f"))
        samples = ", ".join(fmt(value, spec) for value in values["samples"])
        lines.append(f"{'':14}{label} min / median / max: {fmt(values['min'], spec)} / {fmt(values['median'], spec)} / "
                     f"{fmt(values['max'], spec)}  (samples: {samples})")
    return lines


def ratio_table(ratio_lines: list[dict]) -> str:
    """One target's figure / another's, with which direction is better."""
    lines = ["", "ratios of medians (first target / other, a +sasl_ssl target / its PLAINTEXT twin; 'higher better'"
             " or 'lower better' says which way wins; 'overlap': the two targets' sample ranges overlap)"]
    pairs = [f"{line['numerator']}/{line['denominator']}:" for line in ratio_lines]
    width = max(map(len, pairs), default=0)  # the ratios in one column, however long the targets' names
    for line, pair in zip(ratio_lines, pairs, strict=True):
        better = "higher better" if line["higher_is_better"] else "lower better"
        overlap = {True: ", overlap", False: ", ranges apart", None: ""}[line.get("ranges_overlap")]
        lines.append(
            f"  {line['scenario']:<24} {line['metric']:<14} {pair:<{width}} "
            f"{fmt(line['ratio'], ',.2f', 'x'):>9}  ({better}{overlap})"
        )
    return "\n".join(lines)
