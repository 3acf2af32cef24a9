"""KafkaController: elects itself through /controller, then drives partition state.

Like Kafka's controller (KAFKA-FACTS.md §2), every change arrives as an event (a znode watch)
that runs to completion on the event loop: new topics and partitions get their leader and ISR
written to their state znodes (fenced by the controller epoch), and brokers are told through
LeaderAndIsr, UpdateMetadata and StopReplica requests (plain dicts in the codec's field names)
handed to the ControllerChannelManager. Deleted topics are stopped and removed. A broker whose
log directory failed writes a /log_dir_event_notification znode: the controller then sends it
LeaderAndIsr for all its replicas, learns from the KAFKA_STORAGE_ERROR answers which replicas
are offline (any LeaderAndIsr answer counts) and moves leadership and ISR membership off them
until that broker registers again (Kafka's replicasOnOfflineDirs). In single-node
mode the same code runs against the embedded store and a channel that delivers locally.
It must not touch logs or sockets directly: brokers act on the requests it sends.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import NamedTuple, Protocol

from kbroker.metadata import zk_data as zk
from kbroker.metadata.kafka_zk_client import ControllerMovedError, KafkaZkClient
from kbroker.protocol.api_keys import ApiKey
from kbroker.protocol.errors import Errors
from kbroker.protocol.uuids import ZERO_UUID, uuid_from_base64

log = logging.getLogger("kbroker.controller")

LEADER_AND_ISR_VERSION = 7
UPDATE_METADATA_VERSION = 8
STOP_REPLICA_VERSION = 4
NO_LEADER = -1


class LeaderAndIsr(NamedTuple):
    """A partition's leadership as AlterPartition proposes and answers it (Kafka's LeaderAndIsr);
    the partition epoch is the state znode's version."""

    leader: int
    leader_epoch: int
    isr: list[int]
    leader_recovery_state: int
    partition_epoch: int


class IsrChange(NamedTuple):
    """One partition's change in an AlterPartition request, decoded by its handler: the topic by
    name (v0-1) or, when topic_id is set, by id (v2+)."""

    topic: str | None
    topic_id: uuid.UUID | None
    partition: int
    proposed: LeaderAndIsr


class ControllerChannel(Protocol):
    def send(self, broker_id: int, api_key: int, version: int, request: dict,
             on_response: Callable[[dict], None] | None = None) -> None: ...
    def add_broker(self, broker_id: int, host: str, port: int) -> None: ...
    def remove_broker(self, broker_id: int) -> None: ...


