"""TransactionMarkerChannelManager: writes a transaction's commit or abort markers on every
partition it touched (Kafka's TransactionMarkerChannelManager and its completion handler).

For each prepared transaction one task groups the remaining partitions by their leader (the
metadata cache) and sends each leader a WriteTxnMarkers request: over a NetworkClient to the
leader's inter-broker endpoint, or, when this broker leads the partition, straight to
ReplicaManager.append_txn_markers (what the WriteTxnMarkers handler calls: no socket), as the
controller's channel delivers locally. Per partition, as in
Kafka:
- NONE (or UNSUPPORTED_FOR_MESSAGE_FORMAT / UNSUPPORTED_VERSION) marks it done;
- a partition of a deleted topic is dropped;
- NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION, NOT_ENOUGH_REPLICAS(_AFTER_APPEND),
  REQUEST_TIMED_OUT, KAFKA_STORAGE_ERROR, a lost connection or an unknown leader are retried
  after a backoff, with the leader looked up again;
- INVALID_PRODUCER_EPOCH or TRANSACTION_COORDINATOR_FENCED abandon the transaction: a newer
  producer or coordinator owns it now;
- any other answer is retried too (Kafka stops on the "fatal" ones, CORRUPT_MESSAGE and the
  like, which a marker written by us cannot cause).
Once every partition has its marker, `on_complete` runs (the coordinator writes the Complete
state). Tasks stop when `still_valid` says we no longer coordinate the transaction in that
epoch, and when the `__transaction_state` partition is unloaded.
It knows endpoints and the NetworkClient, not what the coordinator does with the outcome.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kbroker.background import stop_task
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors
from kbroker.replica.replica_manager import TxnMarkerEntry
from kbroker.txn.inter_broker_clients import InterBrokerClients
from kbroker.txn.transaction_log import group_by_topic
from kbroker.txn.transaction_metadata import TopicPartition

if TYPE_CHECKING:
    import ssl

    from kbroker.metadata.metadata_cache import MetadataCache
    from kbroker.replica.replica_manager import ReplicaManager

log = logging.getLogger("kbroker.txn.markers")

WRITE_TXN_MARKERS_VERSION = 1
RETRY_BACKOFF_S = 0.05

_DONE = frozenset({Errors.NONE, Errors.UNSUPPORTED_FOR_MESSAGE_FORMAT, Errors.UNSUPPORTED_VERSION})
_ABANDON = frozenset({Errors.INVALID_PRODUCER_EPOCH, Errors.TRANSACTION_COORDINATOR_FENCED})

@dataclass(slots=True)
class PendingTxnMarkers:
    """One transaction's markers still to be written."""

    transactional_id: str
    txn_topic_partition: int  # the __transaction_state partition it belongs to
    coordinator_epoch: int
    producer_id: int
    producer_epoch: int
    commit: bool
    partitions: set[TopicPartition]

    def marker(self, partitions: set[TopicPartition]) -> TxnMarkerEntry:
        return TxnMarkerEntry(self.producer_id, self.producer_epoch, self.coordinator_epoch, self.commit,
                              sorted(partitions))

    def request(self, partitions: set[TopicPartition]) -> dict[str, Any]:
        return {"markers": [{
            "producer_id": self.producer_id, "producer_epoch": self.producer_epoch,
            "transaction_result": self.commit, "coordinator_epoch": self.coordinator_epoch,
            "topics": [{"name": topic, "partition_indexes": ids} for topic, ids in group_by_topic(partitions)],
        }]}


