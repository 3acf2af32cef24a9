"""Partition's replication bookkeeping as leader, with a real UnifiedLog and explicit clocks:
followers' fetch positions and lastCaughtUpTimeMs, the high watermark over the (maximal) ISR
and the 3.7 min-ISR rule, ISR expansion and shrink proposals with one change in flight and the
answers of AlterPartition, the divergence check a leader answers followers with, and the
fetcher's pure helpers (truncation offsets, fetcher ids, IBP comparisons). Expected behaviour is
Kafka's Partition.scala / Replica.scala / AbstractFetcherThread.scala (KAFKA-FACTS.md §3).
"""

from __future__ import annotations

import logging

import pytest

from kbroker.log.config import LogConfig
from kbroker.log.log_manager import LogManager
from kbroker.log.unified_log import UnifiedLog
from kbroker.metadata.metadata_cache import BrokerInfo, MetadataCache
from kbroker.protocol.errors import Errors
from kbroker.replica.partition import Partition, PartitionError, ReplicaState
from kbroker.replica.replica_fetcher import fetcher_id_for, ibp_at_least, java_string_hash, truncation_offset
from kbroker.replica.replica_manager import PARTITION_LINES_AT_INFO, ReplicaManager
from kbroker.testing.batches import producer_batch

LAG_MS = 10_000
NOW = 1_800_000_000_000


def leader_state(leader_epoch: int = 1, isr=(1, 2, 3), replicas=(1, 2, 3), partition_epoch: int = 0,
                 leader: int = 1) -> dict:
    return {"leader": leader, "leader_epoch": leader_epoch, "isr": list(isr), "replicas": list(replicas),
            "partition_epoch": partition_epoch, "controller_epoch": 1}


def append(partition: Partition, count: int) -> None:
    partition.append_records_to_leader(producer_batch([b"v%d" % i for i in range(count)]), required_acks=1)


@pytest.fixture
def make_leader(tmp_path):
    """A Partition led by broker 1 over a fresh log; `alive` decides ISR eligibility and
    `clock[0]` is the partition's time (NOW unless a test moves it)."""
    logs = []
    alive = {1, 2, 3}
    clock = [NOW]

    def build(min_isr: int = 1, state: dict | None = None, records: int = 0) -> Partition:
        log = UnifiedLog(str(tmp_path / f"t-{len(logs)}"), LogConfig(min_insync_replicas=min_isr))
        logs.append(log)
        if records:
            log.append_as_leader(producer_batch([b"x"] * records), 0)
        partition = Partition("t", len(logs) - 1, 1, replica_lag_time_max_ms=LAG_MS,
                              is_replica_eligible=alive.__contains__, time_ms=lambda: clock[0])
        partition.make_leader(state or leader_state(), log, now_ms=NOW)
        return partition

    build.alive = alive
    build.clock = clock
    yield build
    for log in logs:
        log.close()


def fetch(partition: Partition, broker_id: int, offset: int, now: int = NOW):
    """A follower fetch at `offset` as the leader records it."""
    return partition.update_follower_fetch_state(partition.remote_replicas[broker_id], offset, 0, now,
                                                 partition.log.log_end_offset)


# -- Replica: lastCaughtUpTimeMs ------------------------------------------------------------------

def test_a_fetch_from_the_leaders_end_is_caught_up_now():
    replica = ReplicaState(2)
    replica.update_fetch_state(10, 0, NOW, leader_end_offset=10, broker_epoch=5)
    assert (replica.log_end_offset, replica.last_caught_up_time_ms, replica.broker_epoch) == (10, NOW, 5)


def test_reaching_what_the_leader_had_at_the_previous_fetch_counts_from_that_fetch():
    replica = ReplicaState(2)
    replica.update_fetch_state(5, 0, NOW, leader_end_offset=10, broker_epoch=-1)  # behind: not caught up
    assert replica.last_caught_up_time_ms == 0
    replica.update_fetch_state(10, 0, NOW + 400, leader_end_offset=20, broker_epoch=-1)
    assert replica.last_caught_up_time_ms == NOW  # had the leader's end of the previous fetch
    replica.update_fetch_state(15, 0, NOW + 800, leader_end_offset=30, broker_epoch=-1)
    assert replica.last_caught_up_time_ms == NOW  # still short of 20: unchanged


