"""KIP-848 consumer groups: Kafka's ConsumerGroup, ConsumerGroupMember and the reconciliation of
CurrentAssignmentBuilder, as plain state with no timers, no I/O and no sockets.

- The group epoch moves whenever the group's membership, a member's subscription or the
  subscribed topics' partition counts change; the target assignment is recomputed by the
  server-side assignor when the group epoch is past the assignment epoch.
- Each member converges to its target one heartbeat at a time: first it gives up what it owns
  but is no longer its own (UNREVOKED_PARTITIONS, epoch unchanged), then it gets the new epoch
  and the partitions of its target that no other member still holds; those still held wait
  (UNRELEASED_PARTITIONS) until their owner has revoked them.
- GroupCoordinator owns the timers (session and rebalance timeouts) and the persistence; this
  module answers what the heartbeat changes.
"""

from __future__ import annotations

import enum
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

from kbroker.group.consumer_group_assignors import ASSIGNORS, Assignment, MemberSpec, TopicInfo

LEAVE_GROUP_MEMBER_EPOCH = -1
LEAVE_GROUP_STATIC_MEMBER_EPOCH = -2
CONSUMER_GROUP_TYPE = "consumer"


class MemberState(enum.Enum):
    STABLE = "stable"
    UNREVOKED_PARTITIONS = "unrevoked_partitions"
    UNRELEASED_PARTITIONS = "unreleased_partitions"


class ConsumerGroupState(enum.Enum):
    EMPTY = "Empty"
    ASSIGNING = "Assigning"
    RECONCILING = "Reconciling"
    STABLE = "Stable"
    DEAD = "Dead"


def copy_assignment(assignment: Mapping[uuid.UUID, set[int]]) -> Assignment:
    return {t: set(ps) for t, ps in assignment.items() if ps}


def _minus(a: Mapping[uuid.UUID, set[int]], b: Mapping[uuid.UUID, set[int]]) -> Assignment:
    return {t: ps - b.get(t, set()) for t, ps in a.items() if ps - b.get(t, set())}


def _intersect(a: Mapping[uuid.UUID, set[int]], b: Mapping[uuid.UUID, set[int]]) -> Assignment:
    return {t: ps & b.get(t, set()) for t, ps in a.items() if ps & b.get(t, set())}


def compile_regex(pattern: str) -> re.Pattern[str]:
    """A SubscribedTopicRegex as Python's `re` reads it: RE2/J's common syntax is the same;
    what `re` refuses raises re.error (INVALID_REGULAR_EXPRESSION)."""
    return re.compile(pattern)


@dataclass(slots=True)
class ConsumerGroupMember:
    member_id: str
    instance_id: str | None = None
    rack_id: str | None = None
    client_id: str = ""
    client_host: str = ""
    rebalance_timeout_ms: int = 300000
    subscribed_topic_names: list[str] = field(default_factory=list)
    subscribed_topic_regex: str | None = None
    server_assignor: str | None = None
    member_epoch: int = 0
    previous_member_epoch: int = 0
    state: MemberState = MemberState.STABLE
    assigned: Assignment = field(default_factory=dict)
    pending_revocation: Assignment = field(default_factory=dict)

    def subscribes_to(self, topic: str) -> bool:
        if topic in self.subscribed_topic_names:
            return True
        return self.subscribed_topic_regex is not None and \
            compile_regex(self.subscribed_topic_regex).fullmatch(topic) is not None

    def owned_partitions(self) -> Assignment:
        """What the member holds: assigned, and what it has not revoked yet."""
        out = copy_assignment(self.assigned)
        for t, ps in self.pending_revocation.items():
            out.setdefault(t, set()).update(ps)
        return out


class HeartbeatError(Exception):
    """A heartbeat refused with Kafka's error (its name in Errors) and message."""

    def __init__(self, error: str, message: str) -> None:
        super().__init__(message)
        self.error = error
        self.message = message


