"""The one exception type the log raises to its callers, carrying a Kafka error code.

Handlers catch `LogError` and put `.code` (and, for produce v8+, `.record_errors`) in the response.
Plain data: no I/O.
"""

from __future__ import annotations

from kbroker.protocol.errors import Errors


class LogError(Exception):
    """A failure the client sees as `code`; `record_errors` lists (index in batch, message)."""

    def __init__(self, code: Errors, message: str, record_errors: list[tuple[int, str]] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.record_errors = record_errors or []

    def __repr__(self) -> str:
        return f"LogError({self.code.name}, {self.message!r})"


class InconsistentClusterIdError(RuntimeError):
    """A log dir's meta.properties belongs to another cluster or broker id; refuse to use it."""


class LogDirLockedError(RuntimeError):
    """Another process holds a log dir's .lock."""


class KafkaStorageException(LogError):
    """An I/O error on a log directory (Kafka's KafkaStorageException): the directory is offline
    and the request answers KAFKA_STORAGE_ERROR."""

    def __init__(self, message: str):
        super().__init__(Errors.KAFKA_STORAGE_ERROR, message)


class LogDirsOfflineError(OSError):
    """No log dir of log.dirs could be created, validated or loaded: the broker cannot start."""