def test_caught_up_means_at_the_leaders_end_or_recently_caught_up():
    replica = ReplicaState(2, log_end_offset=7, last_caught_up_time_ms=NOW)
    assert replica.is_caught_up(7, NOW + LAG_MS * 5, LAG_MS)
    assert replica.is_caught_up(9, NOW + LAG_MS, LAG_MS)
    assert not replica.is_caught_up(9, NOW + LAG_MS + 1, LAG_MS)


# -- becoming leader --------------------------------------------------------------------------------

def test_a_new_leader_epoch_starts_at_the_log_end_and_resets_followers(make_leader):
    partition = make_leader(records=4)
    assert partition.leader_epoch_start_offset == 4
    assert partition.log.leader_epoch_cache.entries[-1] == (1, 4)
    assert set(partition.remote_replicas) == {2, 3}
    # ISR members count as caught up now; nobody's log end is known yet.
    assert all(r.last_caught_up_time_ms == NOW and r.log_end_offset == -1 for r in partition.remote_replicas.values())
    assert partition.high_watermark == 0  # the followers have not fetched


def test_a_follower_outside_the_isr_is_not_caught_up_after_a_new_epoch(make_leader):
    partition = make_leader(state=leader_state(isr=(1, 2)))
    assert partition.remote_replicas[3].last_caught_up_time_ms == 0


def test_an_older_partition_epoch_is_ignored(make_leader):
    partition = make_leader(state=leader_state(partition_epoch=5))
    assert not partition.make_leader(leader_state(leader_epoch=2, isr=(1,), partition_epoch=4), partition.log)
    assert (partition.leader_epoch, partition.isr) == (1, [1, 2, 3])


# -- high watermark ---------------------------------------------------------------------------------

def test_high_watermark_is_the_smallest_log_end_in_the_isr(make_leader):
    partition = make_leader()
    append(partition, 10)
    assert fetch(partition, 2, 10) == (False, None)  # 3 has not fetched
    assert partition.high_watermark == 0
    hw_moved, _ = fetch(partition, 3, 6)
    assert hw_moved and partition.high_watermark == 6
    hw_moved, _ = fetch(partition, 3, 10)
    assert hw_moved and partition.high_watermark == 10


def test_a_caught_up_follower_outside_the_isr_holds_the_high_watermark(make_leader):
    partition = make_leader(state=leader_state(isr=(1, 2)), records=5)  # epoch 1 starts at 5
    append(partition, 10)
    partition.remote_replicas[3].last_caught_up_time_ms = NOW  # it will be eligible to join
    fetch(partition, 2, 15)
    _, change = fetch(partition, 3, 4)
    assert change is None and partition.high_watermark == 4  # below the epoch start: not joining yet
    make_leader.alive.discard(3)  # a dead broker may not join: it holds nothing back
    assert partition.maybe_increment_high_watermark(NOW + 1) and partition.high_watermark == 15


def test_high_watermark_stands_still_under_min_isr(make_leader):
    partition = make_leader(min_isr=2, state=leader_state(isr=(1,)))
    append(partition, 5)
    assert partition.is_under_min_isr
    assert not partition.maybe_increment_high_watermark(NOW)
    assert partition.high_watermark == 0


def test_min_isr_above_the_replica_count_is_capped(make_leader):
    partition = make_leader(min_isr=3, state=leader_state(isr=(1, 2), replicas=(1, 2)))
    append(partition, 5)
    fetch(partition, 2, 5)
    assert partition.effective_min_isr == 2 and partition.high_watermark == 5


def test_acks_all_appends_need_the_effective_min_isr(make_leader):
    partition = make_leader(min_isr=2, state=leader_state(isr=(1,)))
    with pytest.raises(PartitionError) as raised:
        partition.append_records_to_leader(producer_batch([b"a"]), required_acks=-1)
    assert raised.value.code == Errors.NOT_ENOUGH_REPLICAS
    partition.append_records_to_leader(producer_batch([b"a"]), required_acks=1)
    assert partition.log.log_end_offset == 1


# -- ISR expansion ----------------------------------------------------------------------------------

def test_a_follower_joins_once_it_reaches_the_high_watermark_and_the_epoch_start(make_leader):
    partition = make_leader(state=leader_state(isr=(1,)), records=8)  # epoch 1 starts at 8
    append(partition, 2)
    assert partition.high_watermark == 10  # the ISR is the leader alone
    _, change = fetch(partition, 2, 9)
    assert change is None
    _, change = fetch(partition, 2, 10)
    assert change is not None and change.new_isr == [1, 2] and change.is_expand
    assert (change.leader_epoch, change.partition_epoch) == (1, 0)
    assert partition.pending_isr_change is change
    _, second = fetch(partition, 3, 10)
    assert second is None  # one change in flight at a time


