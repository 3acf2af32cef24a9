"""KIP-848's server-side assignors: `uniform` (Kafka's UniformAssignor) and `range` (RangeAssignor).

An assignor maps the group's members and their subscriptions to a target assignment: for each
member, topic id -> partitions. Plain functions over plain data; the ConsumerGroup calls them
when its group epoch moves past its assignment epoch.
- `uniform` spreads every subscribed partition as evenly as the subscriptions allow and keeps a
  partition with its previous owner where that keeps the balance (sticky), so a rebalance moves
  as few partitions as it can.
- `range` gives each topic's subscribers, sorted by member id, contiguous ranges of partitions,
  the first `partitions % members` one extra, as Kafka's range assignors do.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

UNIFORM = "uniform"
RANGE = "range"

# topic id -> set of partitions
Assignment = dict[uuid.UUID, set[int]]


@dataclass(frozen=True, slots=True)
class TopicInfo:
    topic_id: uuid.UUID
    name: str
    partitions: int


@dataclass(frozen=True, slots=True)
class MemberSpec:
    """What an assignor knows of a member: its subscribed topic ids and its current target."""

    member_id: str
    subscribed: frozenset[uuid.UUID]
    previous: Mapping[uuid.UUID, set[int]]


def _partitions(topics: Mapping[uuid.UUID, TopicInfo], topic_ids: set[uuid.UUID]) -> list[tuple[uuid.UUID, int]]:
    """Every partition of these topics, ordered by topic name then partition (deterministic)."""
    out: list[tuple[uuid.UUID, int]] = []
    for topic_id in sorted(topic_ids, key=lambda t: topics[t].name):
        out.extend((topic_id, p) for p in range(topics[topic_id].partitions))
    return out


def uniform_assign(members: list[MemberSpec], topics: Mapping[uuid.UUID, TopicInfo]) -> dict[str, Assignment]:
    """Balanced and sticky: a member keeps up to its share of its previous partitions (the
    floor, then one more for as many members as the division leaves extras), and every other
    partition goes to its least loaded subscriber."""
    result: dict[str, Assignment] = {m.member_id: {} for m in members}
    ordered = sorted(members, key=lambda m: m.member_id)
    subscribers: dict[uuid.UUID, list[str]] = {}
    for m in ordered:
        for topic_id in m.subscribed:
            if topic_id in topics:
                subscribers.setdefault(topic_id, []).append(m.member_id)
    active = [m for m in ordered if any(t in subscribers for t in m.subscribed)]
    if not active:
        return result
    all_partitions = _partitions(topics, set(subscribers))
    floor, extras = divmod(len(all_partitions), len(active))
    counts = dict.fromkeys(result, 0)
    taken: set[tuple[uuid.UUID, int]] = set()

    def keep(m: MemberSpec, limit: int) -> None:
        for topic_id in sorted(m.previous, key=lambda t: topics[t].name if t in topics else ""):
            if topic_id not in subscribers or topic_id not in m.subscribed:
                continue
            for p in sorted(m.previous[topic_id]):
                if counts[m.member_id] >= limit:
                    return
                if p < topics[topic_id].partitions and (topic_id, p) not in taken:
                    result[m.member_id].setdefault(topic_id, set()).add(p)
                    counts[m.member_id] += 1
                    taken.add((topic_id, p))

    for m in active:
        keep(m, floor)
    for m in active:
        if extras <= 0:
            break
        before = counts[m.member_id]
        keep(m, floor + 1)
        if counts[m.member_id] > before:
            extras -= 1
    for topic_id, p in all_partitions:
        if (topic_id, p) not in taken:
            member_id = min(subscribers[topic_id], key=lambda mid: (counts[mid], mid))
            result[member_id].setdefault(topic_id, set()).add(p)
            counts[member_id] += 1
    return result


def range_assign(members: list[MemberSpec], topics: Mapping[uuid.UUID, TopicInfo]) -> dict[str, Assignment]:
    result: dict[str, Assignment] = {m.member_id: {} for m in members}
    ordered = sorted(members, key=lambda m: m.member_id)
    for topic_id in sorted(topics, key=lambda t: topics[t].name):
        subs = [m.member_id for m in ordered if topic_id in m.subscribed]
        if not subs:
            continue
        per_member, extras = divmod(topics[topic_id].partitions, len(subs))
        start = 0
        for i, member_id in enumerate(subs):
            n = per_member + (1 if i < extras else 0)
            if n:
                result[member_id][topic_id] = set(range(start, start + n))
            start += n
    return result


ASSIGNORS: dict[str, Callable[[list[MemberSpec], Mapping[uuid.UUID, TopicInfo]], dict[str, Assignment]]] = {
    UNIFORM: uniform_assign,
    RANGE: range_assign,
}

# group.consumer.assignors takes class names or the assignors' short names, as Kafka's does.
_CLASS_NAMES = {
    "org.apache.kafka.coordinator.group.assignor.UniformAssignor": UNIFORM,
    "org.apache.kafka.coordinator.group.assignor.RangeAssignor": RANGE,
}


def assignor_names(configured: list[str]) -> list[str]:
    """The short names of group.consumer.assignors' entries, in order (the first is the default);
    unknown names raise ValueError, as Kafka refuses an assignor class it cannot load."""
    names = []
    for entry in configured:
        name = _CLASS_NAMES.get(entry, entry)
        if name not in ASSIGNORS:
            raise ValueError(f"unknown consumer group assignor {entry!r}")
        names.append(name)
    return names
