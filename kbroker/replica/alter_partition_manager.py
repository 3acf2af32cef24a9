"""AlterPartitionManager: sends partition leaders' ISR changes to the controller (Kafka's
DefaultAlterPartitionManager over its broker-to-controller channel).

Partitions submit one change each (a second submission while one is queued or in flight is
answered OPERATION_NOT_ATTEMPTED at once). A single task batches everything queued into one
AlterPartition request (v3 with topic ids, v1 by name otherwise) to the active controller,
found from the metadata cache (controller id, its endpoint on the inter-broker listener), with
one request in flight at a time. Connection failures, NOT_CONTROLLER and other top-level errors
keep the changes queued and retry after a short backoff (re-resolving the controller); each
partition's answer goes to the callback given with it, which owns what it means.
It knows the metadata cache and the NetworkClient; never partitions' state.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kbroker.background import stop_task
from kbroker.network.network_client import NetworkClient
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors
from kbroker.protocol.uuids import ZERO_UUID

if TYPE_CHECKING:
    import ssl
    import uuid

    from kbroker.metadata.metadata_cache import MetadataCache
    from kbroker.protocol.message_types import (
        AlterPartitionRequest,
        AlterPartitionRequestTopicData,
        AlterPartitionResponse,
        AlterPartitionResponsePartitionData,
    )
    from kbroker.replica.partition import PendingIsrChange

log = logging.getLogger("kbroker.replica.alter_partition")

TopicPartition = tuple[str, int]
AnswerCallback = Callable[[Errors, "AlterPartitionResponsePartitionData | None"], None]

RETRY_BACKOFF_S = 0.05
REQUEST_TIMEOUT_S = 30.0


@dataclass(slots=True)
class AlterPartitionItem:
    tp: TopicPartition
    topic_id: uuid.UUID | None
    change: PendingIsrChange
    callback: AnswerCallback


class AlterPartitionManager:
    def __init__(self, broker_id: int, broker_epoch: Callable[[], int], metadata_cache: MetadataCache,
                 listener_name: str, *, retry_backoff_s: float = RETRY_BACKOFF_S,
                 request_timeout_s: float = REQUEST_TIMEOUT_S, ssl_context: ssl.SSLContext | None = None) -> None:
        self.broker_id = broker_id
        self.broker_epoch = broker_epoch
        self.metadata_cache = metadata_cache
        self.listener_name = listener_name
        self.ssl_context = ssl_context  # an ssl.SSLContext when that listener is TLS
        self.retry_backoff_s = retry_backoff_s
        self.request_timeout_s = request_timeout_s
        self.unsent: dict[TopicPartition, AlterPartitionItem] = {}  # queued or in flight, in order
        self.requests_sent = 0
        self._client: NetworkClient | None = None
        self._client_target: tuple[int, str, int] | None = None
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task | None = None

    def submit(self, tp: TopicPartition, topic_id: uuid.UUID | None, change: PendingIsrChange,
               callback: AnswerCallback) -> bool:
        """Queues one partition's ISR change; False (and OPERATION_NOT_ATTEMPTED to the callback,
        soon) if that partition already has one queued or in flight."""
        loop = asyncio.get_running_loop()
        if tp in self.unsent:
            loop.call_soon(callback, Errors.OPERATION_NOT_ATTEMPTED, None)
            return False
        self.unsent[tp] = AlterPartitionItem(tp, topic_id, change, callback)
        if self._task is None:
            self._task = loop.create_task(self._run(), name=f"alter-partition-{self.broker_id}")
        self._wakeup.set()
        return True

    async def close(self) -> None:
        await stop_task(self._task)
        if self._client is not None:
            await self._client.close()

    # -- sending ----------------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self.unsent:
                try:
                    sent = await self._send_once(list(self.unsent.values()))
                except Exception:
                    log.exception("AlterPartition failed unexpectedly; retrying")
                    sent = False
                if not sent:
                    await asyncio.sleep(self.retry_backoff_s)

    async def _send_once(self, items: list[AlterPartitionItem]) -> bool:
        """One AlterPartition request for `items`; True when the controller answered it."""
        client = self._controller_client()
        if client is None:
            return False
        version = 3 if all(item.topic_id is not None for item in items) else 1
        request = self._build_request(items, version)
        self.requests_sent += 1
        try:
            response: AlterPartitionResponse = await client.send(ApiKey.ALTER_PARTITION, version, request,
                                                                 timeout_s=self.request_timeout_s)
        except ConnectionError as exc:
            log.info("AlterPartition to controller %s failed (%s); retrying", self._client_target, exc)
            return False
        error = Errors(response["error_code"])
        if error != Errors.NONE:
            log.info("controller %s answered AlterPartition with %s; retrying", self._client_target, error.name)
            if error == Errors.NOT_CONTROLLER:
                await self._drop_client()
            return False
        self._dispatch(items, response, version)
        return True

    def _build_request(self, items: list[AlterPartitionItem], version: int) -> AlterPartitionRequest:
        topics: dict[object, AlterPartitionRequestTopicData] = {}
        for item in items:
            key = item.topic_id if version >= 2 else item.tp[0]
            # A request by name (v1) carries no topic id: the encoder leaves it out.
            entry = topics.setdefault(key, {"topic_name": item.tp[0], "topic_id": item.topic_id or ZERO_UUID,
                                            "partitions": []})
            change = item.change
            entry["partitions"].append({
                "partition_index": item.tp[1], "leader_epoch": change.leader_epoch, "new_isr": list(change.new_isr),
                # In ZooKeeper mode Kafka sends no broker epochs for ISR members (-1).
                "new_isr_with_epochs": [{"broker_id": b, "broker_epoch": -1} for b in change.new_isr],
                "leader_recovery_state": change.leader_recovery_state, "partition_epoch": change.partition_epoch})
        return {"broker_id": self.broker_id, "broker_epoch": self.broker_epoch(), "topics": list(topics.values())}

    def _dispatch(self, items: list[AlterPartitionItem], response: AlterPartitionResponse, version: int) -> None:
        """Hands each partition's answer to its callback; partitions left unanswered stay queued."""
        by_key = {((item.topic_id if version >= 2 else item.tp[0]), item.tp[1]): item for item in items}
        for topic_entry in response["topics"]:
            topic_key = topic_entry["topic_id"] if version >= 2 else topic_entry["topic_name"]
            for data in topic_entry["partitions"]:
                item = by_key.get((topic_key, data["partition_index"]))
                if item is None:
                    continue
                if self.unsent.get(item.tp) is item:
                    del self.unsent[item.tp]
                error = Errors(data["error_code"])
                try:
                    item.callback(error, data if error == Errors.NONE else None)
                except Exception:
                    log.exception("AlterPartition callback for %s-%d failed", *item.tp)

    def _controller_client(self) -> NetworkClient | None:
        controller_id = self.metadata_cache.controller_id
        endpoint = self.metadata_cache.endpoint_of(controller_id, self.listener_name)
        if endpoint is None:
            return None
        target = (controller_id, endpoint.host, endpoint.port)
        if target != self._client_target or self._client is None:
            if self._client is not None:
                asyncio.get_running_loop().create_task(self._client.close())
            self._client = NetworkClient(endpoint.host, endpoint.port, f"broker-{self.broker_id}-alter-partition",
                                         request_timeout_s=self.request_timeout_s, ssl_context=self.ssl_context)
            self._client_target = target
        return self._client

    async def _drop_client(self) -> None:
        client, self._client, self._client_target = self._client, None, None
        if client is not None:
            await client.close()
