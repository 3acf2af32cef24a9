"""Offsets and persistence of the group coordinator: OffsetCommit/OffsetFetch rules, the records
written to `__consumer_offsets`, replay after a restart (and COORDINATOR_LOAD_IN_PROGRESS while
it runs), NOT_COORDINATOR, DeleteGroups, OffsetDelete, expiry, describe and list.

Every test writes through a real ReplicaManager into log segments; a "restart" is a second
Harness (new LogManager, ReplicaManager and coordinator) on the same directory.
"""

from __future__ import annotations

import asyncio
import struct

from test_group_coordinator import async_test, harness, join, join_new_member, stable_group

from kbroker.group.group_metadata import GroupState
from kbroker.group.group_metadata_manager import GROUP_METADATA_TOPIC_NAME
from kbroker.group.offset_and_metadata import OffsetAndMetadata
from kbroker.log.append_origin import AppendOrigin
from kbroker.log.records import (
    ControlRecordType,
    SimpleRecord,
    build_batch,
    build_control_batch,
    iter_batches,
    iter_records,
)
from kbroker.protocol.errors import Errors
from kbroker.replica.replica_manager import TxnMarkerEntry
from kbroker.testing.group_harness import (
    OFFSETS_PARTITIONS,
    T0,
    FakeClock,
    Harness,
    join_params,
    subscription,
)
from kbroker.testing.waiting import settle


def om(offset: int, metadata: str = "", leader_epoch: int = -1, now: int = T0) -> OffsetAndMetadata:
    """An offset as the OffsetCommit handler hands it over (commit time = the clock's start)."""
    return OffsetAndMetadata(offset, leader_epoch, metadata, now)


def log_records(h: Harness, group_id: str) -> list[tuple[bytes, bytes | None]]:
    """(key, value) of every record in the group's __consumer_offsets partition."""
    log = h.offsets_log(group_id)
    data = log.read(log.log_start_offset, 1 << 20, None, True).read_bytes()
    return [(r.key, r.value) for header in iter_batches(data) for r in iter_records(data, header)]


def s16(text: str) -> bytes:
    return struct.pack(">h", len(text.encode())) + text.encode()


async def restart(h: Harness, tmp_path, *overrides) -> Harness:
    h.close()
    return await Harness(tmp_path, h.clock, *overrides).start()


# ---------------------------------------------------------------------------------------------
# Commit and fetch


@async_test
async def test_offsets_only_group_commits_and_fetches(tmp_path):
    async with harness(tmp_path) as h:
        c = h.coordinator
        errors = await c.commit_offsets("simple", "", None, -1, {("t", 0): om(5, "m0", 3), ("t", 1): om(7)})
        assert errors == {("t", 0): Errors.NONE, ("t", 1): Errors.NONE}
        group = c.manager.get_group("simple")
        assert group.is_state(GroupState.EMPTY) and group.generation_id == 0
        error, offsets = c.fetch_offsets("simple", False, [("t", 0), ("t", 2)])
        assert error == Errors.NONE
        assert offsets[("t", 0)] == (om(5, "m0", 3), Errors.NONE)
        assert offsets[("t", 2)] == (None, Errors.NONE)
        assert set(c.fetch_offsets("simple", True, None)[1]) == {("t", 0), ("t", 1)}
        assert c.fetch_offsets("unknown", False, [("t", 0)]) == (Errors.NONE, {("t", 0): (None, Errors.NONE)})
        # The commit is Kafka's key/value pair: key v1, value v3 with the commit time.
        key, value = log_records(h, "simple")[0]
        assert key == b"\x00\x01" + s16("simple") + s16("t") + struct.pack(">i", 0)
        assert value == b"\x00\x03" + struct.pack(">qi", 5, 3) + s16("m0") + struct.pack(">q", h.clock.now_ms)


