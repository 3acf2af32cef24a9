"""LastClientError: librdkafka's error lines kept off the log, the last one remembered.

A confluent-kafka client reports many failures in general terms ("Broker transport failure");
the line librdkafka logged just before says why ("SASL authentication error: ...", "Connect to
... failed: Connection refused"). The web console and the tools (kbroker/tools/common.py) give
their clients a logger with this handler and add the line to the error they show. It imports
no client library.
"""

from __future__ import annotations

import logging


class LastClientError(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.message: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        # "FAIL [rdkafka#producer-1] [thrd:...]: host:port/bootstrap: Connect to ... failed: ..."
        self.message = record.getMessage().split("]: ", 1)[-1]
