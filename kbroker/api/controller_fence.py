"""ControllerFence: who may send this broker LeaderAndIsr, UpdateMetadata and StopReplica.

Kafka's fencing (KafkaApis, ReplicaManager, ZkBrokerEpochManager), made strict enough that a
request a client forges cannot pass for the controller's (issue 16, bug 12):

- a controller epoch older than the newest seen is STALE_CONTROLLER_EPOCH, as in Kafka;
- a newer epoch, or another controller id, is accepted only if it is the pair ZooKeeper holds
  (/controller_epoch and /controller, read when the pair changes, after a sync if a plain read
  disagrees; the broker also tells the fence what it reads at start-up and on each /controller
  change): no controller can hold an epoch ZooKeeper never gave out, so a future epoch is
  refused as stale too (Kafka would adopt it, then refuse the real controller's requests);
- this broker's own controller delivers its requests without a socket
  (api/controller_requests.py), so one arriving over the network in its name (always the
  case in single-node mode) is refused the same way;
- the broker epoch must be this broker's registration's (its czxid): an older one is
  STALE_BROKER_EPOCH as in Kafka, and so are a newer one and -1 ("unknown", which Kafka accepts
  for requests older than KIP-380). Every version served here carries the field, and the
  controller learns a broker's epoch from the znode this broker created before serving any
  request, so a live controller never sends anything else.

ZooKeeper is read on a thread of its own, one read at a time and each begun after its request
arrived (so a legitimate request never sees a view older than its controller's election), never
on the event loop: a ZooKeeper that does not answer delays controller requests, not the broker.
When the read fails or takes longer than READ_TIMEOUT_S the connection is closed (Kafka's
controller, like kbroker's channel, reconnects and sends the request again).
Only an authorizer (CLUSTER_ACTION, issue 12) can refuse a request that knows the real epochs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

import asyncio
import logging
from collections.abc import Callable

from kbroker.api.handlers import CloseConnection
from kbroker.network.log_limiter import RateLimitedLog, source_of
from kbroker.protocol.errors import Errors

log = logging.getLogger("kbroker.api.controller_fence")
refusal_log = RateLimitedLog(log)

READ_TIMEOUT_S = 5.0


class ControllerFence:
    def __init__(self, broker_id: int, broker_epoch: Callable[[], int],
                 current_controller: Callable[[bool], tuple[int, int]]) -> None:
        self.broker_id = broker_id
        self.broker_epoch = broker_epoch  # changes when the broker registers again after a session loss
        # current_controller(sync) -> (epoch, controller id) as ZooKeeper holds them; blocking: run on _reader
        self.current_controller = current_controller
        self.controller_epoch_seen = 0
        self.controller_id_seen = -1
        self._reader: ThreadPoolExecutor | None = None

    async def check(self, controller_id: int, controller_epoch: int, broker_epoch: int, peer: str = "?") -> Errors:
        """The error for a controller request carrying these ids and epochs, or NONE; `peer` is
        the connection's address, for the log line of a refusal."""
        error = await self._verdict(controller_id, controller_epoch, broker_epoch)
        if error:
            # Kafka logs each refusal; one line per sender and interval here, as a forger could
            # otherwise grow the log without bound (issue 16, bug 6).
            refusal_log.warning(
                source_of(peer), "controller request",
                "refused a controller request from %s (%s) claiming controller %d, epoch %d and broker epoch %d: "
                "we know controller %d at epoch %d and broker epoch %d", peer, error.name, controller_id,
                controller_epoch, broker_epoch, self.controller_id_seen, self.controller_epoch_seen,
                self.broker_epoch())
        else:
            self.controller_epoch_seen, self.controller_id_seen = controller_epoch, controller_id
        return error

    def learn(self, controller_epoch: int, controller_id: int) -> None:
        """The controller and epoch just read from ZooKeeper (at start-up, and when /controller
        changes): the first requests of that controller then pass without a read of their own."""
        if controller_epoch >= self.controller_epoch_seen and controller_id >= 0:
            self.controller_epoch_seen, self.controller_id_seen = controller_epoch, controller_id

    async def _verdict(self, controller_id: int, controller_epoch: int, broker_epoch: int) -> Errors:
        if controller_id == self.broker_id or controller_epoch < self.controller_epoch_seen:
            return Errors.STALE_CONTROLLER_EPOCH
        claim = (controller_epoch, controller_id)
        if claim != (self.controller_epoch_seen, self.controller_id_seen):
            # A plain read that shows the claim proves it (ZooKeeper never goes back); only a
            # mismatch needs the sync, in case our server lags behind a new election.
            if claim != await self._read_current(sync=False) and claim != await self._read_current(sync=True):
                return Errors.STALE_CONTROLLER_EPOCH
            if controller_epoch < self.controller_epoch_seen:  # a newer controller spoke meanwhile
                return Errors.STALE_CONTROLLER_EPOCH
        if broker_epoch != self.broker_epoch():
            return Errors.STALE_BROKER_EPOCH
        return Errors.NONE

    async def _read_current(self, sync: bool) -> tuple[int, int]:
        if self._reader is None:
            from concurrent.futures import ThreadPoolExecutor  # a broker that is never asked needs no thread

            self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="controller-fence")
        read = asyncio.get_running_loop().run_in_executor(self._reader, self.current_controller, sync)
        try:
            return await asyncio.wait_for(read, READ_TIMEOUT_S)
        except Exception as exc:
            log.warning("closing a controller request's connection: cannot read the controller from ZooKeeper "
                        "(%s)", exc.__class__.__name__)
            raise CloseConnection from None

    def close(self) -> None:
        if self._reader is not None:
            self._reader.shutdown(wait=False, cancel_futures=True)