def test_the_epoch_start_gates_expansion_even_above_the_high_watermark(make_leader):
    partition = make_leader(state=leader_state(isr=(1, 2)), records=8)  # epoch 1 starts at 8
    fetch(partition, 2, 8)  # HW = 8
    partition.remote_replicas[3].log_end_offset = 7  # e.g. after truncation
    assert partition.maybe_expand_isr(partition.remote_replicas[3]) is None


def test_an_ineligible_broker_does_not_join(make_leader):
    partition = make_leader(state=leader_state(isr=(1,)))
    make_leader.alive.discard(2)
    _, change = fetch(partition, 2, 0)
    assert change is None


def test_pending_expansion_holds_the_high_watermark_for_the_new_member(make_leader):
    partition = make_leader(state=leader_state(isr=(1,)))
    _, change = fetch(partition, 2, 0)
    assert change.new_isr == [1, 2]
    append(partition, 5)
    partition.remote_replicas[2].last_caught_up_time_ms = 0  # not merely "caught up": the maximal ISR counts
    assert not partition.maybe_increment_high_watermark(NOW + 2 * LAG_MS)
    assert partition.maximal_isr == [1, 2]


# -- ISR shrink -------------------------------------------------------------------------------------

def test_followers_behind_for_longer_than_the_lag_are_shrunk(make_leader):
    partition = make_leader()
    append(partition, 3)
    fetch(partition, 2, 3, NOW + 100)
    fetch(partition, 3, 1, NOW + 100)
    assert partition.maybe_shrink_isr(NOW + LAG_MS) is None  # 3's last caught up is the epoch start: NOW
    change = partition.maybe_shrink_isr(NOW + LAG_MS + 1)
    assert change is not None and change.new_isr == [1, 2] and not change.is_expand
    assert partition.maximal_isr == [1, 2, 3]  # until the controller answers
    assert partition.maybe_shrink_isr(NOW + 5 * LAG_MS) is None  # one change in flight


def test_a_follower_at_the_log_end_is_never_out_of_sync(make_leader):
    partition = make_leader()
    fetch(partition, 2, 0)
    fetch(partition, 3, 0)
    assert partition.out_of_sync_replicas(NOW + 100 * LAG_MS) == []


def test_min_isr_is_checked_after_the_append_against_the_maximal_isr(make_leader):
    partition = make_leader(min_isr=2, state=leader_state(isr=(1, 2)))
    assert partition.has_enough_replicas_after_append
    change = partition.maybe_shrink_isr(NOW + LAG_MS + 1)
    assert change.new_isr == [1] and partition.has_enough_replicas_after_append  # still pending
    partition.on_alter_partition_response(change, Errors.NONE, {"leader_epoch": 1, "partition_epoch": 1,
                                                                "isr": [1], "leader_recovery_state": 0})
    assert not partition.has_enough_replicas_after_append


# -- AlterPartition answers ------------------------------------------------------------------------

def committed(isr, leader_epoch: int = 1, partition_epoch: int = 1) -> dict:
    return {"error_code": 0, "leader_id": 1, "leader_epoch": leader_epoch, "isr": list(isr),
            "leader_recovery_state": 0, "partition_epoch": partition_epoch}


def test_an_accepted_change_commits_the_isr_and_partition_epoch(make_leader):
    partition = make_leader(state=leader_state(isr=(1,)))
    append(partition, 4)
    _, change = fetch(partition, 2, 4)
    assert partition.on_alter_partition_response(change, Errors.NONE, committed([1, 2], partition_epoch=7)) == \
        (False, False)
    assert (partition.isr, partition.partition_epoch, partition.pending_isr_change) == ([1, 2], 7, None)


def test_a_committed_shrink_can_move_the_high_watermark(make_leader):
    partition = make_leader()
    append(partition, 6)
    fetch(partition, 2, 6, NOW + 100)
    make_leader.clock[0] = NOW + LAG_MS + 1
    change = partition.maybe_shrink_isr()  # 3 never fetched
    assert partition.high_watermark == 0  # the maximal ISR still holds 3
    assert partition.on_alter_partition_response(change, Errors.NONE, committed([1, 2])) == (True, False)
    assert partition.high_watermark == 6


