"""KIP-848 consumer groups (ConsumerGroupHeartbeat) on a fake clock, over real logs.

The assignors, joins with member epoch 0, the group epoch and target assignment, reconciliation
(a partition goes to its new owner only once the old one revoked it), session and rebalance
timeouts, leaving (-1) and static members (-2), errors as Kafka answers them, the classic/consumer
conflicts, and OffsetCommit/OffsetFetch's member epoch checks.
"""

from __future__ import annotations

import contextlib
import uuid

from kbroker.group.consumer_group_assignors import MemberSpec, TopicInfo, range_assign, uniform_assign
from kbroker.group.consumer_group_coordinator import HeartbeatParams
from kbroker.group.offset_and_metadata import OffsetAndMetadata
from kbroker.metadata.metadata_cache import TopicMetadata
from kbroker.protocol.errors import Errors
from kbroker.testing.group_harness import FakeClock, Harness, join_params
from kbroker.testing.waiting import settle
from tests.test_group_coordinator import async_test, join

T1, T2 = uuid.UUID(int=1), uuid.UUID(int=2)
SESSION_MS = 45000


@contextlib.asynccontextmanager
async def harness(tmp_path, *overrides):
    h = await Harness(tmp_path, FakeClock(), "group.coordinator.rebalance.protocols=classic,consumer",
                      *overrides).start()
    h.cache.put_topic(TopicMetadata("t1", T1, dict.fromkeys(range(4))))  # type: ignore[arg-type]
    h.cache.put_topic(TopicMetadata("t2", T2, dict.fromkeys(range(2))))  # type: ignore[arg-type]
    try:
        yield h
    finally:
        h.close()


async def hb(h: Harness, member_id: str, epoch: int, *, group: str = "g", topics: list[str] | None = None,
       owned: dict | None = None, version: int = 1, **kwargs):
    if epoch == 0:
        topics = topics if topics is not None else ["t1"]
        owned = {} if owned is None else owned
        kwargs.setdefault("rebalance_timeout_ms", 30000)
    return await h.coordinator.consumer_group_heartbeat(HeartbeatParams(
        group, member_id, epoch, subscribed_topic_names=topics, owned=owned, api_version=version, **kwargs))


def parts(result, topic_id=T1) -> set[int]:
    return set(result.assignment.get(topic_id, set()))


# -- assignors -------------------------------------------------------------------------------------
TOPICS = {T1: TopicInfo(T1, "t1", 4), T2: TopicInfo(T2, "t2", 2)}


def test_uniform_is_balanced_and_sticky():
    members = [MemberSpec(m, frozenset({T1, T2}), {}) for m in ("a", "b", "c")]
    first = uniform_assign(members, TOPICS)
    counts = sorted(sum(len(p) for p in a.values()) for a in first.values())
    assert counts == [2, 2, 2]
    # A fourth member takes partitions from the others; everyone keeps what it can.
    members = [MemberSpec(m, frozenset({T1, T2}), first.get(m, {})) for m in ("a", "b", "c", "d")]
    second = uniform_assign(members, TOPICS)
    assert sorted(sum(len(p) for p in a.values()) for a in second.values()) == [1, 1, 2, 2]
    for m in ("a", "b", "c"):
        for t, ps in second[m].items():
            assert ps <= first[m].get(t, set())  # nothing moved between the old members
    every = [(t, p) for a in second.values() for t, ps in a.items() for p in ps]
    assert sorted(every) == sorted({(t, p) for t, info in TOPICS.items() for p in range(info.partitions)})


def test_uniform_follows_subscriptions():
    members = [MemberSpec("a", frozenset({T1}), {}), MemberSpec("b", frozenset({T2}), {})]
    out = uniform_assign(members, TOPICS)
    assert out == {"a": {T1: {0, 1, 2, 3}}, "b": {T2: {0, 1}}}


def test_range_gives_contiguous_ranges_first_members_one_more():
    members = [MemberSpec(m, frozenset({T1}), {}) for m in ("b", "a", "c")]
    out = range_assign(members, {T1: TopicInfo(T1, "t1", 4)})
    assert out == {"a": {T1: {0, 1}}, "b": {T1: {2}}, "c": {T1: {3}}}


