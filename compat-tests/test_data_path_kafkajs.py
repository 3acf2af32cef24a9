"""KafkaJS against a real kbroker: its idempotent producer sends thousands of records (gzip and
uncompressed; KafkaJS ships no other codec), its Fetch decoding reads them back, its admin client
looks offsets up by time and administers topics.

KafkaJS consumes only through a consumer group, which would decide the partitions and starting
offsets itself; to read every partition whole, from offset 0, the records are read with KafkaJS's
Cluster and Broker.fetch (js/partition_reader.js). Its group consumer is tested in
test_groups_clients.py. Keys, values and header values travel base64-encoded between Python and
the scripts.
"""

from __future__ import annotations

import base64
import json

import pytest

from kbroker.testing.records import (
    CODEC_IDS,
    assert_codec_used,
    by_partition,
    first_offset_at_or_after,
    sample_records,
)
from kbroker.testing.tools import run_kafkajs

PARTITIONS = 3
RECORDS_PER_CODEC = 2000
CHUNK = 250  # records per send(): several produce requests, each one batch per partition
TOPIC_RESOURCE = 2  # ConfigResourceTypes.TOPIC
KAFKAJS_CODECS = ("none", "gzip")


@pytest.fixture(scope="module")
def kbroker(module_broker_factory):
    return module_broker_factory(f"num.partitions={PARTITIONS}")


def b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def as_js(record) -> dict:
    return {
        "partition": record.partition,
        "timestamp": record.timestamp,
        "key": b64(record.key),
        "value": b64(record.value),
        "headers": [[name, b64(value)] for name, value in record.headers],
    }


def as_received(record) -> dict:
    """What partition_reader.js prints for a sample record."""
    fields = as_js(record)
    del fields["partition"]
    return fields


def write_json(tmp_path, name: str, content) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(content))
    return str(path)


def produce_and_read(kbroker, tmp_path, spec: dict) -> dict:
    """Run produce_read.js; its answer comes back through a file (it is megabytes)."""
    answer_path = tmp_path / "answer.json"
    printed = run_kafkajs(
        "produce_read.js", kbroker.bootstrap, write_json(tmp_path, "spec.json", spec), str(answer_path)
    )
    assert printed == {"answer": str(answer_path)}
    return json.loads(answer_path.read_text())


@pytest.mark.parametrize("codec", list(CODEC_IDS))
def test_produce_and_read_back_every_record(kbroker, tmp_path, codec):
    if codec not in KAFKAJS_CODECS:
        pytest.skip(f"KafkaJS has no {codec} codec built in (it needs a codec package from npm)")
    topic = f"kjs-roundtrip-{codec}"
    records = sample_records(RECORDS_PER_CODEC, PARTITIONS, seed=50 + CODEC_IDS[codec])
    spec = {"topic": topic, "compression": codec, "chunk": CHUNK, "records": [as_js(r) for r in records]}

    answer = produce_and_read(kbroker, tmp_path, spec)

    for partition, rs in by_partition(records).items():
        # Each send's acknowledgement starts where the previous one for the partition ended.
        acks = [(base, count) for p, base, count in answer["acks"] if p == partition]
        assert [base for base, _ in acks] == [sum(c for _, c in acks[:i]) for i in range(len(acks))]
        assert sum(count for _, count in acks) == len(rs)
        read = answer["partitions"][str(partition)]
        assert read["highWatermark"] == len(rs)
        assert [m.pop("offset") for m in read["messages"]] == list(range(len(rs)))
        assert read["messages"] == [as_received(r) for r in rs]
    assert_codec_used(kbroker.log_dir, topic, PARTITIONS, codec)


