"""Errors: every code Kafka defines, each with Kafka's default message and retriable flag."""

from __future__ import annotations

import pytest

from kbroker.protocol.errors import RETRIABLE, Errors


def test_every_code_kafka_defines_is_there_without_gaps():
    # Errors.java numbers its codes from -1 (UNKNOWN_SERVER_ERROR) up without holes.
    assert sorted(int(e) for e in Errors) == list(range(-1, 137))


def test_every_error_has_a_message_and_success_has_none():
    # Kafka's NONE has a null message; a response without an error carries none.
    assert Errors.NONE.message is None
    assert [e.name for e in Errors if e is not Errors.NONE and not (e.message and e.message.strip())] == []
    assert len({e.message for e in Errors}) == len(Errors)  # no message pasted under a second code


@pytest.mark.parametrize(("error", "code", "message"), [
    (Errors.UNKNOWN_SERVER_ERROR, -1, "The server experienced an unexpected error when processing the request."),
    (Errors.UNKNOWN_TOPIC_OR_PARTITION, 3, "This server does not host this topic-partition."),
    (Errors.NOT_CONTROLLER, 41, "This is not the correct controller for this cluster."),
    (Errors.INVALID_REPLICATION_FACTOR, 38,
     "Replication factor is below 1 or larger than the number of available brokers."),
    (Errors.INVALID_GROUP_ID, 24, "The group id is invalid."),
    (Errors.FENCED_LEADER_EPOCH, 74, "The leader epoch in the request is older than the epoch on the broker."),
    (Errors.REBOOTSTRAP_REQUIRED, 129,
     "Client metadata is stale. The client should rebootstrap to obtain new metadata."),
    (Errors.CONTROLLER_ID_NOT_REGISTERED, 136, "The given controller ID was not registered."),
])
def test_codes_and_messages_are_kafkas(error, code, message):
    assert Errors(code) is error
    assert error.message == message


def test_the_retriable_flag():
    assert Errors.NOT_CONTROLLER.retriable and Errors.NOT_LEADER_OR_FOLLOWER.retriable
    assert not Errors.TOPIC_AUTHORIZATION_FAILED.retriable and not Errors.NONE.retriable
    assert {e for e in Errors if e.retriable} == RETRIABLE


def test_errors_stay_plain_ints():
    # The codec writes them as int16 and compares them with decoded codes.
    assert Errors.NOT_CONTROLLER == 41 and isinstance(Errors.NOT_CONTROLLER, int)
    assert Errors["NOT_CONTROLLER"] is Errors(41)
