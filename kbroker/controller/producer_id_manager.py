"""ZkProducerIdManager: hands out producer ids in blocks claimed from /latest_producer_id_block.

A block of PRODUCER_ID_BLOCK_SIZE ids is claimed with a conditional setData on the znode (Kafka's
ZkProducerIdManager), so no two brokers or restarts ever hand out the same id. In cluster mode
the controller claims blocks for brokers that ask with AllocateProducerIds; in single-node mode
the broker uses it directly. It knows the znode store, nothing of requests.
"""

from __future__ import annotations

from kbroker.metadata import zk_data as zk
from kbroker.metadata.znode_store import BadVersionError, NodeExistsError, NoNodeError

PRODUCER_ID_BLOCK_SIZE = 1000


class ZkProducerIdManager:
    def __init__(self, broker_id: int, store) -> None:
        self.broker_id = broker_id
        self.store = store
        self._next = 0
        self._end = -1  # inclusive end of the current block

    def claim_block(self) -> tuple[int, int]:
        """Claims the next block; returns (first id, last id)."""
        while True:
            try:
                data, stat = self.store.get(zk.PRODUCER_ID_BLOCK)
            except NoNodeError:
                data, stat = b"", None
            start = 0 if not data else zk.decode_producer_id_block(data)[1] + 1
            end = start + PRODUCER_ID_BLOCK_SIZE - 1
            payload = zk.encode_producer_id_block(self.broker_id, start, end)
            try:
                if stat is None:
                    self.store.create(zk.PRODUCER_ID_BLOCK, payload, makepath=True)
                else:
                    self.store.set(zk.PRODUCER_ID_BLOCK, payload, stat.version)
                return start, end
            except (BadVersionError, NodeExistsError):
                continue  # another broker claimed one first: read again

    def generate_producer_id(self) -> int:
        if self._next > self._end:
            self._next, self._end = self.claim_block()
        producer_id = self._next
        self._next += 1
        return producer_id
