"""Byte layouts of kbroker's own schemas (ZooKeeper-mode inter-broker APIs), assembled by hand
from the layouts Kafka 3.x controllers send (KAFKA-FACTS.md §2). The property tests check
the compiler against kafka-python reading the same files; these check the files' content.
AlterPartition and AllocateProducerIds are also checked against kio there.
"""

import struct
import uuid

from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.messages import request_codec, response_codec, schema_versions


def compact_string(text: str) -> bytes:
    data = text.encode()
    return bytes([len(data) + 1]) + data


def compact_int32s(values: list[int]) -> bytes:
    return bytes([len(values) + 1]) + struct.pack(f">{len(values)}i", *values)


def classic_string(text: str) -> bytes:
    return struct.pack(">h", len(text)) + text.encode()


def classic_int32s(values: list[int]) -> bytes:
    return struct.pack(f">i{len(values)}i", len(values), *values)


TOPIC_ID = uuid.UUID("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")


def test_versions_of_our_schemas():
    assert schema_versions(ApiKey.LEADER_AND_ISR) == (0, 7)
    assert schema_versions(ApiKey.STOP_REPLICA) == (0, 4)
    assert schema_versions(ApiKey.UPDATE_METADATA) == (0, 8)
    assert schema_versions(ApiKey.CONTROLLED_SHUTDOWN) == (0, 3)
    assert schema_versions(ApiKey.ALTER_PARTITION) == (0, 3)
    assert schema_versions(ApiKey.ALLOCATE_PRODUCER_IDS) == (0, 0)


def test_leader_and_isr_v7_request_layout():
    msg = {
        "controller_id": 1,
        "is_k_raft_controller": False,
        "controller_epoch": 5,
        "broker_epoch": 77,
        "type": 1,
        "topic_states": [
            {
                "topic_name": "orders",
                "topic_id": TOPIC_ID,
                "partition_states": [
                    {
                        "partition_index": 2,
                        "controller_epoch": 5,
                        "leader": 1,
                        "leader_epoch": 9,
                        "isr": [1, 2],
                        "partition_epoch": 11,
                        "replicas": [1, 2, 3],
                        "adding_replicas": [],
                        "removing_replicas": [3],
                        "is_new": True,
                        "leader_recovery_state": 0,
                    }
                ],
            }
        ],
        "live_leaders": [{"broker_id": 1, "host_name": "b1", "port": 9092}],
    }
    expected = (
        struct.pack(">i?iqb", 1, False, 5, 77, 1)
        + b"\x02"
        + compact_string("orders")
        + TOPIC_ID.bytes
        + b"\x02"
        + struct.pack(">iiii", 2, 5, 1, 9)
        + compact_int32s([1, 2])
        + struct.pack(">i", 11)
        + compact_int32s([1, 2, 3])
        + compact_int32s([])
        + compact_int32s([3])
        + struct.pack(">?b", True, 0)
        + b"\x00"  # partition state tags
        + b"\x00"  # topic state tags
        + b"\x02"
        + struct.pack(">i", 1)
        + compact_string("b1")
        + struct.pack(">i", 9092)
        + b"\x00"  # live leader tags
        + b"\x00"  # request tags
    )
    codec = request_codec(ApiKey.LEADER_AND_ISR, 7)
    assert codec.encode(msg) == expected
    decoded = codec.decode(expected)[0]
    assert decoded["topic_states"][0]["partition_states"][0]["removing_replicas"] == [3]
    assert decoded["ungrouped_partition_states"] == []


def test_leader_and_isr_v1_request_layout_has_ungrouped_partitions():
    state = {
        "topic_name": "t",
        "partition_index": 0,
        "controller_epoch": 1,
        "leader": 2,
        "leader_epoch": 3,
        "isr": [2],
        "partition_epoch": 4,
        "replicas": [2],
        "is_new": False,
    }
    msg = {
        "controller_id": 2,
        "controller_epoch": 1,
        "ungrouped_partition_states": [state],
        "live_leaders": [],
    }
    expected = (
        struct.pack(">ii", 2, 1)
        + struct.pack(">i", 1)
        + classic_string("t")
        + struct.pack(">iiii", 0, 1, 2, 3)
        + classic_int32s([2])
        + struct.pack(">i", 4)
        + classic_int32s([2])
        + b"\x00"  # IsNew
        + struct.pack(">i", 0)  # no live leaders
    )
    assert request_codec(ApiKey.LEADER_AND_ISR, 1).encode(msg) == expected


def test_leader_and_isr_v5_response_groups_errors_by_topic_id():
    msg = {
        "error_code": 0,
        "topics": [{"topic_id": TOPIC_ID, "partition_errors": [{"partition_index": 4, "error_code": 11}]}],
    }
    expected = (
        struct.pack(">h", 0)
        + b"\x02"
        + TOPIC_ID.bytes
        + b"\x02"
        + struct.pack(">ih", 4, 11)
        + b"\x00\x00\x00"
    )
    assert response_codec(ApiKey.LEADER_AND_ISR, 5).encode(msg) == expected


