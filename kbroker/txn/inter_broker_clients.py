"""One NetworkClient per broker, by broker id, for the transaction coordinator's requests to
other brokers (WriteTxnMarkers to partition leaders, AddPartitionsToTxn verification to other
coordinators). A broker that came back on another address gets a new client.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from kbroker.network.network_client import NetworkClient

if TYPE_CHECKING:
    import ssl

    from kbroker.metadata.metadata_cache import MetadataCache


class InterBrokerClients:
    def __init__(self, broker_id: int, metadata_cache: MetadataCache, listener_name: str, purpose: str,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.metadata_cache = metadata_cache
        self.ssl_context = ssl_context  # an ssl.SSLContext when the inter-broker listener is TLS
        self.listener_name = listener_name
        self.client_id = f"broker-{broker_id}-{purpose}"
        self.clients: dict[int, NetworkClient] = {}

    def get(self, broker_id: int) -> NetworkClient | None:
        """The client for a live broker's inter-broker endpoint; None if the broker is unknown."""
        endpoint = self.metadata_cache.endpoint_of(broker_id, self.listener_name)
        if endpoint is None:
            return None
        client = self.clients.get(broker_id)
        if client is not None and (client.host, client.port) != (endpoint.host, endpoint.port):
            asyncio.get_running_loop().create_task(client.close())
            client = None
        if client is None:
            client = self.clients[broker_id] = NetworkClient(endpoint.host, endpoint.port, self.client_id,
                                                                      ssl_context=self.ssl_context)
        return client

    async def close(self) -> None:
        for client in self.clients.values():
            await client.close()
        self.clients.clear()