def test_an_answer_for_another_leader_epoch_leaves_the_change_pending(make_leader):
    partition = make_leader(state=leader_state(isr=(1,)))
    _, change = fetch(partition, 2, 0)
    partition.on_alter_partition_response(change, Errors.NONE, committed([1, 2], leader_epoch=2))
    assert partition.isr == [1] and partition.pending_isr_change is change


@pytest.mark.parametrize(("error", "pending", "retry"), [
    (Errors.INELIGIBLE_REPLICA, False, False),
    (Errors.OPERATION_NOT_ATTEMPTED, False, False),
    (Errors.FENCED_LEADER_EPOCH, True, False),
    (Errors.INVALID_UPDATE_VERSION, True, False),
    (Errors.UNKNOWN_TOPIC_OR_PARTITION, True, False),
    (Errors.NOT_CONTROLLER, True, True),
    (Errors.UNKNOWN_SERVER_ERROR, True, True),
])
def test_failed_changes_follow_kafkas_rules(make_leader, error, pending, retry):
    partition = make_leader(state=leader_state(isr=(1,)))
    _, change = fetch(partition, 2, 0)
    assert partition.on_alter_partition_response(change, error) == (False, retry)
    assert (partition.pending_isr_change is change) == pending
    assert partition.isr == [1]


def test_a_rejected_expansion_lets_the_high_watermark_move_at_once(make_leader):
    """Found by the controlled-shutdown cluster test: the stopping broker fetched once from the new
    leader, its addition was rejected, and acks=all waited for it until it came back."""
    partition = make_leader(state=leader_state(isr=(1, 2)))
    append(partition, 5)
    fetch(partition, 2, 5)  # the follower in the ISR reaches the log end: high watermark 5
    _, change = fetch(partition, 3, 5)  # broker 3 reaches the high watermark: it may join
    assert change.new_isr == [1, 2, 3] and partition.high_watermark == 5
    append(partition, 5)
    fetch(partition, 2, 10)
    assert partition.high_watermark == 5  # held for broker 3, in the maximal ISR
    make_leader.alive.discard(3)  # why the controller refuses it: the broker is shutting down
    assert partition.on_alter_partition_response(change, Errors.INELIGIBLE_REPLICA) == (True, False)
    assert partition.isr == [1, 2] and partition.high_watermark == 10


def test_a_broker_leaving_lets_the_high_watermark_pass_it(tmp_path):
    """A caught-up follower outside the ISR holds the high watermark while it may join; its
    broker's leaving (UpdateMetadata) must release it at once, not at the next fetch or append."""
    cache = MetadataCache(1)
    live = {b: BrokerInfo(b, {}) for b in (1, 2, 3)}
    cache.set_brokers(list(live.values()))
    logs = LogManager([str(tmp_path)], cluster_id="hw", broker_id=1, default_config=LogConfig())
    # The topic-config callback is asked per topic: no topic has overrides here.
    manager = ReplicaManager(1, logs, cache, lambda _topic: {}, LogConfig(), replica_lag_time_max_ms=LAG_MS)
    state = {**leader_state(isr=(1, 2)), "partition_index": 0}
    manager.become_leader_or_follower({"controller_id": 1, "controller_epoch": 1, "topic_states": [
        {"topic_name": "t", "topic_id": None, "partition_states": [state]}]})
    partition = manager.get_partition("t", 0)
    append(partition, 5)
    fetch(partition, 2, 5)
    cache.set_brokers([live[1], live[2]])  # no expansion is proposed for a broker that is not alive...
    fetch(partition, 3, 5)
    cache.set_brokers(list(live.values()))  # ...but it is caught up, and alive again
    append(partition, 5)
    fetch(partition, 2, 10)
    assert partition.high_watermark == 5 and manager.on_live_brokers_changed() == 0
    cache.set_brokers([live[1], live[2]])
    assert manager.on_live_brokers_changed() == 1 and partition.high_watermark == 10
    logs.close()


def test_an_answer_after_a_new_leader_and_isr_is_stale(make_leader):
    partition = make_leader(state=leader_state(isr=(1,)))
    _, change = fetch(partition, 2, 0)
    partition.make_leader(leader_state(leader_epoch=2, isr=(1, 3), partition_epoch=3), partition.log, now_ms=NOW)
    assert partition.on_alter_partition_response(change, Errors.NONE, committed([1, 2])) == (False, False)
    assert partition.isr == [1, 3]