# -- joins and reconciliation -----------------------------------------------------------------------
@async_test
async def test_join_rebalance_and_revocation_before_assignment(tmp_path):
    async with harness(tmp_path) as h:
        a = (await hb(h, "a", 0))
        assert (a.error, a.member_id, a.member_epoch, parts(a)) == (Errors.NONE, "a", 1, {0, 1, 2, 3})
        assert a.heartbeat_interval_ms == 5000
        b = (await hb(h, "b", 0))
        # b is in epoch 2 but its partitions are still a's: it gets nothing yet.
        assert (b.error, b.member_epoch, parts(b)) == (Errors.NONE, 2, set())
        a2 = (await hb(h, "a", 1))
        assert a2.member_epoch == 1 and len(parts(a2)) == 2  # revoke first, in the old epoch
        kept = parts(a2)
        # Still owning the revoked partitions: nothing moves (a heartbeat that reports what it
        # owns is answered with the assignment, as Kafka does).
        still = (await hb(h, "a", 1, owned={T1: {0, 1, 2, 3}}))
        assert (still.member_epoch, parts(still)) == (1, kept)
        assert (await hb(h, "a", 1)).assignment is None
        b2 = (await hb(h, "b", 2))
        assert b2.assignment is None or parts(b2) == set()
        a3 = (await hb(h, "a", 1, owned={T1: kept}))
        assert a3.member_epoch == 2
        b3 = (await hb(h, "b", 2))
        assert parts(b3) == {0, 1, 2, 3} - kept
        error, _, group = h.coordinator.consumer_group_describe("g")
        assert error == Errors.NONE and group.state().value == "Stable" and group.group_epoch == 2


@async_test
async def test_v0_generates_the_member_id_and_v1_requires_one(tmp_path):
    async with harness(tmp_path) as h:
        r = (await hb(h, "", 0, version=0))
        assert r.error == Errors.NONE and len(r.member_id) > 10
        r = (await hb(h, "", 0, version=1))
        assert r.error == Errors.INVALID_REQUEST and r.message == "MemberId can't be empty."


@async_test
async def test_invalid_requests_and_unknown_members(tmp_path):
    async with harness(tmp_path) as h:
        assert (await hb(h, "a", 0, group="")).error == Errors.INVALID_REQUEST
        assert (await hb(h, "a", 0, rebalance_timeout_ms=-1)).error == Errors.INVALID_REQUEST
        assert (await hb(h, "a", 0, owned={T1: {0}})).error == Errors.INVALID_REQUEST
        assert (await hb(h, "a", -3)).error == Errors.INVALID_REQUEST
        assert (await hb(h, "a", -2)).error == Errors.INVALID_REQUEST  # -2 needs an instance id
        assert (await hb(h, "a", 0, server_assignor="sticky")).error == Errors.UNSUPPORTED_ASSIGNOR
        assert (await hb(h, "a", 0, subscribed_topic_regex="t(")).error == Errors.INVALID_REGULAR_EXPRESSION
        assert (await hb(h, "a", 5, group="nope")).error == Errors.UNKNOWN_MEMBER_ID  # rejoin, as Kafka says
        assert (await hb(h, "a", 0)).error == Errors.NONE
        assert (await hb(h, "x", 1)).error == Errors.UNKNOWN_MEMBER_ID
        assert (await hb(h, "a", 7)).error == Errors.FENCED_MEMBER_EPOCH
        assert (await hb(h, "x", -1)).error == Errors.UNKNOWN_MEMBER_ID


@async_test
async def test_range_assignor_and_regex_subscription(tmp_path):
    async with harness(tmp_path) as h:
        a = (await hb(h, "a", 0, topics=None, subscribed_topic_regex="t.*", server_assignor="range"))
        assert a.error == Errors.NONE and parts(a, T1) == {0, 1, 2, 3} and parts(a, T2) == {0, 1}
        assert h.coordinator.consumer_groups.manager.get_group("g").consumer.assignor_name == "range"