def test_update_metadata_v8_request_layout_with_tagged_type():
    msg = {
        "controller_id": 0,
        "is_k_raft_controller": False,
        "type": 2,
        "controller_epoch": 3,
        "broker_epoch": 1234,
        "topic_states": [
            {
                "topic_name": "t",
                "topic_id": TOPIC_ID,
                "partition_states": [
                    {
                        "partition_index": 0,
                        "controller_epoch": 3,
                        "leader": 0,
                        "leader_epoch": 1,
                        "isr": [0],
                        "zk_version": 2,
                        "replicas": [0],
                        "offline_replicas": [],
                    }
                ],
            }
        ],
        "live_brokers": [
            {
                "id": 0,
                "endpoints": [{"port": 9092, "host": "h", "listener": "PLAINTEXT", "security_protocol": 0}],
                "rack": None,
            }
        ],
    }
    expected = (
        struct.pack(">i?iq", 0, False, 3, 1234)
        + b"\x02"
        + compact_string("t")
        + TOPIC_ID.bytes
        + b"\x02"
        + struct.pack(">iiii", 0, 3, 0, 1)
        + compact_int32s([0])
        + struct.pack(">i", 2)
        + compact_int32s([0])
        + compact_int32s([])
        + b"\x00\x00"  # partition and topic tags
        + b"\x02"
        + struct.pack(">i", 0)
        + b"\x02"
        + struct.pack(">i", 9092)
        + compact_string("h")
        + compact_string("PLAINTEXT")
        + struct.pack(">h", 0)
        + b"\x00"  # endpoint tags
        + b"\x00"  # null rack
        + b"\x00"  # broker tags
        + b"\x01\x00\x01\x02"  # one tag: Type (tag 0), 1 byte, value 2
    )
    codec = request_codec(ApiKey.UPDATE_METADATA, 8)
    assert codec.encode(msg) == expected
    assert codec.decode(expected)[0]["type"] == 2


def test_update_metadata_v0_broker_layout():
    msg = {
        "controller_id": 1,
        "controller_epoch": 2,
        "live_brokers": [{"id": 1, "v0_host": "h", "v0_port": 9}],
    }
    expected = (
        struct.pack(">ii", 1, 2)
        + struct.pack(">i", 0)
        + struct.pack(">ii", 1, 1)
        + classic_string("h")
        + struct.pack(">i", 9)
    )
    assert request_codec(ApiKey.UPDATE_METADATA, 0).encode(msg) == expected


def test_stop_replica_v3_and_v4_request_layout():
    topics = [
        {
            "topic_name": "t",
            "partition_states": [{"partition_index": 1, "leader_epoch": 6, "delete_partition": True}],
        }
    ]
    body = b"\x02" + compact_string("t") + b"\x02" + struct.pack(">ii?", 1, 6, True) + b"\x00\x00\x00"
    v3 = request_codec(ApiKey.STOP_REPLICA, 3).encode(
        {"controller_id": 1, "controller_epoch": 2, "broker_epoch": 3, "topic_states": topics}
    )
    assert v3 == struct.pack(">iiq", 1, 2, 3) + body
    v4 = request_codec(ApiKey.STOP_REPLICA, 4).encode(
        {
            "controller_id": 1,
            "is_k_raft_controller": True,
            "controller_epoch": 2,
            "broker_epoch": 3,
            "topic_states": topics,
        }
    )
    assert v4 == struct.pack(">i?iq", 1, True, 2, 3) + body


def test_stop_replica_v1_request_layout():
    msg = {
        "controller_id": 1,
        "controller_epoch": 2,
        "broker_epoch": 3,
        "delete_partitions": True,
        "topics": [{"name": "t", "partition_indexes": [0, 1]}],
    }
    expected = (
        struct.pack(">iiq?", 1, 2, 3, True)
        + struct.pack(">i", 1)
        + classic_string("t")
        + classic_int32s([0, 1])
    )
    assert request_codec(ApiKey.STOP_REPLICA, 1).encode(msg) == expected


def test_controlled_shutdown_layouts():
    assert request_codec(ApiKey.CONTROLLED_SHUTDOWN, 0).encode({"broker_id": 3}) == struct.pack(">i", 3)
    assert request_codec(ApiKey.CONTROLLED_SHUTDOWN, 2).encode(
        {"broker_id": 3, "broker_epoch": 8}
    ) == struct.pack(">iq", 3, 8)
    assert (
        request_codec(ApiKey.CONTROLLED_SHUTDOWN, 3).encode({"broker_id": 3, "broker_epoch": 8})
        == struct.pack(">iq", 3, 8) + b"\x00"
    )
    response = {"error_code": 0, "remaining_partitions": [{"topic_name": "t", "partition_index": 5}]}
    assert response_codec(ApiKey.CONTROLLED_SHUTDOWN, 1).encode(response) == (
        struct.pack(">hi", 0, 1) + classic_string("t") + struct.pack(">i", 5)
    )