@dataclass(slots=True)
class ConsumerGroup:
    group_id: str
    group_epoch: int = 0
    assignment_epoch: int = 0
    members: dict[str, ConsumerGroupMember] = field(default_factory=dict)
    target_assignment: dict[str, Assignment] = field(default_factory=dict)
    # Partition counts of the subscribed topics when the target was computed (Kafka's
    # subscription metadata): a change bumps the group epoch.
    subscription_metadata: dict[str, int] = field(default_factory=dict)
    static_members: dict[str, str] = field(default_factory=dict)
    assignor_name: str = ""

    # -- views --------------------------------------------------------------------------------
    def state(self) -> ConsumerGroupState:
        if not self.members:
            return ConsumerGroupState.EMPTY
        if self.group_epoch > self.assignment_epoch:
            return ConsumerGroupState.ASSIGNING
        for m in self.members.values():
            if m.state != MemberState.STABLE or m.member_epoch != self.assignment_epoch:
                return ConsumerGroupState.RECONCILING
        return ConsumerGroupState.STABLE

    def static_member(self, instance_id: str) -> ConsumerGroupMember | None:
        member_id = self.static_members.get(instance_id)
        return None if member_id is None else self.members.get(member_id)

    def subscribed_topic_names(self, topic_names: list[str]) -> set[str]:
        """Every topic some member subscribes to (regexes resolved against `topic_names`)."""
        out: set[str] = set()
        for m in self.members.values():
            out.update(m.subscribed_topic_names)
            if m.subscribed_topic_regex is not None:
                pattern = compile_regex(m.subscribed_topic_regex)
                out.update(t for t in topic_names if pattern.fullmatch(t))
        return out

    def is_subscribed_to_topic(self, topic: str) -> bool:
        return any(m.subscribes_to(topic) for m in self.members.values())

    def partition_owner(self, topic_id: uuid.UUID, partition: int, other_than: str) -> str | None:
        for m in self.members.values():
            if m.member_id != other_than and partition in m.owned_partitions().get(topic_id, ()):
                return m.member_id
        return None

    # -- membership -----------------------------------------------------------------------------
    def add_or_update_member(self, member: ConsumerGroupMember) -> None:
        self.members[member.member_id] = member
        if member.instance_id is not None:
            self.static_members[member.instance_id] = member.member_id

    def remove_member(self, member_id: str) -> ConsumerGroupMember | None:
        member = self.members.pop(member_id, None)
        self.target_assignment.pop(member_id, None)
        if member is not None and member.instance_id is not None and \
                self.static_members.get(member.instance_id) == member_id:
            del self.static_members[member.instance_id]
        return member

    def bump_group_epoch(self) -> None:
        self.group_epoch += 1

    # -- the target assignment ------------------------------------------------------------------
    def preferred_assignor(self, default: str) -> str:
        """The server assignor most members ask for, else the default (Kafka's choice)."""
        votes: dict[str, int] = {}
        for m in self.members.values():
            if m.server_assignor is not None:
                votes[m.server_assignor] = votes.get(m.server_assignor, 0) + 1
        if not votes:
            return default
        return max(sorted(votes), key=lambda name: votes[name])

    def compute_target_assignment(self, topics: Mapping[str, TopicInfo], default_assignor: str) -> None:
        """Recomputes the target for the current group epoch with the preferred assignor."""
        by_id = {info.topic_id: info for name, info in topics.items()}
        specs = []
        for m in self.members.values():
            subscribed = frozenset(topics[t].topic_id for t in self._member_topics(m, topics) if t in topics)
            specs.append(MemberSpec(m.member_id, subscribed, self.target_assignment.get(m.member_id, {})))
        self.assignor_name = self.preferred_assignor(default_assignor)
        self.target_assignment = ASSIGNORS[self.assignor_name](specs, by_id)
        self.assignment_epoch = self.group_epoch

    @staticmethod
    def _member_topics(m: ConsumerGroupMember, topics: Mapping[str, TopicInfo]) -> set[str]:
        names = set(m.subscribed_topic_names)
        if m.subscribed_topic_regex is not None:
            pattern = compile_regex(m.subscribed_topic_regex)
            names.update(t for t in topics if pattern.fullmatch(t))
        return names

    # -- reconciliation (Kafka's CurrentAssignmentBuilder) ----------------------------------------
    def reconcile(self, member: ConsumerGroupMember, owned: Assignment | None) -> bool:
        """Moves the member toward its target; `owned` is what the heartbeat says it owns (None:
        unchanged since the last heartbeat). Returns whether its assignment changed."""
        before = (member.member_epoch, copy_assignment(member.assigned), copy_assignment(member.pending_revocation))
        target = self.target_assignment.get(member.member_id, {})
        if member.state == MemberState.UNREVOKED_PARTITIONS:
            if owned is None or any(owned.get(t, set()) & ps for t, ps in member.pending_revocation.items()):
                return False  # still revoking: nothing moves until it says it let them go
            member.pending_revocation = {}
            member.state = MemberState.STABLE
        if member.state == MemberState.STABLE and member.member_epoch == self.assignment_epoch:
            return self._maybe_release(member, target, before)
        kept = _intersect(member.assigned, target)
        revoked = _minus(member.assigned, target)
        if revoked:
            member.assigned = kept
            member.pending_revocation = revoked
            member.state = MemberState.UNREVOKED_PARTITIONS
            return True
        if member.member_epoch != self.assignment_epoch:
            member.previous_member_epoch = member.member_epoch
            member.member_epoch = self.assignment_epoch
        return self._maybe_release(member, target, before)

    def _maybe_release(self, member: ConsumerGroupMember, target: Assignment,
                       before: tuple[int, Assignment, Assignment]) -> bool:
        """Gives the member the partitions of its target that nobody else holds any more."""
        unreleased = False
        assigned = _intersect(member.assigned, target)
        for topic_id, parts in target.items():
            for p in parts:
                if p in assigned.get(topic_id, ()):
                    continue
                if self.partition_owner(topic_id, p, member.member_id) is None:
                    assigned.setdefault(topic_id, set()).add(p)
                else:
                    unreleased = True
        member.assigned = assigned
        member.state = MemberState.UNRELEASED_PARTITIONS if unreleased else MemberState.STABLE
        return (member.member_epoch, member.assigned, member.pending_revocation) != before
