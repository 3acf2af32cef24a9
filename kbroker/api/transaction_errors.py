"""The transaction coordinator's errors as each request version may carry them.

PRODUCER_FENCED (90) is newer than the transaction APIs: Kafka answers older versions with
INVALID_PRODUCER_EPOCH instead, which their clients handle the same way (KafkaApis does this
per API: InitProducerId before v4, AddPartitionsToTxn, AddOffsetsToTxn and EndTxn before v2).
"""

from __future__ import annotations

from kbroker.protocol.errors import Errors


def for_version(error: Errors, version: int, first_version_with_producer_fenced: int) -> Errors:
    """The error to send to a client speaking `version` of an API."""
    if error == Errors.PRODUCER_FENCED and version < first_version_with_producer_fenced:
        return Errors.INVALID_PRODUCER_EPOCH
    return error
