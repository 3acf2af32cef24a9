"""Controller requests from anyone but the controller are refused (issue 16, bug 12).

Kafka fences LeaderAndIsr, UpdateMetadata and StopReplica by the controller epoch (older than
the newest seen: STALE_CONTROLLER_EPOCH) and the broker epoch (older than the broker's
registration: STALE_BROKER_EPOCH, -1 meaning unknown). kbroker also refuses what a forger
would send: a future controller epoch, a controller id that is not ZooKeeper's, this broker's
own id (its controller never uses a socket), and a broker epoch that is not exactly ours.

- ControllerFence's rules, one by one, against a fake ZooKeeper view;
- a real single-node broker gets forged requests over a raw socket with every small epoch
  (its real ones among them): all are refused, and its metadata, partition and log are intact;
- ReplicaManager.stop_replicas refuses an older leader epoch (FENCED_LEADER_EPOCH) and lets
  -2 (deletion) through, as Kafka's does.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
import uuid
from pathlib import Path

import pytest

from kbroker.api import controller_fence
from kbroker.api.controller_fence import ControllerFence
from kbroker.api.handlers import CloseConnection
from kbroker.log.config import LogConfig
from kbroker.log.log_manager import LogManager
from kbroker.metadata.metadata_cache import MetadataCache
from kbroker.metadata.znode_store import STORE_FILE
from kbroker.protocol.errors import Errors
from kbroker.replica.replica_manager import ReplicaManager
from kbroker.testing.forged_requests import send_forged
from kbroker.testing.raw_client import METADATA, RawClient, create_topic, produce, read_partition
from kbroker.testing.records import build_batch

BROKER_ID = 1
OUR_EPOCH = 4242  # this broker's registration czxid
CONTROLLER = 2
CONTROLLER_EPOCH = 5
TOPIC_ID = uuid.UUID(int=7)
CONTROLLED_SHUTDOWN = 7
STALE = (Errors.STALE_CONTROLLER_EPOCH, Errors.STALE_BROKER_EPOCH)


class FakeZooKeeper:
    """The controller pair; `lagging` is what a server behind the leader shows until a sync."""

    def __init__(self) -> None:
        self.controller = (CONTROLLER_EPOCH, CONTROLLER)
        self.lagging: tuple[int, int] | None = None
        self.reads: list[bool] = []  # the sync flag of each read

    def current(self, sync: bool) -> tuple[int, int]:
        self.reads.append(sync)
        return self.controller if sync or self.lagging is None else self.lagging


@pytest.fixture
def fence():
    zookeeper = FakeZooKeeper()
    fence = ControllerFence(BROKER_ID, lambda: OUR_EPOCH, zookeeper.current)
    yield fence, zookeeper
    fence.close()


def verdict(fence: ControllerFence, controller_id: int, controller_epoch: int, broker_epoch: int) -> Errors:
    return asyncio.run(fence.check(controller_id, controller_epoch, broker_epoch))


def test_the_current_controller_with_our_epoch_passes_and_is_remembered(fence):
    check, zookeeper = fence
    assert verdict(check, CONTROLLER, CONTROLLER_EPOCH, OUR_EPOCH) == Errors.NONE
    assert verdict(check, CONTROLLER, CONTROLLER_EPOCH, OUR_EPOCH) == Errors.NONE
    assert zookeeper.reads == [False]  # asked once, without a sync, as the plain read agreed


@pytest.mark.parametrize(("controller_id", "controller_epoch", "error"), [
    (CONTROLLER, CONTROLLER_EPOCH + 1, Errors.STALE_CONTROLLER_EPOCH),  # an epoch nobody was given
    (CONTROLLER, 10_000, Errors.STALE_CONTROLLER_EPOCH),
    (CONTROLLER, CONTROLLER_EPOCH - 1, Errors.STALE_CONTROLLER_EPOCH),  # a deposed controller
    (3, CONTROLLER_EPOCH, Errors.STALE_CONTROLLER_EPOCH),  # not the broker holding /controller
    (BROKER_ID, CONTROLLER_EPOCH, Errors.STALE_CONTROLLER_EPOCH),  # our own controller needs no socket
])
def test_a_controller_zookeeper_does_not_name_is_refused(fence, controller_id, controller_epoch, error):
    check, _ = fence
    assert verdict(check, controller_id, controller_epoch, OUR_EPOCH) == error
    assert verdict(check, CONTROLLER, CONTROLLER_EPOCH, OUR_EPOCH) == Errors.NONE  # the refusal changed nothing


def test_our_own_id_is_refused_even_when_zookeeper_names_us(fence):
    check, zookeeper = fence
    zookeeper.controller = (CONTROLLER_EPOCH, BROKER_ID)
    assert verdict(check, BROKER_ID, CONTROLLER_EPOCH, OUR_EPOCH) == Errors.STALE_CONTROLLER_EPOCH


@pytest.mark.parametrize("broker_epoch", [OUR_EPOCH - 1, OUR_EPOCH + 1, -1, 0])
def test_a_broker_epoch_other_than_ours_is_refused(fence, broker_epoch):
    check, _ = fence
    assert verdict(check, CONTROLLER, CONTROLLER_EPOCH, broker_epoch) == Errors.STALE_BROKER_EPOCH


def test_an_older_epoch_is_refused_once_a_newer_one_was_seen(fence):
    check, zookeeper = fence
    assert verdict(check, CONTROLLER, CONTROLLER_EPOCH, OUR_EPOCH) == Errors.NONE
    zookeeper.controller = (CONTROLLER_EPOCH + 1, 3)  # a new election
    assert verdict(check, 3, CONTROLLER_EPOCH + 1, OUR_EPOCH) == Errors.NONE
    reads = len(zookeeper.reads)
    assert verdict(check, CONTROLLER, CONTROLLER_EPOCH, OUR_EPOCH) == Errors.STALE_CONTROLLER_EPOCH
    assert len(zookeeper.reads) == reads  # Kafka's rule, without asking ZooKeeper


def test_a_lagging_zookeeper_server_is_synced_before_a_new_controller_is_refused(fence):
    check, zookeeper = fence
    zookeeper.lagging = (CONTROLLER_EPOCH - 1, 3)  # our server has not seen the election yet
    assert verdict(check, CONTROLLER, CONTROLLER_EPOCH, OUR_EPOCH) == Errors.NONE
    assert zookeeper.reads == [False, True]
    assert verdict(check, CONTROLLER, CONTROLLER_EPOCH + 1, OUR_EPOCH) == Errors.STALE_CONTROLLER_EPOCH
    assert zookeeper.reads[-2:] == [False, True]  # a forged epoch costs the sync too, then is refused


def test_what_the_broker_read_from_zookeeper_lets_the_first_requests_through_without_a_read(fence):
    check, zookeeper = fence
    check.learn(CONTROLLER_EPOCH, CONTROLLER)
    assert verdict(check, CONTROLLER, CONTROLLER_EPOCH, OUR_EPOCH) == Errors.NONE
    assert zookeeper.reads == []
    check.learn(CONTROLLER_EPOCH - 1, 3)  # an older view changes nothing
    assert (check.controller_epoch_seen, check.controller_id_seen) == (CONTROLLER_EPOCH, CONTROLLER)
    check.learn(CONTROLLER_EPOCH, BROKER_ID)  # even as the controller, our own id never passes
    assert verdict(check, BROKER_ID, CONTROLLER_EPOCH, OUR_EPOCH) == Errors.STALE_CONTROLLER_EPOCH


def test_zookeeper_is_read_off_the_event_loop(fence):
    check, zookeeper = fence
    reading = threading.Event()

    def slow_current(_sync: bool) -> tuple[int, int]:
        reading.set()
        time.sleep(0.3)
        return zookeeper.controller

    check.current_controller = slow_current

    async def scenario() -> tuple[Errors, int]:
        ticks = 0
        task = asyncio.ensure_future(check.check(CONTROLLER, CONTROLLER_EPOCH, OUR_EPOCH))
        while not task.done():
            await asyncio.sleep(0.01)
            ticks += reading.is_set()
        return task.result(), ticks

    error, ticks = asyncio.run(scenario())
    assert error == Errors.NONE and ticks >= 10  # the loop kept running while ZooKeeper was read


@pytest.mark.parametrize("failure", ["raises", "hangs"])
def test_an_unreadable_zookeeper_closes_the_connection_for_the_controller_to_retry(fence, monkeypatch, failure):
    check, _ = fence
    release = threading.Event()
    monkeypatch.setattr(controller_fence, "READ_TIMEOUT_S", 0.2)

    def broken(_sync: bool) -> tuple[int, int]:
        if failure == "raises":
            raise ConnectionError("connection loss")
        release.wait(5)
        return (CONTROLLER_EPOCH, CONTROLLER)

    check.current_controller = broken
    with pytest.raises(CloseConnection):
        verdict(check, CONTROLLER, CONTROLLER_EPOCH, OUR_EPOCH)
    release.set()


# -- a real broker, forged requests over a raw socket ----------------------------------------------


@pytest.fixture(scope="module")
def kbroker(module_broker_factory):
    return module_broker_factory()


def metadata_view(port: int, topic: str) -> tuple[list[int], list[tuple[int, int, int]]]:
    """(broker ids, [(partition, leader, error)]) from Metadata v12."""
    with RawClient(port) as client:
        answer = client.call(METADATA, 12, {"topics": [{"name": topic}],
                                            "allow_auto_topic_creation": False,
                                            "include_topic_authorized_operations": False})
    [entry] = answer["topics"]
    partitions = [(p["partition_index"], p["leader_id"], p["error_code"]) for p in entry["partitions"]]
    return sorted(b["node_id"] for b in answer["brokers"]), partitions


def test_forged_controller_requests_leave_a_single_node_broker_intact(kbroker):
    topic = f"kept-{uuid.uuid4().hex[:8]}"
    create_topic(kbroker.port, topic)
    with RawClient(kbroker.port) as client:
        assert produce(client, topic, 0, build_batch([b"a", b"b", b"c"]))["error_code"] == 0
    before = metadata_view(kbroker.port, topic)
    assert before == ([0], [(0, 0, 0)])
    # Its real controller epoch is in the embedded store; its broker epoch is a small czxid:
    # every combination around them is tried, the real pair included.
    store = json.loads((Path(kbroker.log_dir) / STORE_FILE).read_text())
    real_epoch = int(base64.b64decode(store["nodes"]["/controller_epoch"][0]))
    refused = 0
    with RawClient(kbroker.port) as client:
        for controller_id in (0, 1):
            for controller_epoch in (0, real_epoch - 1, real_epoch, real_epoch + 1, 2**31 - 1):
                for broker_epoch in (-1, *range(0, store["zxid"] + 20), 2**62):
                    answers = send_forged(client, controller_id, controller_epoch, broker_epoch, topic, [0])
                    for name, answer in answers.items():
                        assert answer["error_code"] in STALE, (name, controller_id, controller_epoch, broker_epoch)
                    refused += 1
    assert refused > 100
    # Kafka logs each refusal; here one line per sender and interval, so forgeries cannot flood the log.
    assert kbroker.output().count("refused a controller request from 127.0.0.1:") == 1
    assert metadata_view(kbroker.port, topic) == before
    high_watermark, records = read_partition(kbroker.port, topic, 0)
    assert high_watermark == 3 and [r[2] for r in records] == [b"a", b"b", b"c"]
    assert (Path(kbroker.log_dir) / f"{topic}-0").is_dir()


def test_refusals_name_every_partition_as_kafkas_error_responses_do(kbroker):
    topic = f"named-{uuid.uuid4().hex[:8]}"
    create_topic(kbroker.port, topic)
    with RawClient(kbroker.port) as client:
        answers = send_forged(client, 0, 10_000, -1, topic, [0])
    assert answers["UpdateMetadata"] == {"error_code": Errors.STALE_CONTROLLER_EPOCH}
    [topic_errors] = answers["LeaderAndIsr"]["topics"]
    assert [p["error_code"] for p in topic_errors["partition_errors"]] == [Errors.STALE_CONTROLLER_EPOCH]
    assert answers["StopReplica"]["partition_errors"] == [
        {"topic_name": topic, "partition_index": 0, "error_code": Errors.STALE_CONTROLLER_EPOCH}]


def test_a_made_up_controlled_shutdown_is_refused(kbroker):
    """v2+ carries the stopping broker's epoch: -1 or one that is not its registration's is stale."""
    with RawClient(kbroker.port) as client:
        for broker_epoch in (-1, 2**40):
            answer = client.call(CONTROLLED_SHUTDOWN, 3, {"broker_id": 0, "broker_epoch": broker_epoch})
            assert answer == {"error_code": Errors.STALE_BROKER_EPOCH, "remaining_partitions": []}
    topic = f"after-{uuid.uuid4().hex[:8]}"
    create_topic(kbroker.port, topic)  # broker 0 was not marked as shutting down: it still leads
    assert metadata_view(kbroker.port, topic) == ([0], [(0, 0, 0)])


# -- StopReplica's leader epoch -----------------------------------------------------------------------


def leader_and_isr(topic: str, leader_epoch: int) -> dict:
    return {"controller_id": 0, "controller_epoch": 1, "broker_epoch": 1, "type": 0, "live_leaders": [],
            "topic_states": [{"topic_name": topic, "topic_id": TOPIC_ID, "partition_states": [
                {"partition_index": 0, "controller_epoch": 1, "leader": 0, "leader_epoch": leader_epoch,
                 "isr": [0], "partition_epoch": 0, "replicas": [0], "adding_replicas": [],
                 "removing_replicas": [], "is_new": True, "leader_recovery_state": 0}]}]}


def stop_replica(topic: str, leader_epoch: int) -> dict:
    return {"controller_id": 0, "controller_epoch": 1, "broker_epoch": 1, "topic_states": [
        {"topic_name": topic, "partition_states": [
            {"partition_index": 0, "leader_epoch": leader_epoch, "delete_partition": True}]}]}


def test_stop_replica_with_an_older_leader_epoch_is_fenced(tmp_path):
    log_manager = LogManager([str(tmp_path)], cluster_id="fencing", broker_id=0, default_config=LogConfig())
    replica_manager = ReplicaManager(0, log_manager, MetadataCache(0), lambda _topic: {}, LogConfig())
    try:
        assert replica_manager.become_leader_or_follower(leader_and_isr("t", 5))["error_code"] == 0
        answer = replica_manager.stop_replicas(stop_replica("t", 4))
        assert answer == {"error_code": 0, "partition_errors": [
            {"topic_name": "t", "partition_index": 0, "error_code": Errors.FENCED_LEADER_EPOCH}]}
        assert replica_manager.get_partition("t", 0) is not None and (tmp_path / "t-0").is_dir()
        for epoch in (5, 6):  # the same or a newer epoch stops it (not deleting: a fresh leader each time)
            assert replica_manager.stop_replicas(
                {**stop_replica("t", epoch), "topic_states": [{"topic_name": "t", "partition_states": [
                    {"partition_index": 0, "leader_epoch": epoch, "delete_partition": False}]}]}
            )["partition_errors"][0]["error_code"] == 0
            assert replica_manager.get_partition("t", 0) is None
            replica_manager.become_leader_or_follower(leader_and_isr("t", epoch + 1))
        # -2: the topic is being deleted, whatever the partition's epoch
        assert replica_manager.stop_replicas(stop_replica("t", -2))["partition_errors"][0]["error_code"] == 0
        assert replica_manager.get_partition("t", 0) is None
    finally:
        log_manager.close()