class KafkaController:
    def __init__(self, broker_id: int, zk_client: KafkaZkClient, channel: ControllerChannel,
                 inter_broker_listener: str, config=None, *, control_plane_listener: str | None = None) -> None:
        self.broker_id = broker_id
        self.zk = zk_client
        self.channel = channel
        # LiveLeaders name the leaders' inter-broker endpoints (followers fetch there); the
        # channel reaches brokers on the control-plane listener when there is one (Kafka's
        # ControllerChannelManager.addNewBroker).
        self.inter_broker_listener = inter_broker_listener
        self.channel_listener = control_plane_listener or inter_broker_listener
        self.config = config
        self._watching = False
        self.shutting_down: set[int] = set()  # brokers in controlled shutdown: never elected
        self.epoch = 0
        self.epoch_zk_version = -1
        self.is_active = False
        self.live_brokers: dict[int, zk.BrokerRegistration] = {}
        self.assignments: dict[str, zk.TopicAssignment] = {}
        self.states: dict[tuple[str, int], zk.LeaderIsrAndControllerEpoch] = {}
        # Replicas a broker reported in a failed log dir (KAFKA_STORAGE_ERROR), until it re-registers.
        self.replicas_on_offline_dirs: dict[int, set[tuple[str, int]]] = {}

    # -- election and failover ------------------------------------------------------------------
    def elect(self) -> bool:
        won = self.zk.try_elect_controller(self.broker_id)
        if won is None:
            return False
        self.epoch, self.epoch_zk_version = won
        self.is_active = True
        log.info("broker %d is the controller (epoch %d)", self.broker_id, self.epoch)
        try:
            self.on_controller_failover()
        except ControllerMovedError:
            # A rival won the next epoch before the failover's first fenced write: resign, as
            # Kafka's elect() does, rather than raise out of the election.
            log.warning("controller moved during failover: resigning")
            self.resign()
            return False
        return True

    def resign(self) -> None:
        """Another broker is controller now (or our session is gone): stop acting as one."""
        if self.is_active:
            log.info("broker %d resigns as controller (epoch %d)", self.broker_id, self.epoch)
        self.is_active = False
        self.assignments.clear()
        self.states.clear()
        self.replicas_on_offline_dirs.clear()

    def on_controller_failover(self) -> None:
        store = self.zk.store
        if not self._watching:  # watches persist: register once per process
            self._watching = True
            store.watch_children(zk.TOPICS, self._on_topics_changed)
            store.watch_children(zk.DELETE_TOPICS, self._on_delete_topics)
            store.watch_children(zk.BROKER_IDS, self._on_brokers_changed)
            store.watch_children(zk.LOG_DIR_EVENT_NOTIFICATION, self._on_log_dir_events)
        self.live_brokers = {b.broker_id: b for b in self.zk.get_all_brokers()}
        for broker in self.live_brokers.values():
            self._connect(broker)
        for topic in self.zk.get_all_topics():
            self._load_topic(topic)
        self._send_update_metadata(list(self.live_brokers), self._all_partitions())
        self._initialize_partitions(self._all_partitions())
        self._repair_partitions()
        self._send_leader_and_isr(self._all_partitions())
        self._on_delete_topics()
        self._on_log_dir_events()

    @staticmethod
    def _endpoint(broker: zk.BrokerRegistration, listener: str) -> tuple[str, int] | None:
        """The broker's endpoint on that listener; None (with one error line) if it registered
        none there: a misconfigured cluster, which Kafka reports with
        BrokerEndPointNotAvailableException."""
        endpoint = next((e for e in broker.endpoints if e[0] == listener), None)
        if endpoint is None:
            log.error("broker %d has no endpoint for listener %s (it registered %s)", broker.broker_id, listener,
                      ", ".join(e[0] for e in broker.endpoints) or "none")
            return None
        return endpoint[1], endpoint[2]

    def _connect(self, broker: zk.BrokerRegistration) -> None:
        endpoint = self._endpoint(broker, self.channel_listener)
        if endpoint is not None:
            self.channel.add_broker(broker.broker_id, *endpoint)

    def _load_topic(self, topic: str) -> None:
        assignment = self.zk.get_topic_assignment(topic)
        if assignment is None:
            return
        self.assignments[topic] = assignment
        self.zk.store.watch_data(zk.topic_path(topic), lambda: self._on_topic_changed(topic))
        for partition in assignment.partitions:
            state = self.zk.get_partition_state(topic, partition)
            if state is not None:
                self.states[(topic, partition)] = state

    def _all_partitions(self) -> list[tuple[str, int]]:
        return [(t, p) for t, a in self.assignments.items() for p in sorted(a.partitions)]

    # -- events -----------------------------------------------------------------------------
    def _guard(self, event: Callable[[], None]) -> None:
        if not self.is_active:
            return
        try:
            event()
        except ControllerMovedError:
            log.warning("controller moved: resigning")
            self.resign()
        except Exception:  # e.g. ZooKeeper connection loss mid-event: the next event retries
            log.exception("controller event failed")

    def _on_topics_changed(self) -> None:
        def event() -> None:
            new = [t for t in self.zk.get_all_topics() if t not in self.assignments]
            partitions = []
            for topic in new:
                self._load_topic(topic)
                partitions += [(topic, p) for p in sorted(self.assignments.get(topic, zk.TopicAssignment(
                    None, {}, {}, {})).partitions)]
            self._online_new_partitions(partitions)
        self._guard(event)

    def _on_topic_changed(self, topic: str) -> None:
        """Partitions added to an existing topic (CreatePartitions)."""
        def event() -> None:
            assignment = self.zk.get_topic_assignment(topic)
            if assignment is None or topic not in self.assignments:
                return
            known = self.assignments[topic].partitions
            added = [(topic, p) for p in sorted(assignment.partitions) if p not in known]
            self.assignments[topic] = assignment
            self._online_new_partitions(added)
        self._guard(event)

    def _on_brokers_changed(self) -> None:
        def event() -> None:
            current = {b.broker_id: b for b in self.zk.get_all_brokers()}
            # A broker that re-registered with a higher epoch bounced: it failed, then joined.
            bounced = [b for b, reg in current.items()
                       if b in self.live_brokers and reg.epoch > self.live_brokers[b].epoch]
            dead = [b for b in self.live_brokers if b not in current or b in bounced]
            self.shutting_down.difference_update(dead)
            joined = [b for b in current if b not in self.live_brokers or b in bounced]
            for broker_id in dead + joined:  # a new registration has its log dirs back (a restart)
                self.replicas_on_offline_dirs.pop(broker_id, None)
            if dead:
                self._on_broker_failure(dead, current)
            self.live_brokers = current
            for broker_id in joined:
                self._connect(current[broker_id])
            if joined:
                self._on_broker_startup(joined)
        self._guard(event)

    def _on_broker_failure(self, dead: list[int], current: dict[int, zk.BrokerRegistration]) -> None:
        """Partitions the dead led get new leaders from their ISR; dead followers leave ISRs."""
        log.info("brokers %s failed", dead)
        for broker_id in dead:
            if broker_id not in current:
                self.channel.remove_broker(broker_id)
        self.live_brokers = {b: reg for b, reg in self.live_brokers.items() if b not in dead}
        changed = []
        for (topic, partition), state in list(self.states.items()):
            if state.leader in dead or any(r in dead for r in state.isr):
                if self._change_leadership(topic, partition):
                    changed.append((topic, partition))
        self._send_leader_and_isr(changed)
        self._send_update_metadata(list(self.live_brokers), self._all_partitions())

    def _on_log_dir_events(self) -> None:
        """Kafka's LogDirEventNotification: the brokers named get LeaderAndIsr for every replica
        they hold, and answer KAFKA_STORAGE_ERROR for those in failed dirs
        (`_on_leader_and_isr_response`); the notifications are deleted."""
        def event() -> None:
            notifications = self.zk.get_all_log_dir_event_notifications()
            if not notifications:
                return
            try:
                broker_ids = [b for b in self.zk.get_broker_ids_from_log_dir_events(notifications)
                              if b in self.live_brokers]
                log.info("log directory failure on brokers %s: asking them for their offline replicas", broker_ids)
                partitions = [(t, p) for t, p in self._all_partitions()
                              if any(r in broker_ids for r in self.assignments[t].partitions[p])]
                self._send_leader_and_isr(partitions, only_brokers=set(broker_ids))
            finally:
                self.zk.delete_log_dir_event_notifications(notifications, self.epoch_zk_version)
        self._guard(event)

    def _on_leader_and_isr_response(self, broker_id: int) -> Callable[[dict], None]:
        """Kafka's LeaderAndIsrResponseReceived: replicas answered KAFKA_STORAGE_ERROR are in a
        failed log dir; new ones lose their leadership and ISR membership."""
        def on_response(response: dict) -> None:
            if not self.is_active or response.get("error_code"):
                return
            failed = [(topic, error) for topic in response.get("topics") or [] for error in topic["partition_errors"]
                      if error["error_code"] == Errors.KAFKA_STORAGE_ERROR]
            if not failed:  # the usual answer (replicas leave the set only when their broker restarts)
                return
            names_by_id = {self._topic_id(t): t for t in self.assignments}
            answered = {(error.get("topic_name") or names_by_id.get(topic.get("topic_id")), error["partition_index"])
                        for topic, error in failed}
            offline: set[tuple[str, int]] = {(t, p) for t, p in answered if t is not None and t in self.assignments}
            known = self.replicas_on_offline_dirs.setdefault(broker_id, set())
            new = sorted(offline - known)
            known.update(offline)
            if new:
                self._guard(lambda: self._on_replicas_become_offline(broker_id, new))
        return on_response

    def _on_replicas_become_offline(self, broker_id: int, partitions: list[tuple[str, int]]) -> None:
        log.info("replicas of %s on broker %d are offline (failed log directory)", partitions, broker_id)
        changed = [tp for tp in partitions if tp in self.states and self._change_leadership(*tp)]
        self._send_leader_and_isr(changed)
        self._send_update_metadata(list(self.live_brokers), partitions)

    def _replica_online(self, broker_id: int, topic: str, partition: int) -> bool:
        """Alive, and not in a log dir that broker reported failed (Kafka's isReplicaOnline)."""
        return broker_id in self.live_brokers and (topic, partition) not in self.replicas_on_offline_dirs.get(
            broker_id, ())

    def _on_broker_startup(self, joined: list[int]) -> None:
        """New brokers get the full metadata and their partitions; offline partitions come back;
        deletions that waited for these brokers resume."""
        log.info("brokers %s joined", joined)
        self._send_update_metadata(list(self.live_brokers), self._all_partitions())
        pending_deletion = set(self.zk.topics_to_delete())
        live_topics = [(t, p) for t, p in self._all_partitions() if t not in pending_deletion]
        self._send_leader_and_isr(live_topics, only_brokers=set(joined))
        self._repair_partitions()
        for topic in pending_deletion:
            self._delete_topic(topic)

    def _repair_partitions(self) -> None:
        """Offline partitions get leaders, and replicas on dead brokers leave ISRs (Kafka's
        partition and replica state machines at failover and broker startup)."""
        changed = [(t, p) for (t, p), s in list(self.states.items())
                   if not self._replica_online(s.leader, t, p) or any(not self._replica_online(r, t, p) for r in s.isr)
                   or s.leader in self.shutting_down]
        changed = [tp for tp in changed if self._change_leadership(*tp)]
        if changed:
            self._send_leader_and_isr(changed)
            self._send_update_metadata(list(self.live_brokers), changed)

    def _change_leadership(self, topic: str, partition: int) -> bool:
        """Kafka's OfflinePartitionLeaderElection plus removal of dead replicas from the ISR:
        the first live replica in assignment order that is in the ISR leads; with
        unclean.leader.election.enable any live replica may (ISR = [it], RECOVERING). The ISR
        is never emptied. Written conditionally; returns True if the state changed."""
        for _ in range(5):
            state = self.zk.get_partition_state(topic, partition)
            if state is None:
                return False
            replicas = self.assignments[topic].partitions[partition]
            live_isr = [r for r in state.isr
                        if self._replica_online(r, topic, partition) and r not in self.shutting_down]
            leader = state.leader if state.leader in live_isr else next(
                (r for r in replicas if r in live_isr), NO_LEADER)
            isr, recovery = live_isr, state.leader_recovery_state
            if leader == NO_LEADER and self._unclean_allowed(topic):
                leader = next((r for r in replicas
                               if self._replica_online(r, topic, partition) and r not in self.shutting_down),
                              NO_LEADER)
                if leader != NO_LEADER:
                    isr, recovery = [leader], 1
                    log.warning("unclean leader election for %s-%d: %d", topic, partition, leader)
            if not isr:
                isr = state.isr[-1:]  # a dead sole leader stays in the ISR, leader -1
            if leader == state.leader and isr == state.isr:
                self.states[(topic, partition)] = state
                return False
            new = self._write_state(topic, partition, state, leader, isr, recovery)
            if new is not None:
                log.info("%s-%d: leader %d, ISR %s, leader epoch %d", topic, partition, leader, isr,
                         new.leader_epoch)
                return True
        return False

    def _write_state(self, topic: str, partition: int, state: zk.LeaderIsrAndControllerEpoch, leader: int,
                     isr: list[int], recovery: int, bump_epoch: bool = True) -> zk.LeaderIsrAndControllerEpoch | None:
        """The partition's next state, written to its znode fenced by the controller epoch and
        remembered; None if the znode moved meanwhile (the caller retries or reports it)."""
        new = zk.LeaderIsrAndControllerEpoch(leader, state.leader_epoch + (1 if bump_epoch else 0), list(isr),
                                             self.epoch, recovery, state.zk_version)
        if not self.zk.update_partition_state(topic, partition, new, self.epoch_zk_version):
            return None
        self.states[(topic, partition)] = new
        return new

    def _unclean_allowed(self, topic: str) -> bool:
        value = self.zk.get_topic_config(topic).get("unclean.leader.election.enable")
        if value is None:
            return bool(self.config.get("unclean.leader.election.enable")) if self.config else False
        return value.strip().lower() == "true"

    def _on_delete_topics(self) -> None:
        def event() -> None:
            for topic in self.zk.topics_to_delete():
                self._delete_topic(topic)
        self._guard(event)

    # -- partition state machine ----------------------------------------------------------------
    def _online_new_partitions(self, partitions: list[tuple[str, int]]) -> None:
        if not partitions:
            return
        self._initialize_partitions(partitions)
        self._send_leader_and_isr(partitions, is_new=True)
        self._send_update_metadata(list(self.live_brokers), partitions)

    def _initialize_partitions(self, partitions: list[tuple[str, int]]) -> None:
        """NewPartition -> OnlinePartition: leader = first live replica, ISR = live replicas. The new
        state znodes are written in batches (KafkaZkClient.create_partition_states), not one
        multi each: a topic may bring thousands at once."""
        created: list[tuple[str, int, zk.LeaderIsrAndControllerEpoch]] = []
        for topic, partition in partitions:
            if (topic, partition) in self.states:
                continue
            replicas = self.assignments[topic].partitions[partition]
            live = [r for r in replicas if r in self.live_brokers]
            if not live:
                log.warning("partition %s-%d has no live replica: it stays offline", topic, partition)
                continue
            state = self.zk.get_partition_state(topic, partition)
            if state is None:
                state = zk.LeaderIsrAndControllerEpoch(live[0], 0, live, self.epoch)
                created.append((topic, partition, state))
            else:
                self.states[(topic, partition)] = state
        self.zk.create_partition_states(created, self.epoch_zk_version)
        self.states.update({(topic, partition): state for topic, partition, state in created})

    def _delete_topic(self, topic: str) -> None:
        """Kafka's TopicDeletionManager: every replica is told to stop and delete its log, and the
        znodes go once every replica has answered. While a replica's broker is down, or answers
        KAFKA_STORAGE_ERROR (its log is in a failed log dir: Kafka's ReplicaDeletionIneligible),
        the deletion waits (marker and znodes stay) and resumes when it comes back
        (_on_broker_startup)."""
        assignment = self.assignments.get(topic) or self.zk.get_topic_assignment(topic)
        if assignment is None:
            self.zk.delete_topic_znodes(topic, self.epoch_zk_version)  # only a marker was left
            return
        replicas = sorted({r for rs in assignment.partitions.values() for r in rs})
        waiting = set(replicas)
        if any(r not in self.live_brokers for r in replicas):
            log.info("deletion of topic %s waits for replicas %s", topic,
                     [r for r in replicas if r not in self.live_brokers])
            waiting = set()  # answers from the live ones must not complete it

        def answered(broker_id: int) -> Callable[[dict], None]:
            # Apart from KAFKA_STORAGE_ERROR, whatever a broker says, it has stopped the replicas
            # it could. Its one refusal, STALE_CONTROLLER_EPOCH, means this controller is stale,
            # and the fenced znode deletion finds that out and resigns.
            def on_response(response: dict) -> None:
                if any(e["error_code"] == Errors.KAFKA_STORAGE_ERROR for e in response.get("partition_errors") or ()):
                    log.warning("deletion of topic %s waits for broker %d to restart: its log is in a failed "
                                "log directory", topic, broker_id)
                    return
                waiting.discard(broker_id)
                if not waiting and replicas and all(r in self.live_brokers for r in replicas):
                    replicas.clear()  # complete once
                    self._guard(lambda: self._complete_deletion(topic, assignment))
            return on_response

        for broker_id in list(replicas):
            if broker_id in self.live_brokers:
                self._send_stop_replica(broker_id, topic, sorted(assignment.partitions),
                                        on_response=answered(broker_id) if waiting else None)

    def _complete_deletion(self, topic: str, assignment: zk.TopicAssignment) -> None:
        if self.zk.get_topic_assignment(topic) is None and topic not in self.assignments:
            return
        # Fenced: a controller that lost its epoch gets ControllerMovedError here and resigns
        # (_guard), leaving the topic for the current controller to delete.
        self.zk.delete_topic_znodes(topic, self.epoch_zk_version)
        self.assignments.pop(topic, None)
        for partition in assignment.partitions:
            self.states.pop((topic, partition), None)
        log.info("deleted topic %s", topic)
        self._send_update_metadata(list(self.live_brokers), [], deleted_topics=[(topic, self._topic_id_of(assignment))])

    @staticmethod
    def _topic_id_of(assignment: zk.TopicAssignment | None) -> uuid.UUID:
        text = assignment.topic_id if assignment is not None else None
        return uuid_from_base64(text) if text else ZERO_UUID

    # -- ControlledShutdown -------------------------------------------------------------------
    def _stale_broker_epoch(self, broker: zk.BrokerRegistration, broker_epoch: int) -> bool:
        """Kafka's check of a ControlledShutdown's broker epoch: -1 is "unknown" (v0-1) and
        passes, an older epoch is stale. A newer one passes in Kafka (the broker may have
        registered again before our watch ran); here ZooKeeper decides: it must be the epoch
        of the broker's current registration, so a made-up one does not pass."""
        if broker_epoch in (-1, broker.epoch):
            return False
        if broker_epoch < broker.epoch:
            return True
        return broker_epoch != self.zk.get_broker_epoch(broker.broker_id)

    def on_controlled_shutdown(self, broker_id: int, broker_epoch: int) -> tuple[Errors, list[tuple[str, int]]]:
        """Moves leadership off a broker that is stopping and takes it out of ISRs (Kafka's
        doControlledShutdown); returns the partitions it still leads."""
        if not self.is_active:
            return Errors.NOT_CONTROLLER, []
        broker = self.live_brokers.get(broker_id)
        if broker is None:
            return Errors.BROKER_NOT_AVAILABLE, []
        if self._stale_broker_epoch(broker, broker_epoch):
            return Errors.STALE_BROKER_EPOCH, []
        self.shutting_down.add(broker_id)
        led: list[tuple[str, int]] = []
        followed: list[tuple[str, int]] = []
        for (topic, partition), state in list(self.states.items()):
            replicas = self.assignments[topic].partitions[partition]
            if broker_id not in replicas or len(replicas) < 2:
                continue
            if state.leader == broker_id and not any(
                    r != broker_id and r in self.live_brokers and r not in self.shutting_down for r in state.isr):
                continue  # nobody else in sync: it stays led here (reported as remaining)
            if state.leader == broker_id or broker_id in state.isr:
                if self._change_leadership(topic, partition):
                    (led if state.leader == broker_id else followed).append((topic, partition))
        self._send_leader_and_isr(led + followed)
        by_topic: dict[str, list[int]] = {}
        for topic, partition in followed:
            by_topic.setdefault(topic, []).append(partition)
        for topic, partitions in by_topic.items():
            self._send_stop_replica(broker_id, topic, partitions, delete=False)
        self._send_update_metadata(list(self.live_brokers), led + followed)
        remaining = [(t, p) for (t, p), st in self.states.items()
                     if st.leader == broker_id and len(self.assignments[t].partitions[p]) > 1]
        log.info("controlled shutdown of broker %d: moved %d leaders, %d remain", broker_id, len(led),
                 len(remaining))
        return Errors.NONE, remaining

    # -- preferred and unclean elections (ElectLeaders, auto.leader.rebalance.enable) ----------
    def elect_leaders(self, election_type: int, partitions: list[tuple[str, int]] | None) -> dict:
        """(topic, partition) -> (error, message) for ElectLeaders; None means every partition."""
        wanted = partitions if partitions is not None else sorted(self.states)
        results: dict[tuple[str, int], tuple[Errors, str | None]] = {}
        changed = []
        for topic, partition in wanted:
            state = self.states.get((topic, partition))
            if state is None:
                results[(topic, partition)] = (Errors.UNKNOWN_TOPIC_OR_PARTITION, None)
                continue
            outcome = (self._elect_preferred(topic, partition, state) if election_type == 0
                       else self._elect_unclean(topic, partition, state))
            results[(topic, partition)] = outcome
            if outcome[0] == Errors.NONE:
                changed.append((topic, partition))
        if changed:
            self._send_leader_and_isr(changed)
            self._send_update_metadata(list(self.live_brokers), changed)
        return results

    def _elect_preferred(self, topic: str, partition: int, state) -> tuple[Errors, str | None]:
        preferred = self.assignments[topic].partitions[partition][0]
        if state.leader == preferred:
            return Errors.ELECTION_NOT_NEEDED, "Leader election not needed for topic partition."
        if preferred not in self.live_brokers or preferred not in state.isr or preferred in self.shutting_down:
            return (Errors.PREFERRED_LEADER_NOT_AVAILABLE,
                    f"Failed to elect leader for partition {topic}-{partition} under strategy "
                    "PreferredReplicaPartitionLeaderElectionStrategy")
        return self._write_leader(topic, partition, state, preferred, list(state.isr))

    def _elect_unclean(self, topic: str, partition: int, state) -> tuple[Errors, str | None]:
        if state.leader in self.live_brokers:
            return Errors.ELECTION_NOT_NEEDED, "Leader election not needed for topic partition."
        replicas = self.assignments[topic].partitions[partition]
        live_isr = [r for r in replicas if r in state.isr and r in self.live_brokers]
        leader = live_isr[0] if live_isr else next((r for r in replicas if r in self.live_brokers), NO_LEADER)
        if leader == NO_LEADER:
            return Errors.ELIGIBLE_LEADERS_NOT_AVAILABLE, f"No live replica for {topic}-{partition}"
        return self._write_leader(topic, partition, state, leader, live_isr or [leader])

    def _write_leader(self, topic: str, partition: int, state, leader: int, isr: list[int]):
        new = self._write_state(topic, partition, state, leader, isr, 0 if leader in state.isr else 1)
        if new is None:
            return Errors.INVALID_UPDATE_VERSION, "The partition state changed meanwhile; retry"
        log.info("%s-%d: leader %d elected (epoch %d)", topic, partition, leader, new.leader_epoch)
        return Errors.NONE, None

    def rebalance_preferred_leaders(self) -> None:
        """auto.leader.rebalance.enable: brokers whose imbalance (partitions they should lead
        but don't) exceeds leader.imbalance.per.broker.percentage get their leadership back."""
        if not self.is_active or self.config is None or not self.config.get("auto.leader.rebalance.enable"):
            return
        threshold = self.config.get("leader.imbalance.per.broker.percentage") / 100
        by_preferred: dict[int, list[tuple[str, int]]] = {}
        for (topic, partition) in self.states:
            by_preferred.setdefault(self.assignments[topic].partitions[partition][0], []).append((topic, partition))
        for broker_id, partitions in by_preferred.items():
            if broker_id not in self.live_brokers or broker_id in self.shutting_down:
                continue
            not_led = [tp for tp in partitions if self.states[tp].leader != broker_id]
            if partitions and len(not_led) / len(partitions) > threshold:
                self.elect_leaders(0, not_led)

    # -- partition reassignment (KIP-455) -------------------------------------------------
    def alter_reassignments(self, changes: list[tuple[str, int, list[int] | None]],
                            allow_rf_change: bool = True) -> dict[tuple[str, int], tuple[Errors, str | None]]:
        """Starts (or cancels, for None) reassignments: the replica set becomes target + original,
        the new replicas catch up, and once all targets are in the ISR the originals not in the
        target are removed (see _maybe_complete_reassignment)."""
        return {(topic, partition): self._reassign(topic, partition, target, allow_rf_change)
                for topic, partition, target in changes}

    def _reassign(self, topic: str, partition: int, target: list[int] | None, allow_rf_change: bool):
        assignment = self.assignments.get(topic)
        if assignment is None or partition not in assignment.partitions or (topic, partition) not in self.states:
            return Errors.UNKNOWN_TOPIC_OR_PARTITION, None
        replicas = assignment.partitions[partition]
        adding = assignment.adding.get(partition, [])
        original = [r for r in replicas if r not in adding]
        if target is None:
            if not adding and not assignment.removing.get(partition):
                return Errors.NO_REASSIGNMENT_IN_PROGRESS, "No reassignment in progress"
            target = original
        elif not target or len(set(target)) != len(target):
            return Errors.INVALID_REPLICA_ASSIGNMENT, f"Invalid target replicas {target}"
        elif any(b not in self.live_brokers for b in target):
            return Errors.INVALID_REPLICA_ASSIGNMENT, f"Replica assignment has brokers that are not alive: {target}"
        elif not allow_rf_change and len(target) != len(original):
            return Errors.INVALID_REPLICATION_FACTOR, "The replication factor of the partition would change"
        full = target + [r for r in original if r not in target]
        assignment.partitions[partition] = full
        assignment.adding[partition] = [r for r in target if r not in original]
        assignment.removing[partition] = [r for r in original if r not in target]
        for side in (assignment.adding, assignment.removing):
            if not side[partition]:
                del side[partition]
        self.zk.set_topic_assignment(topic, assignment)
        log.info("%s-%d: reassigning %s -> %s", topic, partition, original, target)
        self._bump_leader_epoch(topic, partition)  # brokers ignore a LeaderAndIsr at an epoch they have
        self._send_leader_and_isr([(topic, partition)])
        # Kafka's addLeaderAndIsrRequestForBrokers also updates every broker's metadata: clients
        # must learn the new leader epoch, else the leader fences them (FENCED_LEADER_EPOCH) until
        # the reassignment completes, or for good when it changes nothing (the same replicas).
        self._send_update_metadata(list(self.live_brokers), [(topic, partition)])
        for broker_id in (r for r in replicas if r not in full and r in self.live_brokers):
            # Replicas a cancelled (or replaced) reassignment was adding: stop and delete them.
            self._send_stop_replica(broker_id, topic, [partition], delete=True)
        self._maybe_complete_reassignment(topic, partition)
        return Errors.NONE, None

    def _bump_leader_epoch(self, topic: str, partition: int) -> None:
        """Kafka's updateLeaderEpochAndSendRequest: same leader and ISR, a new leader epoch."""
        state = self.states[(topic, partition)]
        self._write_state(topic, partition, state, state.leader, state.isr, state.leader_recovery_state)

    def _maybe_complete_reassignment(self, topic: str, partition: int) -> None:
        assignment = self.assignments[topic]
        removing = assignment.removing.get(partition, [])
        if not removing and not assignment.adding.get(partition):
            return
        full = assignment.partitions[partition]
        target = full[:len(full) - len(removing)]
        state = self.states[(topic, partition)]
        if not all(r in state.isr for r in target):
            return  # the new replicas are still catching up
        isr = [r for r in state.isr if r in target]
        leader = state.leader if state.leader in target else next(
            (r for r in target if r in isr and r in self.live_brokers), NO_LEADER)
        if self._write_state(topic, partition, state, leader, isr, state.leader_recovery_state) is None:
            return  # retried on the next ISR change
        assignment.partitions[partition] = target
        assignment.adding.pop(partition, None)
        assignment.removing.pop(partition, None)
        self.zk.set_topic_assignment(topic, assignment)
        log.info("%s-%d: reassignment to %s complete", topic, partition, target)
        self._send_leader_and_isr([(topic, partition)])
        for broker_id in removing:
            if broker_id in self.live_brokers:
                self._send_stop_replica(broker_id, topic, [partition], delete=True)
        self._send_update_metadata(list(self.live_brokers), [(topic, partition)])

    def ongoing_reassignments(self) -> dict[tuple[str, int], tuple[list[int], list[int], list[int]]]:
        """(topic, partition) -> (replicas, adding, removing) of reassignments in progress."""
        out = {}
        for topic, assignment in self.assignments.items():
            for partition in set(assignment.adding) | set(assignment.removing):
                out[(topic, partition)] = (assignment.partitions[partition], assignment.adding.get(partition, []),
                                           assignment.removing.get(partition, []))
        return out

    # -- AlterPartition (ISR changes asked for by partition leaders) ------------------------
    def on_alter_partition(self, broker_id: int, broker_epoch: int,
                           changes: list[IsrChange]) -> tuple[Errors, list[tuple[Errors, LeaderAndIsr | None]]]:
        """Kafka's checks, in order (KAFKA-FACTS.md §2): a top-level error, else each change's
        error or the partition's state after it, in the order given. Accepted changes are
        written to the state znode and broadcast with UpdateMetadata (not LeaderAndIsr)."""
        if not self.is_active:
            return Errors.NOT_CONTROLLER, []
        broker = self.live_brokers.get(broker_id)
        if broker is None or broker_epoch not in (-1, broker.epoch):
            return Errors.STALE_BROKER_EPOCH, []
        results: list[tuple[Errors, LeaderAndIsr | None]] = []
        changed: list[tuple[str, int]] = []
        names_by_id = {self._topic_id(t): t for t in self.assignments}
        for change in changes:
            topic = change.topic if change.topic_id is None else names_by_id.get(change.topic_id)
            if topic is None:  # an id this controller does not know
                results.append((Errors.UNKNOWN_TOPIC_OR_PARTITION, None))
                continue
            error, state, is_changed = self._alter_one(topic, change.partition, change.proposed)
            if is_changed:
                changed.append((topic, change.partition))
            results.append((error, state))
        if changed:
            self._send_update_metadata(list(self.live_brokers), changed)
            for topic, partition in changed:
                self._maybe_complete_reassignment(topic, partition)
        return Errors.NONE, results

    def _alter_one(self, topic: str, index: int,
                   proposed: LeaderAndIsr) -> tuple[Errors, LeaderAndIsr | None, bool]:
        """(error, the state answered, whether it changed)."""
        state = self.states.get((topic, index))
        if state is None:
            return Errors.UNKNOWN_TOPIC_OR_PARTITION, None, False
        if proposed.leader_epoch > state.leader_epoch or proposed.partition_epoch > state.zk_version:
            return Errors.NOT_CONTROLLER, None, False
        if proposed.leader_epoch < state.leader_epoch:
            return Errors.FENCED_LEADER_EPOCH, None, False
        current = LeaderAndIsr(state.leader, state.leader_epoch, list(state.isr), state.leader_recovery_state,
                               state.zk_version)
        if proposed.isr == state.isr and proposed.leader_recovery_state == state.leader_recovery_state:
            return Errors.NONE, current, False
        if proposed.partition_epoch < state.zk_version:
            return Errors.INVALID_UPDATE_VERSION, None, False
        if any(not self._replica_online(r, topic, index) for r in proposed.isr) or state.leader not in proposed.isr:
            return Errors.INELIGIBLE_REPLICA, None, False
        # An ISR change keeps the leader epoch: only the partition epoch (zk version) moves.
        new = self._write_state(topic, index, state, state.leader, proposed.isr, proposed.leader_recovery_state,
                                bump_epoch=False)
        if new is None:
            return Errors.INVALID_UPDATE_VERSION, None, False
        log.info("%s-%d: ISR %s -> %s (partition epoch %d)", topic, index, state.isr, proposed.isr, new.zk_version)
        return Errors.NONE, LeaderAndIsr(state.leader, state.leader_epoch, list(proposed.isr),
                                         new.leader_recovery_state, new.zk_version), True

    # -- requests to brokers ------------------------------------------------------------------
    def _partition_state(self, topic: str, partition: int, is_new: bool = False) -> dict | None:
        state = self.states.get((topic, partition))
        if state is None:
            return None
        return {
            "topic_name": topic, "partition_index": partition, "controller_epoch": state.controller_epoch,
            "leader": state.leader, "leader_epoch": state.leader_epoch, "isr": list(state.isr),
            "partition_epoch": state.zk_version, "zk_version": state.zk_version,
            "replicas": list(self.assignments[topic].partitions[partition]),
            "adding_replicas": list(self.assignments[topic].adding.get(partition, [])),
            "removing_replicas": list(self.assignments[topic].removing.get(partition, [])), "is_new": is_new,
            "offline_replicas": [r for r in self.assignments[topic].partitions[partition]
                                 if not self._replica_online(r, topic, partition)],
            "leader_recovery_state": state.leader_recovery_state,
        }

    def _topic_id(self, topic: str) -> uuid.UUID | None:
        text = self.assignments[topic].topic_id
        return uuid_from_base64(text) if text else None

    def _group_by_topic(self, partitions: list[tuple[str, int]], is_new: bool = False) -> list[dict]:
        topics: dict[str, dict] = {}
        for topic, partition in partitions:
            state = self._partition_state(topic, partition, is_new)
            if state is None:
                continue
            entry = topics.setdefault(topic, {"topic_name": topic, "topic_id": self._topic_id(topic),
                                              "partition_states": []})
            entry["partition_states"].append(state)
        return list(topics.values())

    def _send_leader_and_isr(self, partitions: list[tuple[str, int]], is_new: bool = False,
                             only_brokers: set[int] | None = None) -> None:
        by_broker: dict[int, list[tuple[str, int]]] = {}
        for topic, partition in partitions:
            for replica in self.assignments[topic].partitions[partition]:
                if replica in self.live_brokers and (only_brokers is None or replica in only_brokers):
                    by_broker.setdefault(replica, []).append((topic, partition))
        for broker_id, parts in by_broker.items():
            topic_states = self._group_by_topic(parts, is_new)
            leaders = {ps["leader"] for t in topic_states for ps in t["partition_states"]}
            request = {
                "controller_id": self.broker_id, "controller_epoch": self.epoch,
                "broker_epoch": self.live_brokers[broker_id].epoch, "type": 0,
                "topic_states": topic_states,
                "live_leaders": self._live_leaders(leaders),
            }
            self.channel.send(broker_id, ApiKey.LEADER_AND_ISR, LEADER_AND_ISR_VERSION, request,
                              self._on_leader_and_isr_response(broker_id))

    def _live_leaders(self, leaders: set[int]) -> list[dict]:
        """LeaderAndIsr's LiveLeaders: each live leader's inter-broker endpoint, where its
        followers fetch (a leader without one is left out: its followers wait)."""
        found = []
        for broker_id in sorted(b for b in leaders if b in self.live_brokers):
            endpoint = self._endpoint(self.live_brokers[broker_id], self.inter_broker_listener)
            if endpoint is not None:
                found.append({"broker_id": broker_id, "host_name": endpoint[0], "port": endpoint[1]})
        return found

    def _send_update_metadata(self, broker_ids: list[int], partitions: list[tuple[str, int]],
                              deleted_topics: list[tuple[str, uuid.UUID]] | None = None) -> None:
        """deleted_topics: (name, topic id) pairs."""
        topic_states = self._group_by_topic(partitions)
        for topic, topic_id in deleted_topics or ():
            # A deleted topic travels as partitions whose leader is LeaderDuringDelete (-2).
            topic_states.append({"topic_name": topic, "topic_id": topic_id, "partition_states": [
                {"topic_name": topic, "partition_index": -1, "leader": -2, "leader_epoch": 0, "isr": [],
                 "replicas": [], "offline_replicas": [], "controller_epoch": self.epoch, "zk_version": 0}]})
        live = [{"id": b.broker_id, "rack": b.rack,
                 "endpoints": [{"port": port, "host": host, "listener": name, "security_protocol": _protocol_id(proto)}
                               for name, host, port, proto in b.endpoints]}
                for b in self.live_brokers.values()]
        for broker_id in broker_ids:
            request = {"controller_id": self.broker_id, "controller_epoch": self.epoch,
                       "broker_epoch": self.live_brokers[broker_id].epoch, "topic_states": topic_states,
                       "live_brokers": live}
            self.channel.send(broker_id, ApiKey.UPDATE_METADATA, UPDATE_METADATA_VERSION, request)

    def _send_stop_replica(self, broker_id: int, topic: str, partitions: list[int], delete: bool = True,
                           on_response: Callable[[dict], None] | None = None) -> None:
        request = {"controller_id": self.broker_id, "controller_epoch": self.epoch,
                   "broker_epoch": self.live_brokers[broker_id].epoch,
                   "topic_states": [{"topic_name": topic, "partition_states": [
                       {"partition_index": p, "leader_epoch": -2, "delete_partition": delete}
                       for p in partitions]}]}
        self.channel.send(broker_id, ApiKey.STOP_REPLICA, STOP_REPLICA_VERSION, request, on_response)


_SECURITY_PROTOCOLS = {"PLAINTEXT": 0, "SSL": 1, "SASL_PLAINTEXT": 2, "SASL_SSL": 3}


def _protocol_id(name: str) -> int:
    return _SECURITY_PROTOCOLS.get(name, 0)
