"""Joins that arrive while the group coordinator is storing group metadata (issue 16, bug 14).

Kafka's GroupCoordinator builds the group record synchronously, under the group lock, at the
moment an assignment (or a static member's new id) is accepted; only the append is waited for.
kbroker stores from a task that runs on a later loop turn, so these tests place a join exactly
in that gap: the join's task is created right after the accepting call's, and asyncio runs ready
tasks in the order they were scheduled, so the join runs before the store task's first step.
Each test checks that no coordinator task fails, that the record in `__consumer_offsets` is the
one Kafka would have written, and what the members are left with.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from test_group_coordinator import async_test, harness

from kbroker.group.coordinator_records import (
    GroupMetadataKey,
    GroupMetadataRecord,
    read_group_metadata_value,
    read_key,
)
from kbroker.group.group_metadata import GroupState
from kbroker.log.records import iter_batches, iter_records
from kbroker.protocol.errors import Errors
from kbroker.testing.group_harness import Harness, join_params
from kbroker.testing.waiting import settle

INSTANCES = ("i-1", "i-2")


def stored_group_records(h: Harness, group_id: str) -> list[GroupMetadataRecord]:
    """Every group metadata record of `group_id` in its `__consumer_offsets` partition, in order."""
    log = h.offsets_log(group_id)
    data = log.read(log.log_start_offset, 1 << 20, None, True).read_bytes()
    return [read_group_metadata_value(r.value) for header in iter_batches(data) for r in iter_records(data, header)
            if r.value is not None and read_key(r.key) == GroupMetadataKey(group_id)]


def members_and_assignments(record: GroupMetadataRecord) -> dict[str, tuple[str | None, bytes]]:
    return {m.member_id: (m.group_instance_id, m.assignment) for m in record.members}


def coordinator_failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "kbroker.group" and r.levelno >= logging.ERROR]


async def static_members_completing(h: Harness) -> tuple[dict[str, str], int]:
    """Static members i-1 and i-2 joined together, the group completing its rebalance:
    returns ({instance: member id}, generation); i-1 leads."""
    tasks = [asyncio.ensure_future(h.coordinator.join_group(join_params(instance=i, client_id=i))) for i in INSTANCES]
    await settle()
    h.clock.advance(0)
    await settle()
    results = [await t for t in tasks]
    assert [r.error for r in results] == [Errors.NONE, Errors.NONE]
    ids = {i: r.member_id for i, r in zip(INSTANCES, results, strict=True)}
    assert results[0].leader_id == ids["i-1"]
    assert h.coordinator.manager.get_group("g").is_state(GroupState.COMPLETING_REBALANCE)
    return ids, results[0].generation_id


async def sync_stable(h: Harness, ids: dict[str, str], generation: int, leader: str,
                      assignment: dict[str, bytes]) -> dict[str, bytes]:
    """Every member syncs (the leader with `assignment`); returns each member's answer."""
    instance_of = {m: i for i, m in ids.items()}
    syncs = {m: asyncio.ensure_future(h.coordinator.sync_group("g", generation, m, None, None, instance_of[m],
                                                               assignment if m == leader else {}))
             for m in ids.values()}
    await settle()
    answers = {m: await s for m, s in syncs.items()}
    assert {a.error for a in answers.values()} == {Errors.NONE}
    return {m: a.assignment for m, a in answers.items()}


@pytest.mark.parametrize("joiner", ["known instance, new member id", "new instance"])
@async_test
async def test_join_while_the_leaders_assignment_is_being_stored(tmp_path, caplog, joiner):
    caplog.set_level(logging.INFO, logger="kbroker.group")
    async with harness(tmp_path) as h:
        ids, generation = await static_members_completing(h)
        leader, follower = ids["i-1"], ids["i-2"]
        plan = {leader: b"a-1", follower: b"a-2"}
        instance = "i-2" if joiner.startswith("known") else "i-3"

        leader_sync = asyncio.ensure_future(h.coordinator.sync_group("g", generation, leader, None, None, "i-1", plan))
        rejoin = asyncio.ensure_future(h.coordinator.join_group(join_params(instance=instance, client_id=instance)))
        await settle()

        assert coordinator_failures(caplog) == []
        # Kafka stored the generation as it was when the leader's plan was accepted ...
        [record] = stored_group_records(h, "g")
        assert (record.generation, record.protocol, record.leader) == (generation, "range", leader)
        assert members_and_assignments(record) == {leader: ("i-1", b"a-1"), follower: ("i-2", b"a-2")}
        # ... and the join started a new rebalance: the leader's sync is answered
        # REBALANCE_IN_PROGRESS, nobody keeps an assignment, the joiner waits for the others.
        assert (await leader_sync).error == Errors.REBALANCE_IN_PROGRESS
        group = h.coordinator.manager.get_group("g")
        assert group.is_state(GroupState.PREPARING_REBALANCE) and group.generation_id == generation
        assert {m.assignment for m in group.members.values()} == {b""}
        assert not rejoin.done()

        # The group recovers: everyone rejoins, the next generation is stored and handed out.
        rejoins = [asyncio.ensure_future(h.coordinator.join_group(join_params(
            member_id=group.current_static_member_id(i), instance=i, client_id=i))) for i in INSTANCES if i != instance]
        await settle()
        answers = [await rejoin] + [await t for t in rejoins]
        assert {(a.error, a.generation_id) for a in answers} == {(Errors.NONE, generation + 1)}
        now = {i: group.current_static_member_id(i) for i in group.static_members}
        plan = {m: f"b-{i}".encode() for i, m in now.items()}
        assert await sync_stable(h, now, generation + 1, group.leader_id, plan) == plan
        assert members_and_assignments(stored_group_records(h, "g")[-1]) == {
            m: (i, plan[m]) for i, m in now.items()}
        assert coordinator_failures(caplog) == []


@async_test
async def test_two_static_rejoins_in_one_turn_store_one_record_each(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="kbroker.group")
    async with harness(tmp_path) as h:
        ids, generation = await static_members_completing(h)
        plan = {ids["i-1"]: b"a-1", ids["i-2"]: b"a-2"}
        await sync_stable(h, ids, generation, ids["i-1"], plan)

        # Stable, same protocol: each rejoin stores the group under its new member id, no rebalance.
        rejoins = [asyncio.ensure_future(h.coordinator.join_group(join_params(instance=i, client_id=i)))
                   for i in INSTANCES]
        await settle()
        answers = [await t for t in rejoins]

        assert coordinator_failures(caplog) == []
        assert [(a.error, a.generation_id) for a in answers] == [(Errors.NONE, generation)] * 2
        new_1, new_2 = (a.member_id for a in answers)
        group = h.coordinator.manager.get_group("g")
        assert group.is_state(GroupState.STABLE)
        assert {m.member_id: m.assignment for m in group.members.values()} == {new_1: b"a-1", new_2: b"a-2"}
        # One record per accepted rejoin, each the group as it stood at that rejoin.
        first, second = stored_group_records(h, "g")[-2:]
        assert members_and_assignments(first) == {new_1: ("i-1", b"a-1"), ids["i-2"]: ("i-2", b"a-2")}
        assert members_and_assignments(second) == {new_1: ("i-1", b"a-1"), new_2: ("i-2", b"a-2")}