# -- the leader's divergence check ----------------------------------------------------------------

def test_divergence_is_where_the_followers_epoch_ends_here(make_leader):
    partition = make_leader(records=5)  # epoch 0: [0, 5); epoch 1 starts at 5
    append(partition, 3)
    assert partition.diverging_epoch(partition.check_leader(), 1, 8) is None
    assert partition.diverging_epoch(partition.check_leader(), 0, 5) is None
    assert partition.diverging_epoch(partition.check_leader(), 0, 7) == (0, 5)  # the follower wrote epoch 0 past 5


def test_an_epoch_unknown_here_answers_with_the_largest_older_one(make_leader):
    partition = make_leader(records=2, state=leader_state(leader_epoch=3))  # epochs 0@0, 3@2
    assert partition.diverging_epoch(partition.check_leader(), 2, 4) == (0, 2)


def test_an_epoch_newer_than_ours_is_out_of_range(make_leader):
    partition = make_leader(records=2)
    with pytest.raises(PartitionError) as raised:
        partition.diverging_epoch(partition.check_leader(), 9, 2)
    assert raised.value.code == Errors.OFFSET_OUT_OF_RANGE


def test_a_replica_outside_the_assignment_is_refused(make_leader):
    partition = make_leader()
    for epoch, code in ((1, Errors.UNKNOWN_LEADER_EPOCH), (-1, Errors.NOT_LEADER_OR_FOLLOWER)):
        with pytest.raises(PartitionError) as raised:
            partition.follower_replica(7, epoch)
        assert raised.value.code == code


# -- the follower's truncation decision -------------------------------------------------------------

@pytest.mark.parametrize(("leader", "local", "log_end", "expected"), [
    ((3, 100), (3, 120), 130, (100, True)),   # same epoch: the smaller end wins
    ((3, 100), (3, 90), 130, (90, True)),     # we end that epoch earlier
    ((3, 100), (3, 120), 95, (95, True)),     # never past our own log end
    ((3, 100), (2, 80), 130, (80, False)),    # we lack epoch 3: cut to our older epoch's end, ask again
    ((3, 100), (-1, -1), 130, (100, True)),   # we know no epoch <= 3: the leader's end
    ((-1, 100), (-1, -1), 130, (100, True)),  # an answer without epoch (OffsetForLeaderEpoch v0)
    ((-1, -1), (-1, -1), 130, (42, True)),    # unknown: back to the initial fetch offset
])
def test_truncation_offset(leader, local, log_end, expected):
    assert truncation_offset(leader[0], leader[1], local, log_end, initial_fetch_offset=42) == expected


def test_java_string_hash_matches_java():
    assert java_string_hash("hello") == 99162322
    assert java_string_hash("") == 0
    assert java_string_hash("polygenelubricants") == -2147483648  # Integer.MIN_VALUE


def test_fetcher_ids_spread_partitions_like_kafka():
    assert {fetcher_id_for("t", p, 1) for p in range(20)} == {0}
    # abs(31 * "t".hashCode() + p) % 4, "t".hashCode() == 116
    assert [fetcher_id_for("t", p, 4) for p in range(4)] == [(31 * 116 + p) % 4 for p in range(4)]


@pytest.mark.parametrize(("version", "expected"), [
    ("3.9-IV0", True), ("2.7-IV1", True), ("2.7", True), ("2.7-IV0", False), ("2.6", False), ("0.10.2", False),
])
def test_truncation_on_fetch_needs_ibp_2_7_iv1(version, expected):
    assert ibp_at_least(version, (2, 7), 1) == expected


# -- idempotent producers and the min ISR (issue 16's chaos duplicate) ------------------------------

PRODUCER_ID = 77


def idempotent(partition: Partition, seq: int):
    return partition.append_records_to_leader(
        producer_batch([b"m%d" % seq], producer_id=PRODUCER_ID, producer_epoch=0, base_sequence=seq), required_acks=-1)


def refused_code(call) -> Errors:
    with pytest.raises(PartitionError) as raised:
        call()
    return raised.value.code


def shrink_to_leader_alone(partition: Partition, clock: list[int]) -> None:
    clock[0] = NOW + LAG_MS + 1
    change = partition.maybe_shrink_isr()
    partition.on_alter_partition_response(change, Errors.NONE, committed([1], partition_epoch=1))


