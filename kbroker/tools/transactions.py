"""`kbroker transactions`: kafka-transactions.sh (Kafka's TransactionsCommand), the same commands,
flags and columns, connection flags before the command as there:
`kbroker transactions --bootstrap-server HOST:PORT COMMAND ...`.

- `list`: ListTransactions on every broker: TransactionalId, Coordinator, ProducerId,
  TransactionState.
- `describe --transactional-id ID`: DescribeTransactions at the id's coordinator (FindCoordinator
  key type 1): CoordinatorId, TransactionalId, ProducerId, ProducerEpoch, TransactionState,
  TransactionTimeoutMs, CurrentTransactionStartTimeMs, TransactionDurationMs, TopicPartitions.
- `describe-producers --topic T --partition P [--broker-id B]`: DescribeProducers at the
  partition's leader (or broker B): ProducerId, ProducerEpoch, LatestCoordinatorEpoch,
  LastSequence, LastTimestamp, CurrentTransactionStartOffset.
- `abort --topic T --partition P --start-offset O` (or `--producer-id --producer-epoch
  --coordinator-epoch`): an ABORT marker through WriteTxnMarkers to the leader, as
  Admin.abortTransaction; with --start-offset the producer is the one DescribeProducers shows
  with a transaction starting there.
- `find-hanging (--topic T [--partition P] | --broker-id B) [--max-transaction-timeout MIN]`:
  open transactions older than MIN minutes (default 15) whose producer id no coordinator lists
  (ListTransactions), or whose transaction does not name the partition (DescribeTransactions):
  Topic, Partition, ProducerId, ProducerEpoch, CoordinatorEpoch, StartOffset, LastTimestamp,
  Duration(min).

Tables are printed as TransactionsCommand prints them: each cell padded to its column's width and
followed by a tab; `--output json` gives the rows as objects. confluent-kafka has no transaction
admin API, so the requests go through kbroker's codec (wire.py), with brokers and leaders from
the AdminClient's metadata. Failures are one line, as Kafka's (`Failed to describe transaction
state of transactional-id `x`: ...`), with exit code 1.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterable, Sequence
from typing import Any

from kbroker.protocol.api_keys import ApiKey
from kbroker.tools.common import (
    ToolError,
    add_connection_args,
    add_output_arg,
    admin_client,
    cluster_metadata,
    print_json,
    usage_error,
)
from kbroker.tools.wire import error_name, send_request

TRANSACTION_KEY_TYPE = 1
TRANSACTIONAL_ID_NOT_FOUND = 105
MAX_BATCH_SIZE = 500  # partitions per DescribeProducers, as TransactionsCommand batches them
LIST_HEADERS = ("TransactionalId", "Coordinator", "ProducerId", "TransactionState")
DESCRIBE_HEADERS = ("CoordinatorId", "TransactionalId", "ProducerId", "ProducerEpoch", "TransactionState",
                    "TransactionTimeoutMs", "CurrentTransactionStartTimeMs", "TransactionDurationMs",
                    "TopicPartitions")
PRODUCER_HEADERS = ("ProducerId", "ProducerEpoch", "LatestCoordinatorEpoch", "LastSequence", "LastTimestamp",
                    "CurrentTransactionStartOffset")
HANGING_HEADERS = ("Topic", "Partition", "ProducerId", "ProducerEpoch", "CoordinatorEpoch", "StartOffset",
                   "LastTimestamp", "Duration(min)")


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "transactions", help="list, describe and abort transactions, find hanging ones",
        description="Analyze the transactional state of producers in the cluster; detect and recover from "
                    "hanging transactions (kafka-transactions.sh).")
    add_connection_args(parser)
    add_output_arg(parser)
    commands = parser.add_subparsers(dest="action", required=True, metavar="COMMAND")
    commands.add_parser("list", help="list transactions").set_defaults(run=run_list)
    describe = commands.add_parser("describe", help="describe the state of an active transactional-id")
    describe.add_argument("--transactional-id", required=True)
    describe.set_defaults(run=run_describe)
    producers = commands.add_parser("describe-producers",
                                    help="describe the states of active producers for a topic partition")
    producers.add_argument("--broker-id", type=int, help="describe the producer state on this replica")
    producers.add_argument("--topic", required=True)
    producers.add_argument("--partition", type=int, required=True)
    producers.set_defaults(run=run_describe_producers)
    abort = commands.add_parser("abort", help="abort a hanging transaction (requires administrative privileges)")
    abort.add_argument("--topic", required=True)
    abort.add_argument("--partition", type=int, required=True)
    abort.add_argument("--start-offset", type=int, help="start offset of the transaction to abort")
    abort.add_argument("--producer-id", type=int, help="(brokers before 3.0, with the two below)")
    abort.add_argument("--producer-epoch", type=int)
    abort.add_argument("--coordinator-epoch", type=int)
    abort.set_defaults(run=run_abort, parser=abort)
    hanging = commands.add_parser("find-hanging", help="find hanging transactions")
    hanging.add_argument("--broker-id", type=int, help="broker id to search for hanging transactions")
    hanging.add_argument("--max-transaction-timeout", type=int, default=15, metavar="MINUTES",
                         help="maximum transaction timeout in minutes to limit the scope of the search (15)")
    hanging.add_argument("--topic", help="topic name to limit search to")
    hanging.add_argument("--partition", type=int)
    hanging.set_defaults(run=run_find_hanging, parser=hanging)


# -- the cluster ----------------------------------------------------------------------------------


class Cluster:
    """Brokers and partition leaders from one Metadata answer, and requests to them."""

    def __init__(self, args: argparse.Namespace):
        self.metadata = cluster_metadata(admin_client(args))
        self.brokers = {b.id: f"{b.host}:{b.port}" for b in self.metadata.brokers.values()}
        if not self.brokers:
            raise ToolError("the cluster named no brokers")

    def address(self, broker_id: int) -> str:
        if broker_id not in self.brokers:
            raise ToolError(f"broker {broker_id} is not in the cluster (brokers: {sorted(self.brokers)})")
        return self.brokers[broker_id]

    def any_broker(self) -> str:
        return next(iter(self.brokers.values()))

    def partitions(self, topic: str) -> dict[int, Any]:
        found = self.metadata.topics.get(topic)
        if found is None or found.error is not None:
            raise ToolError(f"topic {topic} does not exist")
        return found.partitions

    def leader(self, topic: str, partition: int) -> int:
        found = self.partitions(topic).get(partition)
        if found is None:
            raise ToolError(f"partition {topic}-{partition} does not exist")
        if found.leader < 0:
            raise ToolError(f"partition {topic}-{partition} has no leader")
        return int(found.leader)

    def coordinator(self, transactional_id: str) -> tuple[int, str]:
        answer = send_request(self.any_broker(), ApiKey.FIND_COORDINATOR, 3,
                              {"key": transactional_id, "key_type": TRANSACTION_KEY_TYPE})
        if answer["error_code"]:
            raise ToolError(f"Failed to find the coordinator of transactional-id `{transactional_id}`: "
                            f"{error_name(answer['error_code'])}")
        return answer["node_id"], f"{answer['host']}:{answer['port']}"

    def list_transactions(self, producer_ids: Iterable[int] = ()) -> list[tuple[int, dict]]:
        """(coordinator id, listing) for the transactions of every broker."""
        listings = []
        for broker_id, address in sorted(self.brokers.items()):
            answer = send_request(address, ApiKey.LIST_TRANSACTIONS, 0,
                                  {"state_filters": [], "producer_id_filters": list(producer_ids)})
            if answer["error_code"]:
                raise ToolError(f"Failed to list transactions: {error_name(answer['error_code'])}")
            listings += [(broker_id, state) for state in answer["transaction_states"]]
        return listings

    def describe_transaction(self, transactional_id: str) -> tuple[int, dict]:
        """(coordinator id, DescribeTransactions' state); ToolError carrying the error code."""
        coordinator_id, address = self.coordinator(transactional_id)
        answer = send_request(address, ApiKey.DESCRIBE_TRANSACTIONS, 0, {"transactional_ids": [transactional_id]})
        [state] = answer["transaction_states"]
        if state["error_code"]:
            raise DescribeError(state["error_code"],
                                f"Failed to describe transaction state of transactional-id `{transactional_id}`: "
                                f"{error_name(state['error_code'])}")
        return coordinator_id, state

    def describe_producers(self, address: str, partitions: Sequence[tuple[str, int]]
                           ) -> dict[tuple[str, int], list[dict]]:
        """Each partition's active producers, from one broker."""
        topics: dict[str, list[int]] = {}
        for topic, partition in partitions:
            topics.setdefault(topic, []).append(partition)
        answer = send_request(address, ApiKey.DESCRIBE_PRODUCERS, 0, {
            "topics": [{"name": name, "partition_indexes": indexes} for name, indexes in topics.items()]})
        found: dict[tuple[str, int], list[dict]] = {}
        for topic in answer["topics"]:
            for p in topic["partitions"]:
                tp = (topic["name"], p["partition_index"])
                if p["error_code"]:
                    raise ToolError(f"Failed to describe producers for partition {tp[0]}-{tp[1]}: "
                                    f"{p['error_message'] or error_name(p['error_code'])}")
                found[tp] = p["active_producers"]
        return found


class DescribeError(ToolError):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


# -- commands -------------------------------------------------------------------------------------


def run_list(args: argparse.Namespace) -> int:
    cluster = Cluster(args)
    rows = [(state["transactional_id"], coordinator, state["producer_id"], state["transaction_state"])
            for coordinator, state in cluster.list_transactions()]
    return show(args, LIST_HEADERS, rows)


def run_describe(args: argparse.Namespace) -> int:
    cluster = Cluster(args)
    coordinator_id, state = cluster.describe_transaction(args.transactional_id)
    start = state["transaction_start_time_ms"]
    partitions = ",".join(f"{t['topic']}-{p}" for t in state["topics"] for p in t["partitions"])
    row = (coordinator_id, args.transactional_id, state["producer_id"], state["producer_epoch"],
           state["transaction_state"], state["transaction_timeout_ms"],
           "None" if start < 0 else start, "None" if start < 0 else now_ms() - start, partitions)
    return show(args, DESCRIBE_HEADERS, [row])


def run_describe_producers(args: argparse.Namespace) -> int:
    cluster = Cluster(args)
    tp = (args.topic, args.partition)
    broker_id = args.broker_id if args.broker_id is not None else cluster.leader(*tp)
    producers = cluster.describe_producers(cluster.address(broker_id), [tp]).get(tp, [])
    rows = [(p["producer_id"], p["producer_epoch"], p["coordinator_epoch"], p["last_sequence"], p["last_timestamp"],
             "None" if p["current_txn_start_offset"] < 0 else p["current_txn_start_offset"]) for p in producers]
    return show(args, PRODUCER_HEADERS, rows)


def run_abort(args: argparse.Namespace) -> int:
    if args.start_offset is None and args.producer_id is None:
        usage_error(args.parser, "the transaction to abort must be identified either with --start-offset (for "
                    "brokers on 3.0 or above) or with --producer-id, --producer-epoch, and --coordinator-epoch "
                    "(for older brokers)")
    if args.start_offset is None and (args.producer_epoch is None or args.coordinator_epoch is None):
        usage_error(args.parser, "--producer-id needs --producer-epoch and --coordinator-epoch")
    cluster = Cluster(args)
    tp = (args.topic, args.partition)
    leader = cluster.address(cluster.leader(*tp))
    if args.start_offset is None:
        # A transaction hanging before its first marker shows coordinator epoch -1: 0 is at most any epoch.
        spec = (args.producer_id, args.producer_epoch, max(args.coordinator_epoch, 0))
    else:
        producers = cluster.describe_producers(leader, [tp]).get(tp, [])
        found = next((p for p in producers if p["current_txn_start_offset"] == args.start_offset), None)
        if found is None:
            raise ToolError(f"Could not find any open transactions starting at offset {args.start_offset} on "
                            f"partition {tp[0]}-{tp[1]}")
        spec = (found["producer_id"], found["producer_epoch"], max(found["coordinator_epoch"], 0))
    producer_id, producer_epoch, coordinator_epoch = spec
    answer = send_request(leader, ApiKey.WRITE_TXN_MARKERS, 1, {"markers": [{
        "producer_id": producer_id, "producer_epoch": producer_epoch, "transaction_result": False,
        "topics": [{"name": tp[0], "partition_indexes": [tp[1]]}], "coordinator_epoch": coordinator_epoch}]})
    errors = [p["error_code"] for m in answer["markers"] for t in m["topics"] for p in t["partitions"]]
    failed = next((code for code in errors if code), None)
    if failed is not None or not errors:
        raise ToolError(f"Failed to abort transaction AbortTransactionSpec(topicPartition={tp[0]}-{tp[1]}, "
                        f"producerId={producer_id}, producerEpoch={producer_epoch}, coordinatorEpoch="
                        f"{coordinator_epoch}): {error_name(failed) if failed is not None else 'no answer'}")
    return 0


def run_find_hanging(args: argparse.Namespace) -> int:
    if args.topic is None and args.broker_id is None:
        usage_error(args.parser, "the `find-hanging` command requires either --topic or --broker-id to limit "
                    "the scope of the search")
    if args.partition is not None and args.topic is None:
        usage_error(args.parser, "the --partition argument requires --topic to be provided")
    cluster = Cluster(args)
    candidates = _open_transactions(cluster, _partitions_to_search(cluster, args), args.broker_id,
                                    args.max_transaction_timeout * 60_000)
    hanging = _hanging(cluster, candidates)
    now = now_ms()
    rows = [(tp[0], tp[1], p["producer_id"], p["producer_epoch"], p["coordinator_epoch"],
             p["current_txn_start_offset"], p["last_timestamp"], (now - p["last_timestamp"]) // 60_000)
            for tp, p in hanging]
    return show(args, HANGING_HEADERS, rows)


def _partitions_to_search(cluster: Cluster, args: argparse.Namespace) -> list[tuple[str, int]]:
    if args.topic is not None and args.partition is not None:
        return [(args.topic, args.partition)]
    topics = [args.topic] if args.topic is not None else sorted(
        name for name, t in cluster.metadata.topics.items() if not name.startswith("__") and t.error is None)
    return [(topic, index) for topic in topics for index, p in sorted(cluster.partitions(topic).items())
            if args.broker_id is None or args.broker_id in p.replicas]


def _open_transactions(cluster: Cluster, partitions: list[tuple[str, int]], broker_id: int | None,
                       max_timeout_ms: int) -> list[tuple[tuple[str, int], dict]]:
    """Open transactions whose producer wrote nothing for longer than the timeout, asked of
    each partition's leader (or of `broker_id`) in batches."""
    by_broker: dict[int, list[tuple[str, int]]] = {}
    for tp in partitions:
        by_broker.setdefault(broker_id if broker_id is not None else cluster.leader(*tp), []).append(tp)
    now = now_ms()
    found = []
    for target, tps in sorted(by_broker.items()):
        for start in range(0, len(tps), MAX_BATCH_SIZE):
            for tp, producers in cluster.describe_producers(cluster.address(target),
                                                            tps[start:start + MAX_BATCH_SIZE]).items():
                found += [(tp, p) for p in producers
                          if p["current_txn_start_offset"] >= 0 and now - p["last_timestamp"] > max_timeout_ms]
    return found


def _hanging(cluster: Cluster, candidates: list[tuple[tuple[str, int], dict]]
             ) -> list[tuple[tuple[str, int], dict]]:
    """TransactionsCommand's filterHangingTransactions: no coordinator knows the producer id, or
    its transaction does not (or no longer) name the partition."""
    if not candidates:
        return []
    producer_ids = {p["producer_id"] for _, p in candidates}
    transactional_ids = {state["producer_id"]: state["transactional_id"]
                         for _, state in cluster.list_transactions(producer_ids)
                         if state["producer_id"] in producer_ids}
    partitions_in_transaction: dict[str, set[tuple[str, int]] | None] = {}
    for transactional_id in set(transactional_ids.values()):
        try:
            _, state = cluster.describe_transaction(transactional_id)
        except DescribeError as exc:
            if exc.code != TRANSACTIONAL_ID_NOT_FOUND:
                raise
            partitions_in_transaction[transactional_id] = None
            continue
        partitions_in_transaction[transactional_id] = {(t["topic"], p) for t in state["topics"]
                                                       for p in t["partitions"]}
    hanging = []
    for tp, producer in candidates:
        transactional_id = transactional_ids.get(producer["producer_id"])
        named = partitions_in_transaction.get(transactional_id) if transactional_id is not None else None
        if named is None or tp not in named:
            hanging.append((tp, producer))
    return hanging


# -- output ---------------------------------------------------------------------------------------


def show(args: argparse.Namespace, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> int:
    if args.output == "json":
        print_json([dict(zip(headers, row, strict=True)) for row in rows])
    else:
        print_tab_table(headers, rows)
    return 0


def print_tab_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """TransactionsCommand's prettyPrintTable: every cell padded to its column, then a tab."""
    cells = [list(headers)] + [[str(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        print("".join(cell.ljust(width) + "\t" for cell, width in zip(row, widths, strict=True)))


def now_ms() -> int:
    return int(time.time() * 1000)