@async_test
async def test_commit_validation_against_the_group(tmp_path):
    async with harness(tmp_path) as h:
        c = h.coordinator
        (a, b), generation = await stable_group(h, 2)
        tp = {("t", 0): om(1)}
        assert await c.commit_offsets("g", "", None, -1, tp) == {("t", 0): Errors.UNKNOWN_MEMBER_ID}
        assert await c.commit_offsets("g", "stranger", None, generation, tp) == {("t", 0): Errors.UNKNOWN_MEMBER_ID}
        assert await c.commit_offsets("g", a, None, generation - 1, tp) == {("t", 0): Errors.ILLEGAL_GENERATION}
        assert await c.commit_offsets("g", a, "inst", generation, tp) == {("t", 0): Errors.UNKNOWN_MEMBER_ID}
        assert await c.commit_offsets("g", a, None, generation, tp) == {("t", 0): Errors.NONE}
        assert await c.commit_offsets("gone", a, None, 3, tp) == {("t", 0): Errors.ILLEGAL_GENERATION}
        assert await c.commit_offsets("gone", a, None, 3, tp, api_version=9) == {("t", 0): Errors.GROUP_ID_NOT_FOUND}
        assert await c.commit_offsets("", "", None, -1, tp) == {("t", 0): Errors.NONE}  # allowed for offsets
        # While the new generation completes, a member's commit is told to rebalance.
        joining = await join(h, join_params(client_id="late"))
        assert await c.commit_offsets("g", a, None, generation, tp) == {("t", 0): Errors.NONE}  # preparing: allowed
        rejoins = [await join(h, join_params(member_id=m)) for m in (a, b)]
        new_generation = (await rejoins[0]).generation_id
        assert c.manager.get_group("g").is_state(GroupState.COMPLETING_REBALANCE)
        assert await c.commit_offsets("g", a, None, new_generation, tp) == {("t", 0): Errors.REBALANCE_IN_PROGRESS}
        assert (await joining).generation_id == new_generation


@async_test
async def test_metadata_longer_than_offset_metadata_max_bytes_is_refused_per_partition(tmp_path):
    async with harness(tmp_path, "offset.metadata.max.bytes=4") as h:
        c = h.coordinator
        errors = await c.commit_offsets("s", "", None, -1, {("t", 0): om(1, "four"), ("t", 1): om(2, "fives")})
        assert errors == {("t", 0): Errors.NONE, ("t", 1): Errors.OFFSET_METADATA_TOO_LARGE}
        assert await c.commit_offsets("s", "", None, -1, {("t", 1): om(2, "x" * 5)}) == {
            ("t", 1): Errors.OFFSET_METADATA_TOO_LARGE}
        assert c.fetch_offsets("s", False, [("t", 1)])[1][("t", 1)] == (None, Errors.NONE)


@async_test
async def test_require_stable_reports_commits_still_being_written(tmp_path):
    async with harness(tmp_path) as h:
        c = h.coordinator
        group = c.manager.get_or_maybe_create_group("s", True)
        group.prepare_offset_commit({("t", 0): om(9)})  # as a commit in flight would
        assert c.fetch_offsets("s", True, [("t", 0)])[1] == {("t", 0): (None, Errors.UNSTABLE_OFFSET_COMMIT)}
        assert c.fetch_offsets("s", False, [("t", 0)])[1] == {("t", 0): (None, Errors.NONE)}


# ---------------------------------------------------------------------------------------------
# Persistence and loading


@async_test
async def test_group_and_offsets_survive_a_restart(tmp_path):
    clock = FakeClock()
    h = await Harness(tmp_path, clock).start()
    (a, b), generation = await stable_group(h, 2, session_ms=6000,
                                            protocols=[("range", subscription("t"))])
    assert await h.coordinator.commit_offsets("g", a, None, generation, {("t", 0): om(42, "x"), ("t", 1): om(7)}) \
        == {("t", 0): Errors.NONE, ("t", 1): Errors.NONE}
    before = h.coordinator.manager.get_group("g")
    assignments = {m: before.get(m).assignment for m in (a, b)}

    h = await restart(h, tmp_path)
    try:
        group = h.coordinator.manager.get_group("g")
        assert group.is_state(GroupState.STABLE) and group.generation_id == generation
        assert (group.protocol_type, group.protocol_name, group.leader_id) == ("consumer", "range", before.leader_id)
        assert {m: group.get(m).assignment for m in (a, b)} == assignments
        assert group.subscribed_topics == {"t"}
        assert h.coordinator.fetch_offsets("g", False, [("t", 0)])[1][("t", 0)][0].offset == 42
        # Members carry on with their ids; the one that does not come back is dropped.
        for _ in range(5):
            clock.advance(1000)
            assert h.coordinator.heartbeat("g", a, None, generation) == Errors.NONE
        clock.advance(1000)
        assert not group.has(b) and group.is_state(GroupState.PREPARING_REBALANCE)
    finally:
        h.close()


