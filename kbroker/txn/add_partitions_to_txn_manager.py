"""AddPartitionsToTxnManager: a partition leader asks a transaction's coordinator whether a
partition was added to the transaction before it appends the transaction's first batch there
(KIP-890 part 1, Kafka's AddPartitionsToTxnManager), so a late or stray transactional write
cannot open a transaction the coordinator will never end (a "hanging" transaction).

The coordinator is the leader of the id's `__transaction_state` partition: this broker's own
TransactionCoordinator answers without a socket; another broker gets AddPartitionsToTxn v4 with
`verify_only`. Answers per partition, as Kafka's manager gives them to the produce path:
NONE, TRANSACTION_ABORTABLE (not in the transaction), INVALID_PRODUCER_EPOCH (for
PRODUCER_FENCED), INVALID_PRODUCER_ID_MAPPING, CONCURRENT_TRANSACTIONS,
COORDINATOR_NOT_AVAILABLE (no live coordinator), NOT_COORDINATOR, NETWORK_EXCEPTION.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from kbroker.metadata.topic_names import TRANSACTION_STATE_TOPIC_NAME
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors
from kbroker.txn.inter_broker_clients import InterBrokerClients
from kbroker.txn.transaction_log import group_by_topic
from kbroker.txn.transaction_metadata import TopicPartition

if TYPE_CHECKING:
    import ssl

    from kbroker.metadata.metadata_cache import MetadataCache

log = logging.getLogger("kbroker.txn")

VERIFY_VERSION = 4
# verify_locally(transactional_id, producer_id, producer_epoch, partitions) -> errors per partition
VerifyLocally = Callable[[str, int, int, set[TopicPartition]], dict[TopicPartition, Errors]]


class AddPartitionsToTxnManager:
    def __init__(self, broker_id: int, metadata_cache: MetadataCache, partition_for: Callable[[str], int],
                 verify_locally: VerifyLocally, inter_broker_listener: str, request_timeout_ms: int = 30000,
                 inter_broker_ssl: ssl.SSLContext | None = None) -> None:
        self.broker_id = broker_id
        self.metadata_cache = metadata_cache
        self.partition_for = partition_for
        self.verify_locally = verify_locally
        self.request_timeout_ms = request_timeout_ms
        self.clients = InterBrokerClients(broker_id, metadata_cache, inter_broker_listener, "txn-verification",
                                          inter_broker_ssl)

    async def verify_transaction(self, transactional_id: str, producer_id: int, producer_epoch: int,
                                 partitions: set[TopicPartition]) -> dict[TopicPartition, Errors]:
        state = self.metadata_cache.partition(TRANSACTION_STATE_TOPIC_NAME, self.partition_for(transactional_id))
        if state is None or not self.metadata_cache.is_alive(state.leader):
            return dict.fromkeys(partitions, Errors.COORDINATOR_NOT_AVAILABLE)
        if state.leader == self.broker_id:
            errors = self.verify_locally(transactional_id, producer_id, producer_epoch, partitions)
        else:
            errors = await self._verify_remotely(state.leader, transactional_id, producer_id, producer_epoch,
                                                 partitions)
        return {tp: Errors.INVALID_PRODUCER_EPOCH if error == Errors.PRODUCER_FENCED else error
                for tp, error in errors.items()}

    async def _verify_remotely(self, coordinator: int, transactional_id: str, producer_id: int, producer_epoch: int,
                               partitions: set[TopicPartition]) -> dict[TopicPartition, Errors]:
        client = self.clients.get(coordinator)
        if client is None:
            return dict.fromkeys(partitions, Errors.COORDINATOR_NOT_AVAILABLE)
        request = {"transactions": [{
            "transactional_id": transactional_id, "producer_id": producer_id, "producer_epoch": producer_epoch,
            "verify_only": True,
            "topics": [{"name": topic, "partitions": ids} for topic, ids in group_by_topic(partitions)]}]}
        try:
            answer = await client.send(ApiKey.ADD_PARTITIONS_TO_TXN, VERIFY_VERSION, request,
                                       timeout_s=self.request_timeout_ms / 1000)
        except ConnectionError as exc:
            log.info("verifying %s with coordinator %d failed: %s", transactional_id, coordinator, exc)
            return dict.fromkeys(partitions, Errors.NETWORK_EXCEPTION)
        if answer["error_code"]:
            return dict.fromkeys(partitions, Errors(answer["error_code"]))
        errors: dict[TopicPartition, Errors] = {}
        for result in answer["results_by_transaction"]:
            for topic in result["topic_results"]:
                for p in topic["results_by_partition"]:
                    errors[(topic["name"], p["partition_index"])] = Errors(p["partition_error_code"])
        return {tp: errors.get(tp, Errors.UNKNOWN_SERVER_ERROR) for tp in partitions}

    async def close(self) -> None:
        await self.clients.close()
