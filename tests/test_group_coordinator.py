"""The group coordinator's state machine (KAFKA-FACTS §7) with a fake clock, over real logs.

Joins, rebalances, syncs, heartbeats, session and rebalance timeouts, static members, the
initial rebalance delay, group.max.size and LeaveGroup, each checked against what Kafka 3.x's
GroupCoordinator answers. Offsets and persistence are in test_group_offsets.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools

from kbroker.group.group_metadata import GroupState
from kbroker.group.group_metadata_manager import GROUP_METADATA_TOPIC_NAME
from kbroker.protocol.errors import Errors
from kbroker.testing.group_harness import FakeClock, Harness, join_params
from kbroker.testing.waiting import settle


def async_test(fn):
    """Runs the coroutine test in a fresh event loop; a test stuck on a future fails after 10 s."""
    @functools.wraps(fn)
    def run(*args, **kwargs):
        return asyncio.run(asyncio.wait_for(fn(*args, **kwargs), 10))
    return run


@contextlib.asynccontextmanager
async def harness(tmp_path, *overrides, clock=None):
    h = await Harness(tmp_path, clock or FakeClock(), *overrides).start()
    try:
        yield h
    finally:
        h.close()


async def join(h: Harness, params, advance_ms: int = 0):
    """Sends a JoinGroup and returns the pending task (after the loop ran it once)."""
    task = asyncio.ensure_future(h.coordinator.join_group(params))
    await settle()
    if advance_ms is not None:
        h.clock.advance(advance_ms)
        await settle()
    return task


async def join_new_member(h: Harness, group="g", **kwargs) -> str:
    """MEMBER_ID_REQUIRED round trip: returns the member id the coordinator handed out."""
    first = await (await join(h, join_params(group, require_known=True, **kwargs)))
    assert first.error == Errors.MEMBER_ID_REQUIRED
    return first.member_id


async def stable_group(h: Harness, count: int, group="g", **kwargs) -> tuple[list[str], int]:
    """`count` dynamic members joined together and synced; returns (member ids, generation)."""
    ids = [await join_new_member(h, group, client_id=f"c{i}", **kwargs) for i in range(count)]
    tasks = [asyncio.ensure_future(h.coordinator.join_group(join_params(group, mid, client_id=f"c{i}", **kwargs)))
             for i, mid in enumerate(ids)]
    await settle()
    h.clock.advance(0)
    await settle()
    results = [await t for t in tasks]
    generation = results[0].generation_id
    leader = results[0].leader_id
    assert all(r.error == Errors.NONE and r.generation_id == generation for r in results)
    syncs = [asyncio.ensure_future(h.coordinator.sync_group(
        group, generation, mid, None, None, None,
        {m: f"assign-{m}".encode() for m in ids} if mid == leader else {})) for mid in ids]
    await settle()
    assert [(await s).error for s in syncs] == [Errors.NONE] * len(syncs)
    assert h.coordinator.manager.get_group(group).is_state(GroupState.STABLE)
    return ids, generation


# ---------------------------------------------------------------------------------------------
# Joining


@async_test
async def test_member_id_required_then_join_sync_and_heartbeat(tmp_path):
    async with harness(tmp_path) as h:
        first = await (await join(h, join_params(require_known=True, client_id="app")))
        assert first.error == Errors.MEMBER_ID_REQUIRED
        assert first.member_id.startswith("app-") and len(first.member_id) == len("app-") + 36
        assert first.generation_id == -1

        result = await (await join(h, join_params(member_id=first.member_id, protocols=[("range", b"meta")])))
        assert (result.error, result.generation_id, result.leader_id) == (Errors.NONE, 1, first.member_id)
        assert result.protocol_name == "range" and result.protocol_type == "consumer"
        assert result.members == [(first.member_id, None, b"meta")]
        group = h.coordinator.manager.get_group("g")
        assert group.is_state(GroupState.COMPLETING_REBALANCE)

        sync = await h.coordinator.sync_group("g", 1, first.member_id, "consumer", "range", None,
                                              {first.member_id: b"mine"})
        assert (sync.error, sync.assignment, sync.protocol_name) == (Errors.NONE, b"mine", "range")
        assert group.is_state(GroupState.STABLE)
        assert h.coordinator.heartbeat("g", first.member_id, None, 1) == Errors.NONE
        assert h.coordinator.heartbeat("g", first.member_id, None, 0) == Errors.ILLEGAL_GENERATION
        assert h.coordinator.heartbeat("g", "stranger", None, 1) == Errors.UNKNOWN_MEMBER_ID
        assert h.coordinator.heartbeat("nobody", first.member_id, None, 1) == Errors.UNKNOWN_MEMBER_ID


@async_test
async def test_pending_member_id_expires_after_the_session_timeout(tmp_path):
    async with harness(tmp_path) as h:
        member_id = await join_new_member(h, session_ms=6000)
        group = h.coordinator.manager.get_group("g")
        assert group.pending_members == {member_id}
        h.clock.advance(6000)
        assert group.pending_members == set()
        late = await (await join(h, join_params(member_id=member_id)))
        assert late.error == Errors.UNKNOWN_MEMBER_ID


@async_test
async def test_session_timeout_bounds(tmp_path):
    async with harness(tmp_path, "group.max.session.timeout.ms=60000") as h:
        for session_ms in (5999, 60001):
            result = await (await join(h, join_params(session_ms=session_ms)))
            assert result.error == Errors.INVALID_SESSION_TIMEOUT
        ok = await (await join(h, join_params(session_ms=6000, require_known=True)))
        assert ok.error == Errors.MEMBER_ID_REQUIRED


@async_test
async def test_invalid_group_id_and_unknown_member_of_unknown_group(tmp_path):
    async with harness(tmp_path) as h:
        assert (await (await join(h, join_params("")))).error == Errors.INVALID_GROUP_ID
        assert (await (await join(h, join_params("g", "m-1")))).error == Errors.UNKNOWN_MEMBER_ID


@async_test
async def test_inconsistent_protocols_are_refused(tmp_path):
    async with harness(tmp_path) as h:
        await stable_group(h, 1, protocols=[("range", b"")])
        other_type = await (await join(h, join_params(protocol_type="connect", protocols=[("range", b"")])))
        assert other_type.error == Errors.INCONSISTENT_GROUP_PROTOCOL
        no_common = await (await join(h, join_params(protocols=[("roundrobin", b"")])))
        assert no_common.error == Errors.INCONSISTENT_GROUP_PROTOCOL
        empty = await (await join(h, join_params("fresh", protocols=[])))
        assert empty.error == Errors.INCONSISTENT_GROUP_PROTOCOL


@async_test
async def test_protocol_is_chosen_by_vote_among_protocols_all_members_support(tmp_path):
    async with harness(tmp_path) as h:
        a = [("roundrobin", b"a"), ("range", b"a")]
        b = [("range", b"b"), ("roundrobin", b"b"), ("sticky", b"b")]
        c = [("roundrobin", b"c"), ("range", b"c")]
        tasks = [asyncio.ensure_future(h.coordinator.join_group(join_params(protocols=p))) for p in (a, b, c)]
        await settle()
        h.clock.advance(0)
        await settle()
        # All three joined before the (zero) initial delay ran out: one generation for all.
        results = [await t for t in tasks]
        assert {r.generation_id for r in results} == {1}
        # sticky is not supported by everyone; roundrobin has two first-choice votes to range's one.
        assert {r.protocol_name for r in results} == {"roundrobin"}
        assert [bool(r.members) for r in results] == [True, False, False]
        assert results[0].leader_id == results[0].member_id
        assert sorted(m[2] for m in results[0].members) == [b"a", b"b", b"c"]
        group = h.coordinator.manager.get_group("g")
        assert group.select_protocol() == "roundrobin"
        # Without the two roundrobin voters, range wins.
        h.coordinator.leave_group("g", [(results[0].member_id, None, None), (results[2].member_id, None, None)])
        assert group.select_protocol() == "range"


@async_test
async def test_new_member_triggers_rebalance_seen_through_heartbeat(tmp_path):
    async with harness(tmp_path) as h:
        (a,), generation = await stable_group(h, 1)
        b_task = await join(h, join_params(client_id="b"))
        group = h.coordinator.manager.get_group("g")
        assert group.is_state(GroupState.PREPARING_REBALANCE)
        assert h.coordinator.heartbeat("g", a, None, generation) == Errors.REBALANCE_IN_PROGRESS
        assert not b_task.done()
        # A commit is still allowed while preparing; a sync is not.
        sync = await h.coordinator.sync_group("g", generation, a, None, None, None, {})
        assert sync.error == Errors.REBALANCE_IN_PROGRESS

        a_result = await (await join(h, join_params(member_id=a)))
        b_result = await b_task
        assert a_result.generation_id == b_result.generation_id == generation + 1
        assert a_result.leader_id == a and len(a_result.members) == 2 and b_result.members == []

        b_sync = asyncio.ensure_future(h.coordinator.sync_group("g", generation + 1, b_result.member_id, None, None,
                                                                 None, {}))
        await settle()
        assert not b_sync.done()  # followers wait for the leader's assignment
        a_sync = await h.coordinator.sync_group("g", generation + 1, a, None, None, None,
                                                {a: b"A", b_result.member_id: b"B"})
        assert (a_sync.assignment, (await b_sync).assignment) == (b"A", b"B")
        assert group.is_state(GroupState.STABLE)


@async_test
async def test_missing_assignments_are_empty_and_follower_rejoin_in_stable_keeps_generation(tmp_path):
    async with harness(tmp_path) as h:
        ids, generation = await stable_group(h, 2)
        group = h.coordinator.manager.get_group("g")
        follower = next(m for m in ids if not group.is_leader(m))
        same = await (await join(h, join_params(member_id=follower, client_id="c1")))
        assert (same.error, same.generation_id, same.members) == (Errors.NONE, generation, [])
        assert group.is_state(GroupState.STABLE)
        # The leader rejoining forces a rebalance (so it can reassign, e.g. for new partitions).
        leader = group.leader_id
        leader_task = await join(h, join_params(member_id=leader))
        assert group.is_state(GroupState.PREPARING_REBALANCE) and not leader_task.done()
        follower_task = await join(h, join_params(member_id=follower))
        new_generation = (await leader_task).generation_id
        assert new_generation == generation + 1 and (await follower_task).generation_id == new_generation
        syncs = [asyncio.ensure_future(h.coordinator.sync_group("g", new_generation, m, None, None, None,
                                                                  {leader: b"L"} if m == leader else {}))
                 for m in (follower, leader)]
        await settle()
        assert [(await s).assignment for s in syncs] == [b"", b"L"]


@async_test
async def test_join_completes_at_rebalance_timeout_without_the_silent_member(tmp_path):
    async with harness(tmp_path) as h:
        (a, b), generation = await stable_group(h, 2, rebalance_ms=8000, session_ms=30000)
        c_task = await join(h, join_params(client_id="c", rebalance_ms=8000, session_ms=30000))
        group = h.coordinator.manager.get_group("g")
        a_task = await join(h, join_params(member_id=a, rebalance_ms=8000, session_ms=30000))
        h.clock.advance(7999)
        await settle()
        assert not a_task.done() and not c_task.done()
        h.clock.advance(1)
        await settle()
        a_result, c_result = await a_task, await c_task
        assert a_result.generation_id == c_result.generation_id == generation + 1
        assert set(group.members) == {a, c_result.member_id}
        assert h.coordinator.heartbeat("g", b, None, generation) == Errors.UNKNOWN_MEMBER_ID


@async_test
async def test_session_expiry_removes_the_member_and_rebalances(tmp_path):
    async with harness(tmp_path) as h:
        (a, b), generation = await stable_group(h, 2, session_ms=6000)
        group = h.coordinator.manager.get_group("g")
        for _ in range(5):
            h.clock.advance(1000)
            assert h.coordinator.heartbeat("g", a, None, generation) == Errors.NONE
        assert group.has(b)
        h.clock.advance(1000)  # b's last sign of life was 6 s ago
        assert not group.has(b) and group.is_state(GroupState.PREPARING_REBALANCE)
        assert h.coordinator.heartbeat("g", a, None, generation) == Errors.REBALANCE_IN_PROGRESS
        result = await (await join(h, join_params(member_id=a, session_ms=6000)))
        assert (result.generation_id, [m[0] for m in result.members]) == (generation + 1, [a])


@async_test
async def test_member_that_never_syncs_is_removed_after_the_rebalance_timeout(tmp_path):
    async with harness(tmp_path) as h:
        a = await join_new_member(h, rebalance_ms=7000)
        b = await join_new_member(h, client_id="b", rebalance_ms=7000)
        tasks = [asyncio.ensure_future(h.coordinator.join_group(join_params(member_id=m, rebalance_ms=7000)))
                 for m in (a, b)]
        await settle()
        h.clock.advance(0)
        await settle()
        generation = (await tasks[0]).generation_id
        group = h.coordinator.manager.get_group("g")
        leader = group.leader_id
        other = b if leader == a else a
        sync = await h.coordinator.sync_group("g", generation, leader, None, None, None, {leader: b"x", other: b"y"})
        assert sync.error == Errors.NONE and group.is_state(GroupState.STABLE)
        h.clock.advance(7000)
        assert not group.has(other) and group.is_state(GroupState.PREPARING_REBALANCE)


@async_test
async def test_initial_rebalance_delay_waits_for_more_joiners(tmp_path):
    async with harness(tmp_path, "group.initial.rebalance.delay.ms=3000") as h:
        a_task = await join(h, join_params(client_id="a", rebalance_ms=10000))
        h.clock.advance(1000)
        b_task = await join(h, join_params(client_id="b", rebalance_ms=10000))
        # The delay ends at 3000 with a newcomer: it runs once more, to 6000 (of the 10 s budget).
        h.clock.advance(4999)
        await settle()
        assert not a_task.done() and not b_task.done()
        h.clock.advance(1)
        await settle()
        a_result, b_result = await a_task, await b_task
        assert a_result.generation_id == b_result.generation_id == 1
        assert len(a_result.members) + len(b_result.members) == 2


@async_test
async def test_group_max_size(tmp_path):
    async with harness(tmp_path, "group.max.size=2") as h:
        await stable_group(h, 2)
        third = await (await join(h, join_params(client_id="third")))
        assert third.error == Errors.GROUP_MAX_SIZE_REACHED and third.member_id == ""
        assert h.coordinator.manager.get_group("g").size == 2


# ---------------------------------------------------------------------------------------------
# Static membership


@async_test
async def test_static_member_rejoins_with_new_id_without_rebalance_and_old_id_is_fenced(tmp_path):
    async with harness(tmp_path) as h:
        tasks = [asyncio.ensure_future(h.coordinator.join_group(join_params(instance=i, client_id=i)))
                 for i in ("i-1", "i-2")]
        await settle()
        h.clock.advance(0)
        await settle()
        group = h.coordinator.manager.get_group("g")
        results = [await t for t in tasks]
        assert results[0].member_id.startswith("i-1-")  # static members' ids start with the instance id
        generation = results[0].generation_id
        leader = group.leader_id
        ids = [r.member_id for r in results]
        syncs = [asyncio.ensure_future(h.coordinator.sync_group("g", generation, m, None, None, i,
                                                                  dict.fromkeys(ids, b"x") if m == leader else {}))
                 for m, i in zip(ids, ("i-1", "i-2"), strict=True)]
        await settle()
        assert [(await s).error for s in syncs] == [Errors.NONE] * len(syncs)

        old_id = group.current_static_member_id("i-2")
        again = await (await join(h, join_params(instance="i-2", client_id="i-2")))
        assert again.error == Errors.NONE and again.member_id != old_id
        assert again.generation_id == generation and group.is_state(GroupState.STABLE)
        assert h.coordinator.heartbeat("g", old_id, "i-2", generation) == Errors.FENCED_INSTANCE_ID
        assert h.coordinator.heartbeat("g", again.member_id, "i-2", generation) == Errors.NONE
        sync = await h.coordinator.sync_group("g", generation, again.member_id, None, None, "i-2", {})
        assert sync.assignment == b"x"  # the assignment stays with the instance
        assert h.coordinator.heartbeat("g", again.member_id, "unknown", generation) == Errors.UNKNOWN_MEMBER_ID


@async_test
async def test_static_leader_rejoin_v9_is_told_to_skip_assignment(tmp_path):
    async with harness(tmp_path) as h:
        result = await (await join(h, join_params(instance="solo")))
        await h.coordinator.sync_group("g", result.generation_id, result.member_id, None, None, "solo",
                                       {result.member_id: b"a"})
        old_style = await (await join(h, join_params(instance="solo")))
        assert old_style.leader_id == result.member_id != old_style.member_id  # pre-v9: the old leader id
        new_style = await (await join(h, join_params(instance="solo", skip_assignment=True)))
        assert new_style.skip_assignment and new_style.leader_id == new_style.member_id
        assert [m[0] for m in new_style.members] == [new_style.member_id]
        assert new_style.generation_id == result.generation_id


@async_test
async def test_static_member_survives_its_session_only_until_expiry(tmp_path):
    async with harness(tmp_path) as h:
        result = await (await join(h, join_params(instance="s", session_ms=6000)))
        await h.coordinator.sync_group("g", result.generation_id, result.member_id, None, None, "s", {})
        group = h.coordinator.manager.get_group("g")
        h.clock.advance(6000)
        await settle()
        # Removed on expiry; the rebalance that follows leaves the group empty.
        assert group.size == 0 and group.is_state(GroupState.EMPTY)
        assert group.generation_id == result.generation_id + 1


# ---------------------------------------------------------------------------------------------
# Leaving


@async_test
async def test_leave_group_in_batch_by_member_id_and_by_instance_id(tmp_path):
    async with harness(tmp_path) as h:
        ids, generation = await stable_group(h, 2)
        static_join = await join(h, join_params(instance="inst", client_id="s"))  # waits for the others
        group = h.coordinator.manager.get_group("g")
        error, members = h.coordinator.leave_group("g", [(ids[0], None, "bye"), ("", "inst", None),
                                                         ("nobody", None, None), (ids[1], "wrong", None)])
        assert error == Errors.NONE
        assert members == [Errors.NONE, Errors.NONE, Errors.UNKNOWN_MEMBER_ID, Errors.UNKNOWN_MEMBER_ID]
        assert set(group.members) == {ids[1]}
        # The static member left while its JoinGroup waited: that call is answered, so it may retry.
        assert (await static_join).error == Errors.UNKNOWN_MEMBER_ID
        assert h.coordinator.leave_group("other", [(ids[1], None, None)]) == (Errors.NONE,
                                                                               [Errors.UNKNOWN_MEMBER_ID])
        assert h.coordinator.leave_group("", []) == (Errors.INVALID_GROUP_ID, [])


@async_test
async def test_last_member_leaving_empties_the_group_with_a_new_generation(tmp_path):
    async with harness(tmp_path) as h:
        (a,), generation = await stable_group(h, 1)
        assert h.coordinator.leave_group("g", [(a, None, None)]) == (Errors.NONE, [Errors.NONE])
        await settle()
        group = h.coordinator.manager.get_group("g")
        assert group.is_state(GroupState.EMPTY) and group.generation_id == generation + 1
        assert group.protocol_name is None
        assert h.coordinator.heartbeat("g", a, None, generation + 1) == Errors.UNKNOWN_MEMBER_ID


@async_test
async def test_leaving_pending_member_lets_the_join_complete(tmp_path):
    async with harness(tmp_path) as h:
        (a,), generation = await stable_group(h, 1)
        pending = await join_new_member(h, client_id="p")
        a_task = await join(h, join_params(member_id=a))
        group = h.coordinator.manager.get_group("g")
        # The pending member id holds the join back...
        b_task = await join(h, join_params(client_id="b"))
        assert group.is_state(GroupState.PREPARING_REBALANCE) and not a_task.done()
        # ...until it leaves.
        assert h.coordinator.leave_group("g", [(pending, None, None)]) == (Errors.NONE, [Errors.NONE])
        b_result = await b_task
        await settle()
        assert (await a_task).generation_id == b_result.generation_id == generation + 1


@async_test
async def test_a_late_resignation_or_election_for_an_older_leader_epoch_is_ignored(tmp_path):
    """Kafka's epochForPartitionId fence: a resignation for an older epoch than the last election
    must not unload groups loaded for the newer one, nor an old election reload them."""
    async with harness(tmp_path) as h:
        (a,), generation = await stable_group(h, 1)
        partition = h.coordinator.partition_for("g")
        newer = h.leader_epoch
        h.coordinator.on_leadership_change(GROUP_METADATA_TOPIC_NAME, partition, False, newer - 1)
        assert h.coordinator.heartbeat("g", a, None, generation) == Errors.NONE
        h.coordinator.on_leadership_change(GROUP_METADATA_TOPIC_NAME, partition, False, newer + 1)
        assert h.coordinator.manager.get_group("g") is None
        h.coordinator.on_leadership_change(GROUP_METADATA_TOPIC_NAME, partition, True, newer)
        await settle()
        assert h.coordinator.heartbeat("g", a, None, generation) == Errors.NOT_COORDINATOR
        h.coordinator.on_leadership_change(GROUP_METADATA_TOPIC_NAME, partition, True, newer + 2)
        await settle()
        assert h.coordinator.manager.get_group("g") is not None  # reloaded from the log


@async_test
async def test_a_resignation_without_an_epoch_always_unloads(tmp_path):
    """StopReplica of a deleted partition carries no epoch (negative): it resigns regardless."""
    async with harness(tmp_path) as h:
        await stable_group(h, 1)
        partition = h.coordinator.partition_for("g")
        h.coordinator.on_leadership_change(GROUP_METADATA_TOPIC_NAME, partition, False, -2)
        assert h.coordinator.manager.get_group("g") is None


@async_test
async def test_unloading_the_partition_answers_waiting_members_not_coordinator(tmp_path):
    async with harness(tmp_path) as h:
        (a, b), generation = await stable_group(h, 2)
        a_task = await join(h, join_params(member_id=a))
        partition = h.coordinator.partition_for("g")
        h.lead([partition], leader=1)  # another broker leads the group's partition now
        assert (await a_task).error == Errors.NOT_COORDINATOR
        assert h.coordinator.heartbeat("g", b, None, generation) == Errors.NOT_COORDINATOR
        assert h.coordinator.manager.get_group("g") is None
        assert h.clock.pending() == 1  # only the offsets expiry check remains
