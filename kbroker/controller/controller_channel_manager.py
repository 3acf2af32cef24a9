"""ControllerChannelManager: delivers the controller's requests to each broker, in order.

One queue per broker, drained by one task that sends each request over a NetworkClient to the
broker's inter-broker endpoint and waits for its answer before the next (Kafka's
RequestSendThread), retrying on connection failures while the broker stays live. Requests for
this broker itself are handed over locally, in the same order, without a socket. Responses are
only logged: the controller learns outcomes from ZooKeeper and AlterPartition, as Kafka's does.
It knows brokers' endpoints and the NetworkClient, not what requests mean.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from kbroker.background import stop_task
from kbroker.protocol.api_keys import ApiKey

if TYPE_CHECKING:
    import ssl

    from kbroker.network.network_client import NetworkClient

log = logging.getLogger("kbroker.controller.channel")

RETRY_BACKOFF_S = 0.1


class _BrokerQueue:
    def __init__(self, broker_id: int, client: NetworkClient) -> None:
        self.broker_id = broker_id
        self.client = client
        self.queue: asyncio.Queue[tuple[int, int, dict, Callable[[dict], None] | None]] = asyncio.Queue()
        self.task: asyncio.Task | None = None


class ControllerChannelManager:
    def __init__(self, local_broker_id: int, deliver_locally: Callable[[int, dict], dict | None],
                 client_id: str, ssl_context: ssl.SSLContext | None = None) -> None:
        """`ssl_context`: an ssl.SSLContext when the brokers' controller listener is TLS."""
        self.local_broker_id = local_broker_id
        self.deliver_locally = deliver_locally
        self.client_id = client_id
        self.ssl_context = ssl_context
        self.brokers: dict[int, _BrokerQueue] = {}

    def add_broker(self, broker_id: int, host: str, port: int) -> None:
        if broker_id == self.local_broker_id or broker_id in self.brokers:
            return
        # Here, not at import: a single-node broker only ever delivers to itself.
        from kbroker.network.network_client import NetworkClient

        queue = _BrokerQueue(broker_id, NetworkClient(host, port, self.client_id, ssl_context=self.ssl_context))
        queue.task = asyncio.get_running_loop().create_task(self._drain(queue))
        self.brokers[broker_id] = queue

    def remove_broker(self, broker_id: int) -> None:
        queue = self.brokers.pop(broker_id, None)
        if queue is not None and queue.task is not None:
            queue.task.cancel()
            asyncio.get_running_loop().create_task(queue.client.close())

    def send(self, broker_id: int, api_key: int, version: int, request: dict,
             on_response: Callable[[dict], None] | None = None) -> None:
        """Queues a request; `on_response` (if given) gets the broker's answer, on the loop."""
        if broker_id == self.local_broker_id:
            response = self.deliver_locally(api_key, request)
            if on_response is not None:
                on_response(response or {"error_code": 0})
            return
        queue = self.brokers.get(broker_id)
        if queue is None:
            log.warning("no channel to broker %d: dropping %s", broker_id, ApiKey(api_key).name)
            return
        queue.queue.put_nowait((api_key, version, request, on_response))

    async def _drain(self, broker: _BrokerQueue) -> None:
        while True:
            api_key, version, request, on_response = await broker.queue.get()
            while True:
                try:
                    response = await broker.client.send(api_key, version, request)
                except ConnectionError as exc:
                    log.info("sending %s to broker %d failed (%s); retrying", ApiKey(api_key).name,
                             broker.broker_id, exc)
                    await asyncio.sleep(RETRY_BACKOFF_S)
                    continue
                except Exception:  # e.g. a request the codec refuses: drop it, keep the channel alive
                    log.exception("cannot send %s to broker %d: dropped", ApiKey(api_key).name, broker.broker_id)
                    break
                if response.get("error_code"):
                    log.warning("broker %d answered %s with error %d", broker.broker_id, ApiKey(api_key).name,
                                response["error_code"])
                if on_response is not None:
                    on_response(response)
                break

    async def close(self) -> None:
        for broker_id in list(self.brokers):
            queue = self.brokers.pop(broker_id)
            await stop_task(queue.task)
            await queue.client.close()