@async_test
async def test_requests_while_loading_and_for_partitions_we_do_not_lead(tmp_path):
    clock = FakeClock()
    h = await Harness(tmp_path, clock).start()
    (a,), generation = await stable_group(h, 1)
    h.close()
    h = Harness(tmp_path, clock)
    try:
        c = h.coordinator
        partition = c.partition_for("g")
        others = [p for p in range(3) if p != partition]
        h.lead(others)
        await settle()
        assert c.heartbeat("g", a, None, generation) == Errors.NOT_COORDINATOR
        h.lead([partition])  # the load is scheduled, not run yet
        assert c.heartbeat("g", a, None, generation) == Errors.NONE  # answered blindly
        sync = await c.sync_group("g", generation, a, None, None, None, {})
        assert sync.error == Errors.REBALANCE_IN_PROGRESS
        assert (await c.join_group(join_params(member_id=a))).error == Errors.COORDINATOR_LOAD_IN_PROGRESS
        assert await c.commit_offsets("g", a, None, generation, {("t", 0): om(1)}) == {
            ("t", 0): Errors.COORDINATOR_LOAD_IN_PROGRESS}
        assert c.fetch_offsets("g", False, None) == (Errors.COORDINATOR_LOAD_IN_PROGRESS, {})
        assert c.list_groups([], [])[0] == Errors.COORDINATOR_LOAD_IN_PROGRESS
        await settle()
        assert c.heartbeat("g", a, None, generation) == Errors.NONE
        assert c.list_groups([], [])[0] == Errors.NONE
    finally:
        h.close()
    # Not started (or stopped): COORDINATOR_NOT_AVAILABLE.
    assert h.coordinator.heartbeat("g", a, None, generation) == Errors.COORDINATOR_NOT_AVAILABLE


@async_test
async def test_replay_applies_transactional_commits_only_once_committed(tmp_path):
    clock = FakeClock()
    h = await Harness(tmp_path, clock).start()
    await h.coordinator.commit_offsets("tx", "", None, -1, {("t", 0): om(1)})
    partition = h.coordinator.partition_for("tx")
    rm = h.replica_manager

    def txn_commit(producer_id: int, offset: int) -> None:
        key = b"\x00\x01" + s16("tx") + s16("t") + struct.pack(">i", 0)
        value = b"\x00\x03" + struct.pack(">qi", offset, -1) + s16("") + struct.pack(">q", 1)
        batch = build_batch([SimpleRecord(key, value)], producer_id=producer_id, producer_epoch=0, base_sequence=0,
                            is_transactional=True)
        assert rm.append_to_partition(GROUP_METADATA_TOPIC_NAME, partition, memoryview(batch), -1,
                                      AppendOrigin.COORDINATOR).error == Errors.NONE

    def marker(producer_id: int, kind: ControlRecordType) -> None:
        batch = build_control_batch(kind, producer_id, 0, 0)
        assert rm.append_to_partition(GROUP_METADATA_TOPIC_NAME, partition, memoryview(batch), -1,
                                      AppendOrigin.COORDINATOR).error == Errors.NONE

    txn_commit(1000, 50)
    marker(1000, ControlRecordType.COMMIT)
    txn_commit(1001, 99)
    marker(1001, ControlRecordType.ABORT)
    txn_commit(1002, 77)  # still open
    h = await restart(h, tmp_path)
    try:
        assert h.coordinator.fetch_offsets("tx", False, [("t", 0)])[1][("t", 0)][0].offset == 50
    finally:
        h.close()