def test_offsets_by_timestamp_earliest_and_latest(kbroker, tmp_path):
    topic = "kjs-times"
    records = sample_records(900, PARTITIONS, seed=60)
    spec = {"topic": topic, "compression": "gzip", "chunk": 300, "records": [as_js(r) for r in records]}
    produce_and_read(kbroker, tmp_path, spec)
    middle = records[len(records) // 2].timestamp + 1
    before_all = records[0].timestamp - 1000

    answer = run_kafkajs("offsets_by_time.js", kbroker.bootstrap, topic, str(middle), str(before_all))

    counts = {p: len(rs) for p, rs in by_partition(records).items()}
    by_time = {
        ts: {e["partition"]: int(e["offset"]) for e in found} for ts, found in answer["byTimestamp"].items()
    }
    assert by_time[str(middle)] == {p: first_offset_at_or_after(records, p, middle) for p in counts}
    assert by_time[str(before_all)] == dict.fromkeys(counts, 0)
    assert {e["partition"]: (int(e["low"]), int(e["high"])) for e in answer["offsets"]} == {
        p: (0, n) for p, n in counts.items()
    }


def run_admin_steps(kbroker, tmp_path, steps: list) -> list[dict]:
    answer = run_kafkajs("admin_steps.js", kbroker.bootstrap, write_json(tmp_path, "steps.json", steps))
    assert len(answer["steps"]) == len(steps)
    return answer["steps"]


def test_create_describe_alter_grow_delete_a_topic(kbroker, tmp_path):
    topic = "kjs-admin"
    resource = {"type": TOPIC_RESOURCE, "name": topic}
    steps = [
        [
            "createTopics",
            {
                "topics": [
                    {
                        "topic": topic,
                        "numPartitions": 2,
                        "replicationFactor": 1,
                        "configEntries": [{"name": "retention.ms", "value": "3600000"}],
                    }
                ]
            },
        ],
        ["fetchTopicMetadata", {"topics": [topic]}],
        [
            "describeConfigs",
            {"resources": [{**resource, "configNames": ["retention.ms"]}], "includeSynonyms": False},
        ],
        [
            "alterConfigs",
            {"resources": [{**resource, "configEntries": [{"name": "retention.ms", "value": "60000"}]}]},
        ],
        [
            "describeConfigs",
            {"resources": [{**resource, "configNames": ["retention.ms"]}], "includeSynonyms": False},
        ],
        ["createPartitions", {"topicPartitions": [{"topic": topic, "count": 3}]}],
        ["fetchTopicMetadata", {"topics": [topic]}],
        ["deleteTopics", {"topics": [topic]}],
        ["listTopics", None],
    ]

    created, metadata, before, altered, after, grown, regrown, deleted, listed = run_admin_steps(
        kbroker, tmp_path, steps
    )

    assert created == {"result": True}
    [described] = metadata["result"]["topics"]
    assert sorted(p["partitionId"] for p in described["partitions"]) == [0, 1]

    def retention(outcome) -> str:
        [res] = outcome["result"]["resources"]
        assert res["errorCode"] == 0, res
        return {e["configName"]: e["configValue"] for e in res["configEntries"]}["retention.ms"]

    assert retention(before) == "3600000"
    assert "error" not in altered, altered
    assert retention(after) == "60000"
    assert grown == {"result": None}  # createPartitions resolves to nothing
    [regrown_topic] = regrown["result"]["topics"]
    assert sorted(p["partitionId"] for p in regrown_topic["partitions"]) == [0, 1, 2]
    assert "error" not in deleted, deleted
    assert topic not in listed["result"]


def test_admin_errors(kbroker, tmp_path):
    def create(name: str, replication_factor: int = 1) -> list:
        return [
            "createTopics",
            {"topics": [{"topic": name, "numPartitions": 1, "replicationFactor": replication_factor}]},
        ]

    steps = [
        create("kjs.collide"),
        create("kjs.collide"),  # already there: KafkaJS answers false rather than failing
        create("kjs_collide"),
        create("kjs-rf3", replication_factor=3),
        create("kjs/slash"),
        ["deleteTopics", {"topics": ["kjs-never-created"]}],
        ["createPartitions", {"topicPartitions": [{"topic": "kjs.collide", "count": 1}]}],
        ["listTopics", None],
    ]

    first, again, collide, rf3, slash, delete_unknown, shrink, listed = run_admin_steps(
        kbroker, tmp_path, steps
    )

    assert first == {"result": True}
    assert again == {"result": False}
    assert [e["type"] for e in collide["error"]["errors"]] == ["INVALID_TOPIC_EXCEPTION"]
    assert [e["type"] for e in rf3["error"]["errors"]] == ["INVALID_REPLICATION_FACTOR"]
    assert [e["type"] for e in slash["error"]["errors"]] == ["INVALID_TOPIC_EXCEPTION"]
    assert delete_unknown["error"]["type"] == "UNKNOWN_TOPIC_OR_PARTITION"
    assert shrink["error"]["type"] == "INVALID_PARTITIONS"
    assert not {"kjs_collide", "kjs-rf3", "kjs/slash"} & set(listed["result"])
