"""CreateTopics and CreatePartitions asking for absurd partition counts, over raw sockets against
a kbroker subprocess of their own (a broker that fell over must not take other modules' tests
with it).

Kafka 4's controller refuses a CreateTopics request whose topics add up to more than 10,000
partitions before it places a single replica (ReplicationControlManager.MAX_PARTITIONS_PER_BATCH,
POLICY_VIOLATION "Excessively large number of partitions per request.", every topic of the
request answered alike); kbroker applies the same bound to the partitions a CreatePartitions
request adds. Without it a count of 2,147,483,647 made the broker place replicas until the kernel
killed it. Each test gets its answer within the raw client's ordinary socket timeout and then
checks the broker still serves the next request on the same connection.
"""

from __future__ import annotations

import pytest

from kbroker.testing.raw_client import CREATE_TOPICS, METADATA, NONE, RawClient, create_topic

CREATE_PARTITIONS = 37
POLICY_VIOLATION = 44
INVALID_REQUEST = 42
MAX_INT32 = 2**31 - 1
LIMIT = 10_000
EXCESSIVE = "Excessively large number of partitions per request."


@pytest.fixture(scope="module")
def kbroker(module_broker_factory):
    return module_broker_factory()


def creatable(name: str, partitions: int, replication_factor: int = 1) -> dict:
    return {"name": name, "num_partitions": partitions, "replication_factor": replication_factor}


def create_topics(client: RawClient, topics: list[dict], version: int = 7,
                  validate_only: bool = False) -> list[dict]:
    body = {"topics": topics, "timeout_ms": 10000, "validate_only": validate_only}
    return client.call(CREATE_TOPICS, version, body)["topics"]


def create_partitions(client: RawClient, counts: dict[str, int], validate_only: bool = False) -> list[dict]:
    body = {"topics": [{"name": n, "count": c, "assignments": None} for n, c in counts.items()],
            "timeout_ms": 10000, "validate_only": validate_only}
    return client.call(CREATE_PARTITIONS, 3, body)["results"]


def partition_count(client: RawClient, name: str) -> int:
    answer = client.call(METADATA, 12, {"topics": [{"name": name}], "allow_auto_topic_creation": False})
    [topic] = answer["topics"]
    return len(topic["partitions"]) if topic["error_code"] == NONE else -1


@pytest.mark.parametrize("version", [0, 4, 7])
def test_create_topics_with_max_int_partitions_is_a_policy_violation(kbroker, version):
    with RawClient(kbroker.port) as client:
        [answer] = create_topics(client, [creatable(f"limits-huge-v{version}", MAX_INT32)], version)

        assert answer["error_code"] == POLICY_VIOLATION
        if version >= 1:
            assert answer["error_message"] == EXCESSIVE
        assert partition_count(client, f"limits-huge-v{version}") == -1


def test_the_bound_counts_every_topic_of_the_request_and_answers_them_all(kbroker):
    topics = [creatable("limits-half-a", LIMIT // 2), creatable("limits-half-b", LIMIT // 2 + 1),
              creatable("limits-small", 1), creatable("limits-small", 1)]
    with RawClient(kbroker.port) as client:
        answers = create_topics(client, topics, validate_only=True)

        assert [(a["name"], a["error_code"], a["error_message"]) for a in answers] == [
            ("limits-half-a", POLICY_VIOLATION, EXCESSIVE),
            ("limits-half-b", POLICY_VIOLATION, EXCESSIVE),
            ("limits-small", POLICY_VIOLATION, EXCESSIVE),
            ("limits-small", POLICY_VIOLATION, EXCESSIVE),
        ]


def test_a_huge_replication_factor_is_refused_before_any_placement(kbroker):
    with RawClient(kbroker.port) as client:
        [answer] = create_topics(client, [creatable("limits-rf", LIMIT, replication_factor=32767)])

        assert answer["error_code"] == 38  # INVALID_REPLICATION_FACTOR: one broker
        assert partition_count(client, "limits-rf") == -1


def test_exactly_the_bound_is_allowed(kbroker):
    """validate_only: the bound is on the request, and placing 10,000 partitions is cheap; creating
    them for real would make 10,000 log directories, which this test has no need of."""
    with RawClient(kbroker.port) as client:
        [answer] = create_topics(client, [creatable("limits-at-bound", LIMIT)], validate_only=True)

        assert (answer["error_code"], answer["num_partitions"]) == (NONE, LIMIT)


def test_create_partitions_to_max_int_is_a_policy_violation(kbroker):
    create_topic(kbroker.port, "limits-grow")
    create_topic(kbroker.port, "limits-grow-too")
    with RawClient(kbroker.port) as client:
        answers = create_partitions(client, {"limits-grow": MAX_INT32, "limits-grow-too": 2})

        assert [(a["name"], a["error_code"], a["error_message"]) for a in answers] == [
            ("limits-grow", POLICY_VIOLATION, EXCESSIVE),
            ("limits-grow-too", POLICY_VIOLATION, EXCESSIVE),
        ]
        assert partition_count(client, "limits-grow") == 1
        assert partition_count(client, "limits-grow-too") == 1


def test_create_partitions_counts_only_the_partitions_it_adds(kbroker):
    create_topic(kbroker.port, "limits-grow-small", partitions=3)
    with RawClient(kbroker.port) as client:
        [at_bound] = create_partitions(client, {"limits-grow-small": 3 + LIMIT}, validate_only=True)
        [over] = create_partitions(client, {"limits-grow-small": 3 + LIMIT + 1}, validate_only=True)
        [grown] = create_partitions(client, {"limits-grow-small": 5})

        assert at_bound["error_code"] == NONE
        assert (over["error_code"], over["error_message"]) == (POLICY_VIOLATION, EXCESSIVE)
        assert grown["error_code"] == NONE
        assert partition_count(client, "limits-grow-small") == 5
