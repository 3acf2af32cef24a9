"""KafkaController against the embedded znode store, with a recording channel instead of sockets.

Brokers are registered by writing their znodes as real brokers do; the controller's requests are
recorded per broker, so each test checks both what it wrote in the znodes and what it told whom.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from kazoo.client import KazooClient

from kbroker.api.handlers import alter_partition
from kbroker.controller.kafka_controller import IsrChange, KafkaController, LeaderAndIsr
from kbroker.metadata import zk_data as zk
from kbroker.metadata.admin_zk_client import AdminZkClient
from kbroker.metadata.kafka_zk_client import KafkaZkClient
from kbroker.metadata.kazoo_store import KazooZNodeStore
from kbroker.metadata.znode_store import EmbeddedZNodeStore, ZooKeeperUnavailableError
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors
from kbroker.testing.waiting import eventually


class RecordingChannel:
    def __init__(self) -> None:
        self.sent: list[tuple[int, int, dict]] = []
        self.brokers: set[int] = set()
        self.endpoints: dict[int, tuple[str, int]] = {}

    # ControllerChannel's signatures: the version does not matter to a recording.
    def send(self, broker_id: int, api_key: int, _version: int, request: dict, on_response=None) -> None:
        self.sent.append((broker_id, api_key, request))
        if on_response is not None:  # every broker answers at once, without error
            on_response({"error_code": 0})

    def add_broker(self, broker_id: int, host: str, port: int) -> None:
        self.brokers.add(broker_id)
        self.endpoints[broker_id] = (host, port)

    def remove_broker(self, broker_id: int) -> None:
        self.brokers.discard(broker_id)

    def take(self, api_key: int) -> list[tuple[int, dict]]:
        found = [(b, r) for b, k, r in self.sent if k == api_key]
        self.sent = [e for e in self.sent if e[1] != api_key]
        return found


class Cluster:
    """The znode tree plus a controller; events run when `run_events` is called, like the loop."""

    def __init__(self, tmp_path, brokers=(1, 2, 3), store_factory=EmbeddedZNodeStore) -> None:
        self.queue: list = []
        self.store = store_factory(str(tmp_path), notify=self.queue.append)
        self.zk = KafkaZkClient(self.store)
        self.zk.create_top_level_paths()
        for b in brokers:
            self.register(b)
        self.channel = RecordingChannel()
        self.controller = KafkaController(1, self.zk, self.channel, "PLAINTEXT")
        assert self.controller.elect()
        self.run_events()

    def register(self, broker_id: int) -> None:
        self.zk.register_broker(zk.BrokerRegistration(broker_id, [("PLAINTEXT", "127.0.0.1", 9090 + broker_id,
                                                                    "PLAINTEXT")]))

    def unregister(self, broker_id: int) -> None:
        self.store.delete(zk.broker_path(broker_id))

    def run_events(self) -> None:
        while self.queue:
            self.queue.pop(0)()

    def create_topic(self, name: str, assignment: dict[int, list[int]]) -> None:
        AdminZkClient(self.zk).create_topic(name, assignment, {})
        self.run_events()

    def state(self, topic: str, partition: int) -> zk.LeaderIsrAndControllerEpoch:
        return self.zk.get_partition_state(topic, partition)


@pytest.fixture
def cluster(tmp_path):
    return Cluster(tmp_path)


def test_new_topic_gets_leaders_and_every_replica_is_told(cluster):
    cluster.create_topic("t", {0: [2, 3, 1], 1: [3, 1, 2]})
    assert cluster.state("t", 0).leader == 2 and cluster.state("t", 0).isr == [2, 3, 1]
    assert cluster.state("t", 1).leader == 3 and cluster.state("t", 1).leader_epoch == 0
    told = {b for b, _ in cluster.channel.take(ApiKey.LEADER_AND_ISR)}
    assert told == {1, 2, 3}
    updates = cluster.channel.take(ApiKey.UPDATE_METADATA)
    assert {b for b, _ in updates} == {1, 2, 3}
    assert {ps["partition_index"] for t in updates[-1][1]["topic_states"] for ps in t["partition_states"]} == {0, 1}


def test_a_wide_new_topic_writes_its_partition_states_in_a_few_multis(cluster):
    """One multi per new partition made the embedded store copy and save its whole tree once per
    partition: quadratic, 31 s with the event loop blocked for a 2,000-partition CreateTopics. The
    states now go in batches (a few hundred partitions per multi, under ZooKeeper's 1 MiB)."""
    multis: list[int] = []
    store_multi = cluster.store.multi

    def counted_multi(ops):
        multis.append(len(ops))
        return store_multi(ops)

    cluster.store.multi = counted_multi
    cluster.create_topic("wide", {p: [1 + p % 3] for p in range(1200)})

    assert len(multis) <= 5, f"{len(multis)} multis"
    assert all(cluster.state("wide", p).leader == 1 + p % 3 for p in range(1200))
    led = {ps["partition_index"] for _, r in cluster.channel.take(ApiKey.LEADER_AND_ISR)
           for t in r["topic_states"] for ps in t["partition_states"]}
    assert led == set(range(1200))


def test_broker_failure_moves_leadership_within_the_isr_and_shrinks_it(cluster):
    cluster.create_topic("t", {0: [2, 3, 1]})
    cluster.channel.sent.clear()
    cluster.unregister(2)
    cluster.run_events()
    state = cluster.state("t", 0)
    assert (state.leader, state.isr, state.leader_epoch) == (3, [3, 1], 1)
    assert 2 not in cluster.channel.brokers
    assert {b for b, _ in cluster.channel.take(ApiKey.LEADER_AND_ISR)} == {1, 3}


def test_sole_replica_failure_leaves_the_partition_offline_until_it_returns(cluster):
    cluster.create_topic("solo", {0: [2]})
    cluster.unregister(2)
    cluster.run_events()
    assert cluster.state("solo", 0).leader == -1
    assert cluster.state("solo", 0).isr == [2]  # the ISR is never emptied
    cluster.register(2)
    cluster.run_events()
    assert cluster.state("solo", 0).leader == 2


def test_unclean_election_only_when_the_topic_allows_it(cluster):
    cluster.create_topic("u", {0: [2, 3]})
    cluster.zk.set_topic_config("u", {"unclean.leader.election.enable": "true"})
    # Only 2 is in the ISR; when it dies, 3 may lead only because unclean election is on.
    state = cluster.state("u", 0)
    cluster.zk.update_partition_state("u", 0, zk.LeaderIsrAndControllerEpoch(2, 1, [2], state.controller_epoch,
                                                                               0, state.zk_version),
                                      cluster.controller.epoch_zk_version)
    cluster.controller.states[("u", 0)] = cluster.state("u", 0)
    cluster.unregister(2)
    cluster.run_events()
    state = cluster.state("u", 0)
    assert (state.leader, state.isr, state.leader_recovery_state) == (3, [3], 1)


def test_controlled_shutdown_moves_leaders_and_removes_the_broker_from_isrs(cluster):
    cluster.create_topic("t", {0: [2, 3, 1], 1: [3, 2, 1]})
    cluster.create_topic("pair", {0: [2, 1]})
    state = cluster.state("pair", 0)  # only 2 in sync: nobody can take over
    cluster.zk.update_partition_state("pair", 0, zk.LeaderIsrAndControllerEpoch(2, 1, [2], state.controller_epoch,
                                                                                  0, state.zk_version),
                                      cluster.controller.epoch_zk_version)
    cluster.controller.states[("pair", 0)] = cluster.state("pair", 0)
    cluster.channel.sent.clear()
    error, remaining = cluster.controller.on_controlled_shutdown(2, -1)
    assert error == Errors.NONE
    assert remaining == [("pair", 0)]
    assert cluster.state("t", 0).leader == 3 and 2 not in cluster.state("t", 0).isr
    assert cluster.state("t", 1).leader == 3 and 2 not in cluster.state("t", 1).isr
    stops = cluster.channel.take(ApiKey.STOP_REPLICA)
    assert [(b, r["topic_states"][0]["partition_states"][0]["delete_partition"]) for b, r in stops] == [(2, False)]
    assert cluster.controller.on_controlled_shutdown(9, -1)[0] == Errors.BROKER_NOT_AVAILABLE


def test_controlled_shutdown_refuses_broker_epochs_that_are_not_the_brokers_registration(cluster):
    cluster.create_topic("t", {0: [2, 3, 1]})
    epoch = cluster.controller.live_brokers[2].epoch
    assert cluster.controller.on_controlled_shutdown(2, epoch - 1)[0] == Errors.STALE_BROKER_EPOCH  # Kafka's rule
    assert cluster.controller.on_controlled_shutdown(2, epoch + 1000)[0] == Errors.STALE_BROKER_EPOCH  # made up
    assert cluster.state("t", 0).leader == 2  # nothing moved
    # Broker 2 registers again; the controller has not run the watch yet, ZooKeeper has the epoch.
    cluster.unregister(2)
    cluster.register(2)
    new_epoch = cluster.zk.get_broker_epoch(2)
    assert new_epoch > epoch and cluster.controller.live_brokers[2].epoch == epoch
    assert cluster.controller.on_controlled_shutdown(2, new_epoch)[0] == Errors.NONE
    assert cluster.state("t", 0).leader == 3


def test_the_channel_uses_the_control_plane_listener_and_leaders_the_inter_broker_one(tmp_path):
    store = EmbeddedZNodeStore(str(tmp_path), notify=lambda fn: fn())
    client = KafkaZkClient(store)
    client.create_top_level_paths()
    for b in (1, 2, 3):
        endpoints = [("EXTERNAL", "ext", 9000 + b, "PLAINTEXT"), ("INTERNAL", "int", 9100 + b, "PLAINTEXT")]
        if b != 3:  # broker 3 lacks the control-plane listener: the controller cannot reach it
            endpoints.append(("CONTROL", "ctl", 9200 + b, "PLAINTEXT"))
        client.register_broker(zk.BrokerRegistration(b, endpoints))
    channel = RecordingChannel()
    controller = KafkaController(1, client, channel, "INTERNAL", control_plane_listener="CONTROL")
    assert controller.elect()
    assert channel.endpoints == {1: ("ctl", 9201), 2: ("ctl", 9202)}
    AdminZkClient(client).create_topic("t", {0: [2, 1, 3]}, {})
    [request] = [r for b, r in channel.take(ApiKey.LEADER_AND_ISR) if b == 1]
    assert request["live_leaders"] == [{"broker_id": 2, "host_name": "int", "port": 9102}]


def test_alter_partition_checks_in_kafkas_order(cluster):
    cluster.create_topic("t", {0: [1, 2, 3]})
    state = cluster.state("t", 0)
    broker_epoch = cluster.controller.live_brokers[1].epoch

    def alter(new_isr, leader_epoch=state.leader_epoch, partition_epoch=state.zk_version, epoch=broker_epoch):
        change = IsrChange("t", None, 0, LeaderAndIsr(1, leader_epoch, new_isr, 0, partition_epoch))
        error, results = cluster.controller.on_alter_partition(1, epoch, [change])
        return (error, None) if error else results[0]

    assert alter([1, 2], epoch=broker_epoch - 1)[0] == Errors.STALE_BROKER_EPOCH
    assert alter([1, 2], leader_epoch=5)[0] == Errors.NOT_CONTROLLER
    assert alter([1, 2, 9])[0] == Errors.INELIGIBLE_REPLICA
    error, answer = alter([1, 2])
    assert error == Errors.NONE
    assert answer.partition_epoch == state.zk_version + 1
    assert cluster.state("t", 0).isr == [1, 2]
    assert alter([1], partition_epoch=state.zk_version)[0] == Errors.INVALID_UPDATE_VERSION
    assert {b for b, _ in cluster.channel.take(ApiKey.UPDATE_METADATA)} == {1, 2, 3}


def expire_session(connect: str, store: KazooZNodeStore) -> None:
    """Ends `store`'s ZooKeeper session from the server's side, as a session timeout does: a second
    client joins the session with its id and password and closes it."""
    session_id, password = store.client.client_id
    thief = KazooClient(hosts=connect, client_id=(session_id, password), timeout=10)
    thief.start(timeout=10)
    thief.stop()
    thief.close()


def test_alter_partition_on_a_controller_whose_session_expired_answers_not_controller(tmp_path, zookeeper):
    """The chaos run's traceback (issue 16): the controller's session expired while it served
    AlterPartition, before the session-lost event reached the loop; kazoo's SessionExpiredError
    escaped the handler and closed the connection. Now NOT_CONTROLLER, as Kafka answers once its
    controller's znode writes fail."""
    chroot = f"/alter-partition-expired-{tmp_path.name}"
    cluster = Cluster(tmp_path, store_factory=lambda _path, notify: KazooZNodeStore(
        zookeeper + chroot, 10000, 10000, notify))
    try:
        AdminZkClient(cluster.zk).create_topic("t", {0: [1, 2, 3]}, {})

        def topic_online():  # kazoo's watches arrive on its own thread: run them as they come
            cluster.run_events()
            return cluster.state("t", 0)

        state = eventually(topic_online, what="the controller to elect t-0's leader")
        request = {"broker_id": 1, "broker_epoch": cluster.controller.live_brokers[1].epoch, "topics": [
            {"topic_name": "t", "topic_id": None, "partitions": [
                {"partition_index": 0, "leader_epoch": state.leader_epoch, "new_isr": [1, 2],
                 "leader_recovery_state": 0, "partition_epoch": state.zk_version}]}]}
        ctx = SimpleNamespace(services=SimpleNamespace(controller=cluster.controller, authorizer=None), peer="test",
                              api_version=1)
        expire_session(zookeeper + chroot, cluster.store)
        with pytest.raises(ZooKeeperUnavailableError):
            cluster.store.get(zk.partition_state_path("t", 0))  # kazoo's SessionExpiredError, in the store's terms
        assert cluster.controller.is_active  # the session-lost event has not run yet
        answer = asyncio.run(alter_partition.handle(ctx, request))
        assert (answer["error_code"], answer["topics"]) == (Errors.NOT_CONTROLLER, [])
    finally:
        cluster.store.close()


def test_preferred_election(cluster):
    cluster.create_topic("t", {0: [2, 3, 1]})
    cluster.controller.on_controlled_shutdown(2, -1)
    cluster.controller.shutting_down.clear()  # broker 2 stayed up after all
    assert cluster.state("t", 0).leader == 3
    results = cluster.controller.elect_leaders(0, [("t", 0), ("t", 7)])
    assert results[("t", 7)][0] == Errors.UNKNOWN_TOPIC_OR_PARTITION
    assert results[("t", 0)][0] == Errors.PREFERRED_LEADER_NOT_AVAILABLE  # 2 left the ISR
    state = cluster.state("t", 0)
    cluster.zk.update_partition_state("t", 0, zk.LeaderIsrAndControllerEpoch(3, state.leader_epoch, [3, 1, 2],
                                                                               state.controller_epoch, 0,
                                                                               state.zk_version),
                                      cluster.controller.epoch_zk_version)
    cluster.controller.states[("t", 0)] = cluster.state("t", 0)
    assert cluster.controller.elect_leaders(0, [("t", 0)])[("t", 0)][0] == Errors.NONE
    assert cluster.state("t", 0).leader == 2
    assert cluster.controller.elect_leaders(0, None)[("t", 0)][0] == Errors.ELECTION_NOT_NEEDED


def test_reassignment_completes_when_the_targets_are_in_sync(cluster):
    cluster.create_topic("m", {0: [1]})
    assert cluster.controller.alter_reassignments([("m", 0, [2, 3])])[("m", 0)] == (Errors.NONE, None)
    assignment = cluster.zk.get_topic_assignment("m")
    assert (assignment.partitions[0], assignment.adding[0], assignment.removing[0]) == ([2, 3, 1], [2, 3], [1])
    assert cluster.controller.ongoing_reassignments() == {("m", 0): ([2, 3, 1], [2, 3], [1])}
    # The leader (1) reports the new replicas caught up:
    state = cluster.state("m", 0)
    cluster.controller.on_alter_partition(1, -1, [IsrChange("m", None, 0, LeaderAndIsr(
        1, state.leader_epoch, [1, 2, 3], 0, state.zk_version))])
    assignment = cluster.zk.get_topic_assignment("m")
    assert assignment.partitions[0] == [2, 3] and not assignment.adding and not assignment.removing
    assert cluster.state("m", 0).leader == 2 and cluster.state("m", 0).isr == [2, 3]
    stops = cluster.channel.take(ApiKey.STOP_REPLICA)
    assert [b for b, r in stops if r["topic_states"][0]["partition_states"][0]["delete_partition"]] == [1]
    assert cluster.controller.alter_reassignments([("m", 0, None)])[("m", 0)][0] == Errors.NO_REASSIGNMENT_IN_PROGRESS


def test_a_reassignment_tells_every_broker_the_new_leader_epoch(cluster):
    """Kafka's controller updates every broker's metadata with each LeaderAndIsr: a reassignment
    to the same replicas (a plan that only moves log dirs) bumps the leader epoch and completes
    at once, so without it clients would keep the old epoch and the leader would fence them."""
    cluster.create_topic("same", {0: [1, 2]})
    cluster.channel.take(ApiKey.UPDATE_METADATA)
    assert cluster.controller.alter_reassignments([("same", 0, [1, 2])])[("same", 0)] == (Errors.NONE, None)
    epoch = cluster.state("same", 0).leader_epoch
    assert epoch == 1 and cluster.controller.ongoing_reassignments() == {}
    updates = cluster.channel.take(ApiKey.UPDATE_METADATA)
    assert sorted(b for b, _ in updates) == [1, 2, 3]
    assert all([(t["topic_name"], s["partition_index"], s["leader_epoch"])
                for t in r["topic_states"] for s in t["partition_states"]] == [("same", 0, epoch)] for _, r in updates)


def test_topic_deletion_stops_replicas_and_removes_znodes(cluster):
    cluster.create_topic("gone", {0: [1, 2]})
    cluster.channel.sent.clear()
    AdminZkClient(cluster.zk).delete_topic("gone")
    cluster.run_events()
    assert cluster.zk.get_topic_assignment("gone") is None
    assert cluster.store.exists(zk.delete_topic_path("gone")) is None
    assert {b for b, _ in cluster.channel.take(ApiKey.STOP_REPLICA)} == {1, 2}


def test_a_controller_that_lost_its_epoch_cannot_delete_a_topic_and_resigns(cluster):
    cluster.create_topic("kept", {0: [1, 2], 1: [2, 3]})
    cluster.store.delete(zk.CONTROLLER)  # controller 1 lost /controller, but has not noticed yet
    assert cluster.zk.try_elect_controller(2) is not None
    cluster.channel.sent.clear()
    AdminZkClient(cluster.zk).delete_topic("kept")
    cluster.run_events()
    assert not cluster.controller.is_active
    assert cluster.zk.get_topic_assignment("kept") is not None
    assert cluster.state("kept", 0) is not None and cluster.state("kept", 1) is not None
    assert cluster.zk.topics_to_delete() == ["kept"]
    assert cluster.channel.take(ApiKey.UPDATE_METADATA) == []  # nobody was told the topic is gone

    cluster.store.delete(zk.CONTROLLER)
    successor = KafkaController(2, cluster.zk, RecordingChannel(), "PLAINTEXT")
    assert successor.elect()
    cluster.run_events()
    assert cluster.zk.get_topic_assignment("kept") is None
    assert cluster.zk.topics_to_delete() == [] and cluster.zk.get_topic_config("kept") == {}


def test_a_second_controller_is_fenced(cluster):
    other = KafkaController(2, cluster.zk, RecordingChannel(), "PLAINTEXT")
    assert not other.elect()
    assert cluster.zk.get_controller_id() == 1


class OvertakenAfterElection(KafkaZkClient):
    """A rival controller wins the next epoch right after this broker's election succeeds, the
    race Kafka's elect() handles by resigning when the failover's first fenced write fails."""

    def try_elect_controller(self, broker_id: int):
        won = super().try_elect_controller(broker_id)
        if won is not None:
            self.store.delete(zk.CONTROLLER)
            assert super().try_elect_controller(broker_id + 1) is not None
        return won


def test_a_controller_overtaken_during_its_failover_resigns_without_writing(tmp_path):
    store = EmbeddedZNodeStore(str(tmp_path), notify=lambda _event: None)
    client = OvertakenAfterElection(store)
    client.create_top_level_paths()
    for b in (1, 2):
        client.register_broker(zk.BrokerRegistration(b, [("PLAINTEXT", "127.0.0.1", 9090 + b, "PLAINTEXT")]))
    AdminZkClient(client).create_topic("waiting", {0: [1, 2]}, {})  # no controller yet: no partition state

    controller = KafkaController(1, client, RecordingChannel(), "PLAINTEXT")
    assert not controller.elect()
    assert not controller.is_active
    assert client.get_partition_state("waiting", 0) is None  # the stale epoch wrote nothing
    assert client.get_controller_id() == 2


def test_a_zookeeper_loss_under_any_other_handler_closes_the_connection_in_one_line(caplog):
    """Outside the controller-only APIs (which answer NOT_CONTROLLER) a request whose ZooKeeper call
    lost its session has no answer Kafka would give: the connection is closed with one WARNING line,
    not the network layer's traceback."""
    from kbroker.api.kafka_apis import KafkaApis
    from kbroker.network.socket_server import CloseConnection
    from kbroker.testing.wire import metadata_request

    async def lost(_ctx, _request):
        raise ZooKeeperUnavailableError("ZooKeeper unavailable: SessionExpiredError")

    from kbroker.security.client_quota_manager import ClientQuotaManagers

    apis = KafkaApis(SimpleNamespace(sasl_listeners={}, authorizer=None, client_quotas=ClientQuotaManagers()))
    apis.handlers[ApiKey.METADATA] = apis.handlers[ApiKey.METADATA]._replace(handle=lost)
    conn = SimpleNamespace(peer="10.0.0.9:4242", listener_name="PLAINTEXT", session=None)
    with pytest.raises(CloseConnection):
        asyncio.run(apis.process(conn, memoryview(metadata_request(7, version=1))[4:]))
    (line,) = [r for r in caplog.records if r.name == "kbroker.request"]
    assert "METADATA v1 could not complete" in line.getMessage() and line.exc_info is None