@async_test
async def test_txn_offset_commits_wait_for_their_marker(tmp_path):
    """TxnOffsetCommit: pending (UNSTABLE_OFFSET_COMMIT under require_stable) until a marker on
    the offsets partition commits them, or drops them on abort; an open transaction's offsets
    stay pending across a restart, for its marker to complete them."""
    tp = ("t", 0)

    async def start() -> Harness:
        h = await Harness(tmp_path, FakeClock()).start()
        # As the server wires it: markers written on __consumer_offsets reach the coordinator.
        h.replica_manager.txn_marker_listeners.append(lambda pid, parts, committed: h.coordinator.on_transaction_completed(
            pid, {p for topic, p in parts if topic == GROUP_METADATA_TOPIC_NAME}, committed))
        return h

    async def end(h: Harness, producer_id: int, committed: bool, partition: int) -> None:
        [errors] = await h.replica_manager.append_txn_markers(
            [TxnMarkerEntry(producer_id, 0, 0, committed, [(GROUP_METADATA_TOPIC_NAME, partition)])], 5000)
        assert set(errors.values()) == {Errors.NONE}

    h = await start()
    partition = h.coordinator.partition_for("txg")

    def fetch(require_stable: bool = False):
        return h.coordinator.fetch_offsets("txg", require_stable, [tp])[1][tp]

    assert await h.coordinator.commit_offsets("txg", "", None, -1, {tp: om(5)}) == {tp: Errors.NONE}
    assert await h.coordinator.handle_txn_commit_offsets("txg", 2000, 0, "", None, -1, {tp: om(10)}) == {
        tp: Errors.NONE}
    assert fetch()[0].offset == 5 and fetch(True) == (None, Errors.UNSTABLE_OFFSET_COMMIT)
    await end(h, 2000, True, (partition + 1) % OFFSETS_PARTITIONS)  # another partition's marker
    assert fetch()[0].offset == 5
    await end(h, 2000, True, partition)
    assert fetch(True)[0].offset == 10
    assert await h.coordinator.handle_txn_commit_offsets("txg", 2001, 0, "", None, -1, {tp: om(20)}) == {
        tp: Errors.NONE}
    await end(h, 2001, False, partition)
    assert fetch(True)[0].offset == 10  # aborted: dropped
    assert await h.coordinator.handle_txn_commit_offsets("txg", 2002, 0, "", None, -1, {tp: om(30)}) == {
        tp: Errors.NONE}
    # A member of a generation the coordinator never saw is refused, as for OffsetCommit.
    assert await h.coordinator.handle_txn_commit_offsets("txg", 2002, 0, "ghost", None, 3, {tp: om(31)}) == {
        tp: Errors.UNKNOWN_MEMBER_ID}
    h.close()
    h = await start()
    try:
        assert fetch()[0].offset == 10 and fetch(True) == (None, Errors.UNSTABLE_OFFSET_COMMIT)
        await end(h, 2002, True, partition)
        assert fetch(True)[0].offset == 30
    finally:
        h.close()


# ---------------------------------------------------------------------------------------------
# Deleting


@async_test
async def test_delete_groups(tmp_path):
    clock = FakeClock()
    h = await Harness(tmp_path, clock).start()
    c = h.coordinator
    await stable_group(h, 1, group="busy")
    (a,), generation = await stable_group(h, 1, group="done")
    await c.commit_offsets("done", a, None, generation, {("t", 0): om(3)})
    c.leave_group("done", [(a, None, None)])
    await settle()
    assert c.manager.get_group("done").is_state(GroupState.EMPTY)
    assert c.delete_groups(["busy", "done", "never", ""]) == {
        "busy": Errors.NON_EMPTY_GROUP, "done": Errors.NONE, "never": Errors.GROUP_ID_NOT_FOUND,
        "": Errors.GROUP_ID_NOT_FOUND}
    assert c.delete_groups(["done"]) == {"done": Errors.GROUP_ID_NOT_FOUND}
    # Tombstones: the offset's and the group's keys with null values.
    tail = log_records(h, "done")[-2:]
    assert tail == [(b"\x00\x01" + s16("done") + s16("t") + struct.pack(">i", 0), None),
                    (b"\x00\x02" + s16("done"), None)]
    h = await restart(h, tmp_path)
    try:
        assert h.coordinator.manager.get_group("done") is None
        assert h.coordinator.manager.get_group("busy") is not None
    finally:
        h.close()


@async_test
async def test_offset_delete(tmp_path):
    clock = FakeClock()
    h = await Harness(tmp_path, clock).start()
    c = h.coordinator
    (a,), generation = await stable_group(h, 1, protocols=[("range", subscription("t1"))])
    await c.commit_offsets("g", a, None, generation, {("t1", 0): om(1), ("t2", 0): om(2), ("t2", 1): om(3)})
    error, partitions = c.delete_offsets("g", [("t1", 0), ("t2", 0)])
    assert (error, partitions) == (Errors.NONE, {("t1", 0): Errors.GROUP_SUBSCRIBED_TO_TOPIC, ("t2", 0): Errors.NONE})
    assert c.delete_offsets("nope", [("t", 0)]) == (Errors.GROUP_ID_NOT_FOUND, {})
    await c.commit_offsets("simple", "", None, -1, {("t", 0): om(1)})
    assert c.delete_offsets("simple", [("t", 0)]) == (Errors.NONE, {("t", 0): Errors.NONE})
    h = await restart(h, tmp_path)
    try:
        assert set(h.coordinator.fetch_offsets("g", False, None)[1]) == {("t1", 0), ("t2", 1)}
        # The simple group lost its last offset: it is gone once expiry runs.
        assert h.coordinator.manager.get_group("simple") is None
    finally:
        h.close()