def test_a_batch_behind_one_refused_for_the_min_isr_is_refused_alike_not_out_of_order(make_leader):
    """The sequence librdkafka's eos log showed before each chaos duplicate: seq 0 written but not
    acknowledged (the ISR shrank under it: the answer is a timeout), seq 1 refused with
    NOT_ENOUGH_REPLICAS, the ISR back, seq 2 (in flight behind seq 1) answered
    OUT_OF_ORDER_SEQUENCE_NUMBER, which makes librdkafka bump its epoch and renumber seq 0 too:
    written twice. Seq 2 gets NOT_ENOUGH_REPLICAS as well, so the client retries 0, 1, 2 in order
    under the same epoch: 0 is answered as the duplicate it is, 1 and 2 are written once."""
    partition = make_leader(min_isr=2)
    first = idempotent(partition, 0)
    shrink_to_leader_alone(partition, make_leader.clock)
    assert partition.isr == [1]
    assert refused_code(lambda: idempotent(partition, 1)) == Errors.NOT_ENOUGH_REPLICAS
    assert refused_code(lambda: idempotent(partition, 0)) == Errors.NOT_ENOUGH_REPLICAS  # a retry leaves no gap
    _, change = fetch(partition, 2, partition.log.log_end_offset, make_leader.clock[0])
    partition.on_alter_partition_response(change, Errors.NONE, committed([1, 2], partition_epoch=2))
    assert partition.isr == [1, 2]
    assert refused_code(lambda: idempotent(partition, 2)) == Errors.NOT_ENOUGH_REPLICAS  # was OUT_OF_ORDER
    retry = idempotent(partition, 0)
    assert retry.duplicate and retry.base_offset == first.base_offset
    assert [idempotent(partition, seq).base_offset for seq in (1, 2)] == [1, 2]
    assert partition.refused_for_min_isr == {}
    assert refused_code(lambda: idempotent(partition, 5)) == Errors.OUT_OF_ORDER_SEQUENCE_NUMBER  # a real gap


def test_a_gap_not_left_by_a_refusal_stays_out_of_order(make_leader):
    partition = make_leader(min_isr=2)
    idempotent(partition, 0)
    shrink_to_leader_alone(partition, make_leader.clock)
    assert refused_code(lambda: idempotent(partition, 3)) == Errors.NOT_ENOUGH_REPLICAS  # refused: seq 3
    _, change = fetch(partition, 2, partition.log.log_end_offset, make_leader.clock[0])
    partition.on_alter_partition_response(change, Errors.NONE, committed([1, 2], partition_epoch=2))
    # The gap starts at 1, which nobody refused: Kafka's answer.
    assert refused_code(lambda: idempotent(partition, 4)) == Errors.OUT_OF_ORDER_SEQUENCE_NUMBER


@pytest.mark.parametrize("count", [3, PARTITION_LINES_AT_INFO + 1])
def test_a_large_leader_and_isr_logs_one_summary_line_at_info(tmp_path, caplog, count):
    """Each partition's leadership is an INFO line in a small LeaderAndIsr; a start-up's thousands
    of partitions get one summary line instead, their own lines at DEBUG."""
    cache = MetadataCache(1)
    cache.set_brokers([BrokerInfo(1, {})])
    logs = LogManager([str(tmp_path)], cluster_id="lines", broker_id=1, default_config=LogConfig())
    manager = ReplicaManager(1, logs, cache, lambda _topic: {}, LogConfig())
    states = [{**leader_state(isr=(1,), replicas=(1,)), "partition_index": p} for p in range(count)]
    with caplog.at_level(logging.DEBUG, logger="kbroker.replica"):
        manager.become_leader_or_follower({"controller_id": 1, "controller_epoch": 1, "topic_states": [
            {"topic_name": "t", "topic_id": None, "partition_states": states}]})
    logs.close()
    leader_lines = [r for r in caplog.records if r.getMessage().startswith("leader of t-")]
    summaries = [r.getMessage() for r in caplog.records if r.getMessage().startswith("LeaderAndIsr from")]
    assert len(leader_lines) == count and all(manager.get_partition("t", p).is_leader for p in range(count))
    if count <= PARTITION_LINES_AT_INFO:
        assert {r.levelno for r in leader_lines} == {logging.INFO} and summaries == []
    else:
        assert {r.levelno for r in leader_lines} == {logging.DEBUG}
        assert summaries == [f"LeaderAndIsr from controller 1: leader of {count} partitions, follower of 0 "
                             "(each partition's line at DEBUG)"]
