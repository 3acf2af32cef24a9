"""Deleting topics whose names are long but legal (up to 249 characters): the `-delete` directory
name is cut to the 255-byte file-name limit as Kafka's logDeleteDirName does, on real files and
through a real broker's DeleteTopics, and the same name can be created again (issue 16, bug 3)."""

from __future__ import annotations

import os
import re

from kbroker.log.log_manager import LogManager
from kbroker.log.unified_log import log_delete_dir_name
from kbroker.testing.batches import producer_batch
from kbroker.testing.raw_client import METADATA, NONE, RawClient, create_topic, produce, raw_call
from kbroker.testing.records import build_batch, partition_dir
from kbroker.testing.waiting import eventually

# Kafka's UnifiedLog.DeleteDirPattern: what Kafka's own loader takes for a deleted log.
KAFKA_DELETE_DIR_PATTERN = re.compile(r"^(\S+)-(\S+)\.(\S+)-delete$")
LONGEST_TOPIC = "t" * 248 + "x"  # 249 characters, the longest legal topic name
T0 = 1_700_000_000_000
DELETE_TOPICS = 20


def test_the_delete_dir_name_of_the_longest_topic_fits_255_bytes():
    for partition in (0, 7, 2_147_483_646):
        name = log_delete_dir_name(LONGEST_TOPIC, partition)
        suffix = f"-{partition}.{name.rsplit('.', 1)[1]}"
        assert len(name.encode()) == 255, partition
        assert name.endswith("-delete") and KAFKA_DELETE_DIR_PATTERN.match(name)
        assert name == LONGEST_TOPIC[: 255 - len(suffix)] + suffix


def test_a_delete_dir_name_that_fits_keeps_the_whole_topic():
    exactly_fitting = "f" * (255 - len("-0.") - 32 - len("-delete"))  # 213 characters
    name = log_delete_dir_name(exactly_fitting, 0)
    assert len(name) == 255 and name.startswith(exactly_fitting + "-0.")
    short = log_delete_dir_name("orders", 3)
    assert re.fullmatch(r"orders-3\.[0-9a-f]{32}-delete", short)
    assert log_delete_dir_name("orders", 3) != short  # unique: a topic may be deleted again


def test_a_log_manager_deletes_the_log_of_the_longest_topic(tmp_path):
    log_dir = tmp_path / "data"
    lm = LogManager([str(log_dir)], cluster_id="long-names", broker_id=1)
    unified_log = lm.get_or_create_log(LONGEST_TOPIC, 0)
    unified_log.append_as_leader(producer_batch([b"gone"]), 0)
    assert lm.delete_log(LONGEST_TOPIC, 0, now=T0)
    [renamed] = [n for n in os.listdir(log_dir) if n.endswith("-delete")]
    assert len(renamed) == 255 and not os.path.exists(log_dir / f"{LONGEST_TOPIC}-0")
    recreated = lm.get_or_create_log(LONGEST_TOPIC, 0)
    assert recreated.log_end_offset == 0
    lm.run_retention(now=T0 + 61_000)
    assert not os.path.exists(log_dir / renamed)
    lm.close()


def test_a_long_delete_dir_left_by_a_crash_is_removed_at_start_up(tmp_path):
    log_dir = tmp_path / "data"
    os.makedirs(log_dir / log_delete_dir_name(LONGEST_TOPIC, 0) / "00000000000000000000.log")
    lm = LogManager([str(log_dir)], cluster_id="long-names", broker_id=1)
    assert lm.all_logs() == []
    assert not [n for n in os.listdir(log_dir) if n.endswith("-delete")]
    lm.close()


def delete_topic(port: int, name: str) -> int:
    answer = raw_call(port, DELETE_TOPICS, 6, {"topics": [{"name": name}], "timeout_ms": 10000})
    [result] = answer["responses"]
    return result["error_code"]


def leader_of(port: int, name: str) -> int:
    answer = raw_call(port, METADATA, 12, {"topics": [{"name": name}], "allow_auto_topic_creation": False})
    [topic] = answer["topics"]
    assert topic["error_code"] == NONE, topic
    [partition] = topic["partitions"]
    return partition["leader_id"]


def test_a_broker_deletes_and_recreates_a_topic_with_a_249_character_name(broker_factory):
    kbroker = broker_factory("log.segment.delete.delay.ms=100")
    create_topic(kbroker.port, LONGEST_TOPIC)
    with RawClient(kbroker.port) as client:
        assert produce(client, LONGEST_TOPIC, 0, build_batch([b"old"] * 3))["error_code"] == NONE

    assert delete_topic(kbroker.port, LONGEST_TOPIC) == NONE
    eventually(
        lambda: not partition_dir(kbroker.log_dir, LONGEST_TOPIC, 0).exists()
        and not [n for n in os.listdir(kbroker.log_dir) if n.endswith("-delete")],
        what="the partition directory and its -delete rename removed",
        timeout=10,
    )
    create_topic(kbroker.port, LONGEST_TOPIC)
    eventually(lambda: leader_of(kbroker.port, LONGEST_TOPIC) >= 0, what="a leader for the re-created topic")
    with RawClient(kbroker.port) as client:
        fresh = produce(client, LONGEST_TOPIC, 0, build_batch([b"new"]))
    assert (fresh["error_code"], fresh["base_offset"]) == (NONE, 0)
