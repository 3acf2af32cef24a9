"""KBrokerContainer: kbroker's Docker image as a testcontainers module.

    from kbroker.testcontainers import KBrokerContainer

    with KBrokerContainer() as kafka:
        producer = Producer({"bootstrap.servers": kafka.get_bootstrap_server()})

The same methods as testcontainers' KafkaContainer where they make sense (`get_bootstrap_server()`,
`start()`, `stop()`, `with_env()`), for suites that switch images. The image is the repository's
Dockerfile (`docker build -t kbroker .`); `settings` are passed as KBROKER_* variables. Needs the
`testcontainers` extra and a Docker engine. It imports nothing of the broker.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any

from testcontainers.core.container import DockerContainer
from testcontainers.core.waiting_utils import wait_for_logs

CONTAINER_PORT = 9092
STARTED_LINE = r"kbroker \d+ started in"


def _free_host_port() -> int:
    with socket.socket() as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


class KBrokerContainer(DockerContainer):
    """A single-node kbroker in a container, advertised at the host port it is published on."""

    def __init__(self, image: str = "kbroker:latest", settings: Mapping[str, Any] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(image, **kwargs)
        # The advertised address must be the one clients on the host use, known before the broker
        # starts: publish on a host port picked now rather than on a random one picked by Docker.
        self.host_port = _free_host_port()
        self.with_bind_ports(CONTAINER_PORT, self.host_port)
        for key, value in (settings or {}).items():
            self.with_env("KBROKER_" + key.upper().replace(".", "_"), str(value))

    def start(self, timeout: float = 60.0) -> KBrokerContainer:
        self.with_env("KBROKER_LISTENERS", f"PLAINTEXT://0.0.0.0:{CONTAINER_PORT}")
        self.with_env("KBROKER_ADVERTISED_LISTENERS",
                      f"PLAINTEXT://{self.get_container_host_ip()}:{self.host_port}")
        super().start()
        wait_for_logs(self, STARTED_LINE, timeout=timeout)
        return self

    def get_bootstrap_server(self) -> str:
        return f"{self.get_container_host_ip()}:{self.host_port}"
