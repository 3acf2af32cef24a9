"""BrokerServices: the services a request handler may use, built once by the server at start-up.

Handlers reach the broker through `ctx.services` only, never through KafkaServer: the replica
manager, the metadata cache, the admin manager, the controller, the producer id manager, the v0
consumer offsets kept in ZooKeeper, the configuration and this broker's id, plus the fence
that refuses stale controller requests. The group coordinator is built the first time
something needs it (a broker that never sees a group starts faster and idles in less memory),
behind the non-optional `group_coordinator` accessor.
It holds no sockets and not the server: nothing here may reach past the services.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kbroker.protocol.errors import Errors

if TYPE_CHECKING:  # the group coordinator is imported only when it is first built
    from kbroker.config import KafkaConfig
    from kbroker.controller.kafka_controller import KafkaController
    from kbroker.controller.producer_id_manager import ZkProducerIdManager
    from kbroker.group.group_coordinator import GroupCoordinator
    from kbroker.group.zk_consumer_offsets import ZkConsumerOffsets
    from kbroker.metadata.admin_manager import AdminManager
    from kbroker.metadata.metadata_cache import MetadataCache
    from kbroker.replica.replica_manager import ReplicaManager


class ControllerFence:
    """Kafka's fencing of the controller's requests (LeaderAndIsr, UpdateMetadata, StopReplica),
    made strict enough that a request a client forges cannot pass for the controller's:

    - a controller epoch older than the newest seen is STALE_CONTROLLER_EPOCH, as in Kafka;
    - a newer epoch, or another controller id, is accepted only if it is the pair ZooKeeper holds
      (/controller_epoch and /controller, read after a sync only when they change): no
      controller can hold an epoch ZooKeeper never gave out, so a future epoch is refused as
      stale too (Kafka would adopt it and then refuse the real controller's requests);
    - this broker's own controller delivers its requests without a socket, so one arriving over
      the network in its name (always the case in single-node mode) is refused the same way;
    - the broker epoch must be this broker's registration's (its czxid): an older one is
      STALE_BROKER_EPOCH as in Kafka, and so are a newer one and -1 ("unknown", which Kafka
      accepts for requests older than KIP-380). Every version served here carries the field, and
      the controller learns a broker's epoch from the znode this broker created before it
      serves any request, so a live controller never sends anything else.
    """

    def __init__(self, broker_id: int, broker_epoch: Callable[[], int],
                 current_controller: Callable[[], tuple[int, int]]) -> None:
        self.broker_id = broker_id
        self.broker_epoch = broker_epoch  # changes when the broker registers again after a session loss
        self.current_controller = current_controller  # (epoch, controller id) as ZooKeeper holds them
        self.controller_epoch_seen = 0
        self.controller_id_seen = -1

    def check(self, controller_id: int, controller_epoch: int, broker_epoch: int) -> Errors:
        """The error for a controller request carrying these ids and epochs, or NONE."""
        if controller_epoch < self.controller_epoch_seen:
            return Errors.STALE_CONTROLLER_EPOCH
        if (controller_epoch, controller_id) != (self.controller_epoch_seen, self.controller_id_seen):
            if controller_id == self.broker_id or (controller_epoch, controller_id) != self.current_controller():
                return Errors.STALE_CONTROLLER_EPOCH
        if broker_epoch != self.broker_epoch():
            return Errors.STALE_BROKER_EPOCH
        self.controller_epoch_seen, self.controller_id_seen = controller_epoch, controller_id
        return Errors.NONE


@dataclass(slots=True, eq=False)
class BrokerServices:
    broker_id: int
    config: KafkaConfig
    metadata_cache: MetadataCache
    replica_manager: ReplicaManager
    admin_manager: AdminManager
    controller: KafkaController
    producer_id_manager: ZkProducerIdManager
    zk_consumer_offsets: ZkConsumerOffsets
    controller_fence: ControllerFence
    build_group_coordinator: Callable[[], GroupCoordinator]
    _group_coordinator: GroupCoordinator | None = field(default=None, init=False, repr=False)

    @property
    def group_coordinator(self) -> GroupCoordinator:
        """The group coordinator, built and started the first time anything needs it."""
        coordinator = self._group_coordinator
        if coordinator is None:
            coordinator = self._group_coordinator = self.build_group_coordinator()
        return coordinator

    @property
    def started_group_coordinator(self) -> GroupCoordinator | None:
        """The group coordinator if it was built: without one, no group has state to update."""
        return self._group_coordinator