@async_test
async def test_offsets_of_empty_groups_expire_after_retention(tmp_path):
    clock = FakeClock()
    h = await Harness(tmp_path, clock, "offsets.retention.minutes=1", "offsets.retention.check.interval.ms=10000").start()
    c = h.coordinator
    (a,), generation = await stable_group(h, 1, group="left", protocols=[("range", subscription("t"))])
    await c.commit_offsets("left", a, None, generation, {("t", 0): om(1)})
    (b,), generation_b = await stable_group(h, 1, group="active", protocols=[("range", subscription("t"))])
    await c.commit_offsets("active", b, None, generation_b, {("t", 0): om(2), ("old", 0): om(3)})
    clock.advance(5000)
    assert c.heartbeat("active", b, None, generation_b) == Errors.NONE
    c.leave_group("left", [(a, None, None)])  # empty from T0 + 5 s: its offsets live until T0 + 65 s
    await settle()

    def run_until(ms: int) -> None:
        while clock.now_ms < T0 + ms:
            clock.advance(5000)
            assert c.heartbeat("active", b, None, generation_b) == Errors.NONE

    run_until(59000)
    assert c.manager.get_group("left").offset(("t", 0)) is not None
    active = c.manager.get_group("active")
    assert active.offset(("old", 0)) is None  # committed at T0, not subscribed: gone at the 60 s check
    run_until(70000)
    await settle()
    assert c.manager.get_group("left") is None  # offsets expired, then the empty group went Dead
    # A stable group keeps the offsets of topics it subscribes to.
    assert active.offset(("t", 0)) is not None and active.is_state(GroupState.STABLE)
    h = await restart(h, tmp_path)
    try:
        assert h.coordinator.manager.get_group("left") is None
        assert set(h.coordinator.fetch_offsets("active", False, None)[1]) == {("t", 0)}
    finally:
        h.close()


@async_test
async def test_offsets_of_deleted_topics_are_removed(tmp_path):
    clock = FakeClock()
    h = await Harness(tmp_path, clock).start()
    c = h.coordinator
    (a,), generation = await stable_group(h, 1, protocols=[("range", subscription("gone", "kept"))])
    await c.commit_offsets("g", a, None, generation, {("gone", 0): om(1), ("gone", 1): om(2), ("kept", 0): om(3)})
    await c.commit_offsets("simple", "", None, -1, {("gone", 0): om(4)})
    assert c.on_topics_deleted(["gone"]) == 3
    assert set(c.fetch_offsets("g", False, None)[1]) == {("kept", 0)}
    assert c.manager.get_group("simple") is None  # nothing left: Dead, as Kafka's cleanup does
    h = await restart(h, tmp_path)
    try:
        assert set(h.coordinator.fetch_offsets("g", False, None)[1]) == {("kept", 0)}
        assert h.coordinator.manager.get_group("simple") is None
    finally:
        h.close()


# ---------------------------------------------------------------------------------------------
# Describe and list


@async_test
async def test_describe_and_list_groups(tmp_path):
    async with harness(tmp_path) as h:
        c = h.coordinator
        ids, _ = await stable_group(h, 2, protocols=[("range", b"meta")])
        await c.commit_offsets("offsets-only", "", None, -1, {("t", 0): om(1)})
        error, summary = c.describe_group("g")
        assert error == Errors.NONE
        assert (summary.state, summary.protocol_type, summary.protocol) == ("Stable", "consumer", "range")
        assert sorted((m.member_id, m.client_id, m.client_host, m.metadata, m.assignment) for m in summary.members) \
            == sorted((m, f"c{i}", "/127.0.0.1", b"meta", f"assign-{m}".encode()) for i, m in enumerate(ids))
        assert c.describe_group("missing") == (Errors.NONE, None)
        assert c.describe_group("")[0] == Errors.NONE

        await join_new_member(h)
        newcomer = await join(h, join_params(client_id="new"))
        error, summary = c.describe_group("g")
        # Not stable: no protocol, and members without metadata or assignment.
        assert (summary.state, summary.protocol) == ("PreparingRebalance", "")
        assert {(m.metadata, m.assignment) for m in summary.members} == {(b"", b"")}

        error, groups = c.list_groups([], [])
        assert error == Errors.NONE
        assert sorted((g.group_id, g.protocol_type, g.state, g.group_type) for g in groups) == [
            ("g", "consumer", "PreparingRebalance", "classic"), ("offsets-only", "", "Empty", "classic")]
        assert [g.group_id for g in c.list_groups(["empty"], [])[1]] == ["offsets-only"]
        assert [g.group_id for g in c.list_groups(["Stable", "PreparingRebalance"], ["Classic"])[1]] == ["g"]
        assert c.list_groups([], ["consumer"])[1] == []
        newcomer.cancel()
        await asyncio.sleep(0)
