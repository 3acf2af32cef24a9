"""Fuzz target `requests`: whole request frames through the broker's request path, in process.

A single-node broker runs in this process (a temporary data directory, a listener on a free
127.0.0.1 port it never needs); each input is one frame (the size prefix already stripped, as
the network layer hands it over) given to KafkaApis.process, the function the network calls.
Allowed outcomes are Kafka's: a response, no response (acks=0), or the connection closed
(CloseConnection). A request still waiting after half a second (a long-poll Fetch, a JoinGroup
waiting for its rebalance) is cancelled, as a client disconnecting would. Any other exception is
a crash: the broker would log a traceback and drop the connection on a request Kafka answers.
Inputs reach every handler, so the broker's state (topics, groups, offsets) changes as the
fuzzer goes; that is intended, it is how later inputs reach deeper states.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import shutil
import tempfile
from typing import TYPE_CHECKING, cast

from fuzz.instrumentation import instrument_generated_codecs
from kbroker.api.kafka_apis import KafkaApis
from kbroker.config import KafkaConfig
from kbroker.network.socket_server import CloseConnection
from kbroker.server import KafkaServer, raise_open_file_limit

if TYPE_CHECKING:
    from kbroker.network.socket_server import KafkaConnection

REQUEST_PATIENCE_S = 0.5
instrument_generated_codecs()


class _Peer:
    """What KafkaApis.process reads of a connection: who it is, which listener it came in on and
    what it has authenticated as (nothing: ANONYMOUS)."""

    peer = "127.0.0.1:1"
    listener_name = "PLAINTEXT"
    session = None
    request_arrival = 0.0  # read only when requests are measured (metrics or the DEBUG request log)


class InProcessBroker:
    def __init__(self) -> None:
        self.data_dir = tempfile.mkdtemp(prefix="kbroker-fuzz-")
        atexit.register(shutil.rmtree, self.data_dir, True)
        logging.disable(logging.WARNING)  # refused requests log a line each; a fuzzer sends millions
        raise_open_file_limit()  # as run_broker does: the fuzzer creates topics by the thousand
        config = KafkaConfig.load(overrides=[f"log.dirs={self.data_dir}", "listeners=PLAINTEXT://127.0.0.1:0"])
        self.loop = asyncio.new_event_loop()
        self.server = KafkaServer(config)
        self.loop.run_until_complete(self.server.startup())
        assert self.server.services is not None
        self.apis = KafkaApis(self.server.services)
        self.connection = cast("KafkaConnection", _Peer())

    def close(self) -> None:
        self.loop.run_until_complete(self.server.shutdown())
        self.loop.close()
        shutil.rmtree(self.data_dir, True)

    def process(self, frame: bytes) -> None:
        try:
            self.loop.run_until_complete(
                asyncio.wait_for(self.apis.process(self.connection, memoryview(frame)), REQUEST_PATIENCE_S))
        except (TimeoutError, CloseConnection):
            pass


_broker: InProcessBroker | None = None


def test_one_input(data: bytes) -> None:
    global _broker
    if _broker is None:
        _broker = InProcessBroker()
    _broker.process(data)


def close() -> None:
    """Stop the in-process broker and remove its data: a test runner whose workers end without
    running atexit (pytest-xdist) calls this when done."""
    global _broker
    if _broker is not None:
        _broker.close()
        _broker = None