class TransactionMarkerChannelManager:
    def __init__(self, broker_id: int, metadata_cache: MetadataCache, replica_manager: ReplicaManager,
                 inter_broker_listener: str, request_timeout_ms: int = 30000, inter_broker_ssl: ssl.SSLContext | None = None) -> None:
        self.broker_id = broker_id
        self.metadata_cache = metadata_cache
        self.replica_manager = replica_manager
        self.request_timeout_ms = request_timeout_ms
        self.clients = InterBrokerClients(broker_id, metadata_cache, inter_broker_listener, "txn-markers",
                                          inter_broker_ssl)
        self._tasks: dict[asyncio.Task, PendingTxnMarkers] = {}

    def add_txn_markers_to_send(self, entry: PendingTxnMarkers, still_valid: Callable[[], bool],
                                on_complete: Callable[[], Awaitable[None]]) -> None:
        """Starts writing the entry's markers; `on_complete` runs once all are written."""
        task = asyncio.get_running_loop().create_task(self._run(entry, still_valid, on_complete))
        self._tasks[task] = entry
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("writing transaction markers failed", exc_info=task.exception())

    def pending_transactional_ids(self) -> set[str]:
        return {entry.transactional_id for entry in self._tasks.values()}

    def remove_markers_for_txn_topic_partition(self, partition: int) -> None:
        """The __transaction_state partition moved away: its transactions are the new coordinator's."""
        for task, entry in list(self._tasks.items()):
            if entry.txn_topic_partition == partition:
                task.cancel()

    async def _run(self, entry: PendingTxnMarkers, still_valid: Callable[[], bool],
                   on_complete: Callable[[], Awaitable[None]]) -> None:
        remaining = set(entry.partitions)
        while remaining:
            if not still_valid():
                return
            by_leader = self._group_by_leader(remaining)
            sent = [(leader, tps) for leader, tps in by_leader.items() if leader >= 0]
            if len(sent) == 1:
                # The usual case, awaited directly: gather's task would yield to the loop even when
                # the local append needs no wait, and the producer's next AddPartitionsToTxn could
                # then find the transaction still prepared (CONCURRENT_TRANSACTIONS, a client backoff).
                leader, tps = sent[0]
                answers = [await self._send(leader, entry, tps)]
            else:
                answers = await asyncio.gather(*(self._send(leader, entry, tps) for leader, tps in sent))
            for errors in answers:
                for tp, error in errors.items():
                    if error in _DONE:
                        remaining.discard(tp)
                    elif error in _ABANDON:
                        log.info("markers of transactional id %s abandoned: %s on %s-%d", entry.transactional_id,
                                 error.name, tp[0], tp[1])
                        return
            if remaining:
                await asyncio.sleep(RETRY_BACKOFF_S)
        if still_valid():
            await on_complete()

    def _group_by_leader(self, remaining: set[TopicPartition]) -> dict[int, set[TopicPartition]]:
        """Partitions by their leader's id (-1: no live leader yet); deleted topics' are dropped."""
        by_leader: dict[int, set[TopicPartition]] = {}
        for tp in list(remaining):
            if self.metadata_cache.topic(tp[0]) is None:
                log.info("dropping the marker for %s-%d: the topic no longer exists", tp[0], tp[1])
                remaining.discard(tp)
                continue
            state = self.metadata_cache.partition(tp[0], tp[1])
            leader = state.leader if state is not None and self.metadata_cache.is_alive(state.leader) else -1
            by_leader.setdefault(leader, set()).add(tp)
        return by_leader

    async def _send(self, leader: int, entry: PendingTxnMarkers, partitions: set[TopicPartition]
                    ) -> dict[TopicPartition, Errors]:
        """Each partition's answer; a failure of our own (a bug, a refused encoding) is retried
        like a lost connection rather than leaving the transaction prepared for good."""
        try:
            return await self._send_to_leader(leader, entry, partitions)
        except Exception:
            log.exception("writing markers of %s on broker %d failed; retrying", entry.transactional_id, leader)
            return dict.fromkeys(partitions, Errors.UNKNOWN_SERVER_ERROR)

    async def _send_to_leader(self, leader: int, entry: PendingTxnMarkers, partitions: set[TopicPartition]
                              ) -> dict[TopicPartition, Errors]:
        if leader == self.broker_id:
            [local] = await self.replica_manager.append_txn_markers([entry.marker(partitions)],
                                                                    self.request_timeout_ms)
            return local
        client = self.clients.get(leader)
        if client is None:
            return dict.fromkeys(partitions, Errors.NOT_LEADER_OR_FOLLOWER)
        try:
            response = await client.send(ApiKey.WRITE_TXN_MARKERS, WRITE_TXN_MARKERS_VERSION,
                                          entry.request(partitions), timeout_s=self.request_timeout_ms / 1000)
        except ConnectionError as exc:
            log.info("sending markers of %s to broker %d failed (%s); retrying", entry.transactional_id, leader, exc)
            return dict.fromkeys(partitions, Errors.NETWORK_EXCEPTION)
        errors: dict[TopicPartition, Errors] = {}
        for marker in response.get("markers") or ():
            for topic in marker["topics"]:
                for p in topic["partitions"]:
                    errors[(topic["name"], p["partition_index"])] = Errors(p["error_code"])
        return errors

    async def close(self) -> None:
        for task in list(self._tasks):
            await stop_task(task)
        await self.clients.close()