@async_test
async def test_session_timeout_fences_and_the_other_takes_all(tmp_path):
    async with harness(tmp_path) as h:
        (await hb(h, "a", 0))
        (await hb(h, "b", 0))
        kept = parts(await hb(h, "a", 1))
        assert (await hb(h, "a", 1, owned={T1: kept})).member_epoch == 2
        parts(await hb(h, "b", 2))
        epoch, owned = 2, set()
        for _ in range(11):  # a keeps its session alive, b stops
            h.clock.advance(SESSION_MS // 10)
            r = (await hb(h, "a", epoch))
            assert r.error == Errors.NONE
            epoch, owned = r.member_epoch, parts(r) if r.assignment is not None else owned
        assert (await hb(h, "b", 2)).error == Errors.UNKNOWN_MEMBER_ID
        assert (epoch, owned) == (3, {0, 1, 2, 3})


@async_test
async def test_leave_moves_partitions_at_once(tmp_path):
    async with harness(tmp_path) as h:
        (await hb(h, "a", 0))
        (await hb(h, "b", 0))
        kept = parts(await hb(h, "a", 1))
        (await hb(h, "a", 1, owned={T1: kept}))
        (await hb(h, "b", 2))
        left = (await hb(h, "b", -1))
        assert (left.error, left.member_epoch) == (Errors.NONE, -1)
        assert parts(await hb(h, "a", 2)) == {0, 1, 2, 3}


@async_test
async def test_member_that_does_not_revoke_is_fenced_after_its_rebalance_timeout(tmp_path):
    async with harness(tmp_path, "group.consumer.session.timeout.ms=600000",
                       "group.consumer.max.session.timeout.ms=600000") as h:
        (await hb(h, "a", 0, rebalance_timeout_ms=10000))
        (await hb(h, "b", 0))
        assert len(parts(await hb(h, "a", 1))) == 2
        h.clock.advance(10001)
        assert (await hb(h, "a", 1)).error == Errors.UNKNOWN_MEMBER_ID
        assert parts(await hb(h, "b", 2)) == {0, 1, 2, 3} or (await hb(h, "b", 3)).error == Errors.NONE


@async_test
async def test_static_member_leaves_for_a_while_and_comes_back_with_its_partitions(tmp_path):
    async with harness(tmp_path) as h:
        first = (await hb(h, "a", 0, instance_id="i1"))
        assert parts(first) == {0, 1, 2, 3}
        assert (await hb(h, "z", 0, instance_id="i1")).error == Errors.UNRELEASED_INSTANCE_ID
        assert (await hb(h, "a", -2, instance_id="i1")).member_epoch == -2
        back = (await hb(h, "a2", 0, instance_id="i1"))
        assert (back.error, back.member_epoch, parts(back)) == (Errors.NONE, 1, {0, 1, 2, 3})
        group = h.coordinator.manager.get_group("g").consumer
        assert group.group_epoch == 1 and set(group.members) == {"a2"}
        # Back under the same member id, it finds its assignment too.
        (await hb(h, "a2", -2, instance_id="i1"))
        again = (await hb(h, "a2", 0, instance_id="i1"))
        assert (again.member_epoch, parts(again)) == (1, {0, 1, 2, 3})
        # Its session runs out if it does not come back.
        (await hb(h, "a2", -2, instance_id="i1"))
        h.clock.advance(SESSION_MS + 1)
        assert not group.members


# -- classic and consumer groups -------------------------------------------------------------------
@async_test
async def test_classic_and_consumer_groups_do_not_mix(tmp_path):
    async with harness(tmp_path) as h:
        task = await join(h, join_params("classic", require_known=False))
        assert (await task).error == Errors.NONE
        r = (await hb(h, "a", 0, group="classic"))
        assert r.error == Errors.GROUP_ID_NOT_FOUND and r.message == "Group classic is not a consumer group."
        (await hb(h, "a", 0, group="new"))
        task = await join(h, join_params("new", require_known=False))
        assert (await task).error == Errors.INCONSISTENT_GROUP_PROTOCOL
        error, overviews = h.coordinator.list_groups([], [])
        assert {(o.group_id, o.group_type, o.protocol_type) for o in overviews} >= {
            ("classic", "classic", "consumer"), ("new", "consumer", "consumer")}
        assert [o.group_id for o in h.coordinator.list_groups([], ["consumer"])[1]] == ["new"]
        assert h.coordinator.consumer_group_describe("classic")[0] == Errors.GROUP_ID_NOT_FOUND
        assert h.coordinator.describe_group("new") == (Errors.NONE, None)


# -- offsets ---------------------------------------------------------------------------------------
@async_test
async def test_offset_commit_and_fetch_check_the_member_epoch(tmp_path):
    async with harness(tmp_path) as h:
        (await hb(h, "a", 0))
        om = {("t1", 0): OffsetAndMetadata(5, -1, "", h.clock.time_ms())}
        coordinator = h.coordinator
        assert await coordinator.commit_offsets("g", "a", None, 0, om, 9) == {("t1", 0): Errors.STALE_MEMBER_EPOCH}
        assert await coordinator.commit_offsets("g", "x", None, 1, om, 9) == {("t1", 0): Errors.UNKNOWN_MEMBER_ID}
        assert await coordinator.commit_offsets("g", "a", None, 1, om, 8) == {("t1", 0): Errors.UNSUPPORTED_VERSION}
        assert await coordinator.commit_offsets("g", "a", None, 1, om, 9) == {("t1", 0): Errors.NONE}
        assert coordinator.fetch_offsets("g", False, [("t1", 0)], "a", 0)[0] == Errors.STALE_MEMBER_EPOCH
        error, answers = coordinator.fetch_offsets("g", False, [("t1", 0)], "a", 1)
        assert error == Errors.NONE and answers[("t1", 0)][0].offset == 5
        assert coordinator.fetch_offsets("g", False, [("t1", 0)])[0] == Errors.NONE  # an admin's fetch
        # TxnOffsetCommit (a consume-transform-produce loop) names the member and its epoch.
        txn = coordinator.handle_txn_commit_offsets
        assert await txn("g", 1000, 0, "a", None, 1, om) == {("t1", 0): Errors.NONE}
        assert await txn("g", 1000, 0, "a", None, 0, om) == {("t1", 0): Errors.ILLEGAL_GENERATION}
        assert await txn("g", 1000, 0, "x", None, 1, om) == {("t1", 0): Errors.UNKNOWN_MEMBER_ID}
        assert await txn("g", 1000, 0, "", None, -1, om) == {("t1", 0): Errors.NONE}
        # Once the group is empty, admin tools may commit without a member.
        (await hb(h, "a", -1))
        await settle()
        assert await coordinator.commit_offsets("g", "", None, -1, om, 9) == {("t1", 0): Errors.NONE}


# -- persistence -----------------------------------------------------------------------------------
@async_test
async def test_the_group_is_reloaded_from_its_records_after_a_coordinator_move(tmp_path):
    async with harness(tmp_path) as h:
        await hb(h, "a", 0, instance_id="i1", server_assignor="range")
        await hb(h, "b", 0)
        kept = parts(await hb(h, "a", 1))  # a revokes: UNREVOKED_PARTITIONS is persisted too
        before = h.coordinator.manager.get_group("g").consumer
        snapshot = (before.group_epoch, before.assignment_epoch, before.target_assignment,
                    {m.member_id: (m.member_epoch, m.state, m.assigned, m.pending_revocation, m.instance_id,
                                   m.subscribed_topic_names, m.server_assignor)
                     for m in before.members.values()})
        clock = h.clock
    # A broker knows the topics before it leads the offsets partition.
    h = Harness(tmp_path, clock, "group.coordinator.rebalance.protocols=classic,consumer")
    h.cache.put_topic(TopicMetadata("t1", T1, dict.fromkeys(range(4))))  # type: ignore[arg-type]
    h = await h.start()
    try:
        after = h.coordinator.manager.get_group("g").consumer
        assert (after.group_epoch, after.assignment_epoch, after.target_assignment,
                {m.member_id: (m.member_epoch, m.state, m.assigned, m.pending_revocation, m.instance_id,
                               m.subscribed_topic_names, m.server_assignor)
                 for m in after.members.values()}) == snapshot
        # The members carry on in their epochs: a finishes revoking, b gets the rest.
        assert (await hb(h, "a", 1, owned={T1: kept})).member_epoch == 2
        assert parts(await hb(h, "b", 2)) == {0, 1, 2, 3} - kept
        # A leave is written too: after another move, only b is left.
        await hb(h, "a", -1)
    finally:
        h.close()
    h = await Harness(tmp_path, clock, "group.coordinator.rebalance.protocols=classic,consumer").start()
    try:
        assert set(h.coordinator.manager.get_group("g").consumer.members) == {"b"}
        # Its session timer runs again after the load.
        h.clock.advance(SESSION_MS + 1)
        assert not h.coordinator.manager.get_group("g").consumer.members
    finally:
        h.close()


def test_records_are_kafkas_bytes():
    """Byte for byte what Kafka 4.x's GroupCoordinatorRecordSerde writes (and was checked to
    read back: ConsumerGroupMemberMetadataValue, ConsumerGroupCurrentMemberAssignmentValue with
    MemberState UNREVOKED_PARTITIONS = 1, ...)."""
    from kbroker.group.consumer_group import ConsumerGroup, ConsumerGroupMember, MemberState
    from kbroker.group.consumer_group_records import group_records, rebuild_group, record_key

    group = ConsumerGroup("grp", group_epoch=4, assignment_epoch=3)
    group.add_or_update_member(ConsumerGroupMember(
        "m1", instance_id="i1", client_id="cid", client_host="/127.0.0.1", subscribed_topic_names=["a", "b"],
        subscribed_topic_regex="x.*", rebalance_timeout_ms=3000, server_assignor="range", member_epoch=3,
        previous_member_epoch=2, state=MemberState.UNREVOKED_PARTITIONS, assigned={uuid.UUID(int=7): {0, 2}},
        pending_revocation={uuid.UUID(int=8): {1}}))
    group.target_assignment["m1"] = {uuid.UUID(int=7): {0, 2, 5}}
    records = group_records(group)
    assert record_key(5, "grp", "m1") == bytes.fromhex("0005000367727000026d31")
    assert records[(3, "grp", None)] == bytes.fromhex("00000000000400")
    assert records[(8, "grp", "m1")] == bytes.fromhex(
        "0000000000030000000201" "02" + "00" * 15 + "07" "03" "0000000000000002" "00"
        "02" + "00" * 15 + "08" "02" "00000001" "00" "00")
    assert records[(5, "grp", "m1")] == bytes.fromhex(
        "0000" "036931" "00" "04636964" "0b2f3132372e302e302e31" "03" "0261" "0262" "04782e2a" "00000bb8"
        "0672616e6765" "00")
    rebuilt = rebuild_group("grp", records)
    assert (rebuilt.group_epoch, rebuilt.assignment_epoch, rebuilt.target_assignment) == (4, 3, group.target_assignment)
    assert rebuilt.members == group.members


def test_consumer_group_timeouts_must_sit_within_their_bounds():
    import pytest

    from kbroker.config import KafkaConfig
    from kbroker.config.kafka_config import ConfigError

    KafkaConfig.load(overrides=["group.consumer.session.timeout.ms=50000"], defaults={})
    for overrides, message in (
            (["group.consumer.session.timeout.ms=30000"],
             "group.consumer.session.timeout.ms must be greater than or equal to group.consumer.min.session.timeout.ms"),
            (["group.consumer.max.heartbeat.interval.ms=4000"],
             "group.consumer.max.heartbeat.interval.ms must be greater than or equal to "
             "group.consumer.min.heartbeat.interval.ms"),
            (["group.consumer.min.session.timeout.ms=1000", "group.consumer.session.timeout.ms=5000"],
             "group.consumer.heartbeat.interval.ms must be less than group.consumer.session.timeout.ms")):
        with pytest.raises(ConfigError, match=message):
            KafkaConfig.load(overrides=overrides, defaults={})


@async_test
async def test_a_steady_heartbeat_writes_only_what_changed_of_its_member(tmp_path):
    from kbroker.group.consumer_group_records import read_record_key

    async with harness(tmp_path) as h:
        writes: list[list[tuple]] = []
        store = h.coordinator.manager.store_records

        async def capture(group_id, records):
            writes.append([(read_record_key(k), v is None) for k, v in records])
            return await store(group_id, records)
        h.coordinator.manager.store_records = capture
        await hb(h, "a", 0)
        assert {key[0] for key, _ in writes[-1]} == {3, 5, 6, 7, 8}  # a new group: everything
        await hb(h, "b", 0)
        kept = parts(await hb(h, "a", 1))
        writes.clear()
        assert (await hb(h, "a", 1, owned={T1: kept})).member_epoch == 2
        assert writes == [[((8, "g", "a"), False)]]  # a's new epoch, nothing else
        writes.clear()
        await hb(h, "a", 2)
        assert writes == []  # nothing changed, nothing written
        await hb(h, "b", -1)
        assert ((5, "g", "b"), True) in writes[-1] and ((3, "g", None), False) in writes[-1]


@async_test
async def test_an_empty_group_changes_protocol_and_a_reload_agrees(tmp_path):
    async with harness(tmp_path) as h:
        # consumer -> classic: the KIP-848 records are tombstoned.
        await hb(h, "a", 0, group="flip")
        await hb(h, "a", -1, group="flip")
        joined = await (await join(h, join_params("flip", require_known=False)))
        assert joined.error == Errors.NONE
        synced = await h.coordinator.sync_group("flip", joined.generation_id, joined.member_id, None, None, None,
                                                {joined.member_id: b"x"})
        assert synced.error == Errors.NONE  # the classic group's record is written
        # classic -> consumer: the classic record is tombstoned.
        task = await join(h, join_params("flop", require_known=False))
        member = (await task).member_id
        h.coordinator.leave_group("flop", [(member, None, None)])
        await settle()
        assert (await hb(h, "b", 0, group="flop")).error == Errors.NONE
        await settle()
        clock = h.clock
    h = await Harness(tmp_path, clock, "group.coordinator.rebalance.protocols=classic,consumer").start()
    try:
        flip, flop = h.coordinator.manager.get_group("flip"), h.coordinator.manager.get_group("flop")
        assert flip.consumer is None and flip.size == 1
        assert flop.consumer is not None and set(flop.consumer.members) == {"b"} and flop.size == 0
    finally:
        h.close()
