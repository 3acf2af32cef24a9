"""KafkaZkClient: Kafka's metadata operations on the znode tree, the same for both stores.

Registration, cluster id, controller election with /controller_epoch fencing, topics, partition
states, topic configs and deletion markers, all in Kafka's own shapes (zk_data.py), on either
the embedded store or a real ZooKeeper (znode_store.py). It knows nothing of Kafka requests.
Calls are synchronous; against a real ZooKeeper each is a round trip on loopback.
"""

from __future__ import annotations

import logging

from kbroker.metadata import zk_data as zk
from kbroker.metadata.znode_store import BadVersionError, NodeExistsError, NoNodeError, Op

# Three znodes (a few hundred bytes) per partition: 500 keep a multi well under ZooKeeper's 1 MiB.
PARTITION_STATES_PER_MULTI = 500

log = logging.getLogger("kbroker.zk")


def _path_and_parents(path: str) -> list[str]:
    """"/admin/delete_topics" -> ["/admin", "/admin/delete_topics"]."""
    parts = path.strip("/").split("/")
    return ["/" + "/".join(parts[:n]) for n in range(1, len(parts) + 1)]


# Deletes per multi: even with 249-character topic names (~300 bytes an op) a multi stays well
# under ZooKeeper's default jute.maxbuffer of 1 MiB.
_MAX_DELETES_PER_MULTI = 1000


class ControllerMovedError(Exception):
    """A controller write was fenced: another controller has taken over."""


class KafkaZkClient:
    def __init__(self, store) -> None:
        self.store = store

    def create_top_level_paths(self) -> None:
        """Kafka's persistent paths, parents first. One multi creates all that are missing: one
        write of the embedded store's file on a fresh data directory (not twenty, which showed
        in the start-up time), one round trip to ZooKeeper. Should another broker create one of
        them meanwhile, the multi fails whole and they are created one by one."""
        missing: list[str] = []
        for path in zk.PERSISTENT_PATHS:
            if self.store.exists(path) is None:
                missing += [p for p in _path_and_parents(path) if p not in missing and self.store.exists(p) is None]
        if not missing:
            return
        try:
            self.store.multi([Op("create", path) for path in missing])
        except NodeExistsError:
            for path in missing:
                try:
                    self.store.create(path, b"", makepath=True)
                except NodeExistsError:
                    pass

    # -- cluster id and brokers --------------------------------------------------------------
    def get_or_create_cluster_id(self, new_id: str) -> str:
        try:
            return zk.decode_cluster_id(self.store.get(zk.CLUSTER_ID)[0])
        except NoNodeError:
            pass
        try:
            self.store.create(zk.CLUSTER_ID, zk.encode_cluster_id(new_id), makepath=True)
            return new_id
        except NodeExistsError:
            return zk.decode_cluster_id(self.store.get(zk.CLUSTER_ID)[0])

    def register_broker(self, registration: zk.BrokerRegistration) -> int:
        """Creates the ephemeral /brokers/ids/<id>; returns the broker epoch (its czxid). As Kafka's
        checkedEphemeralCreate, a znode our own session already created counts as created (a
        retried create after a connection loss); one of another session raises NodeExistsError."""
        path = zk.broker_path(registration.broker_id)
        try:
            self.store.create(path, registration.encode(), ephemeral=True)
        except NodeExistsError:
            if self.broker_registration_owner(registration.broker_id) != self.store.session_id:
                raise
        stat = self.store.exists(path)
        if stat is None:
            raise NoNodeError(path)  # our session ended between the create and this read
        return stat.czxid

    def broker_registration_owner(self, broker_id: int) -> int | None:
        """The ZooKeeper session holding /brokers/ids/<id>, or None when nobody is registered."""
        stat = self.store.exists(zk.broker_path(broker_id))
        return None if stat is None else stat.owner

    def get_broker_epoch(self, broker_id: int) -> int | None:
        """The czxid of the broker's registration (its broker epoch); None if it is not registered."""
        stat = self.store.exists(zk.broker_path(broker_id))
        return None if stat is None else stat.czxid

    def get_all_brokers(self) -> list[zk.BrokerRegistration]:
        brokers = []
        for child in self.store.get_children(zk.BROKER_IDS):
            try:
                data, stat = self.store.get(f"{zk.BROKER_IDS}/{child}")
            except NoNodeError:
                continue
            brokers.append(zk.BrokerRegistration.decode(int(child), data, stat.czxid))
        return sorted(brokers, key=lambda b: b.broker_id)

    # -- controller -------------------------------------------------------------------------------
    def get_controller_id(self) -> int | None:
        try:
            return zk.decode_controller(self.store.get(zk.CONTROLLER)[0])
        except NoNodeError:
            return None

    def get_controller_and_epoch(self, sync: bool = False) -> tuple[int, int]:
        """(/controller_epoch, the broker id in /controller): (0, -1) and (epoch, -1) when absent.
        The election writes both in one multi, so a live controller's pair is always consistent.
        `sync` first lets the ZooKeeper server we read from catch up, so that a lagging server
        cannot hide an election."""
        if sync:
            self.store.sync(zk.CONTROLLER_EPOCH)
        try:
            epoch = int(self.store.get(zk.CONTROLLER_EPOCH)[0])
        except NoNodeError:
            epoch = 0
        controller_id = self.get_controller_id()
        return epoch, -1 if controller_id is None else controller_id

    def try_elect_controller(self, broker_id: int) -> tuple[int, int] | None:
        """One multi: create the ephemeral /controller and bump /controller_epoch, conditioned on
        the epoch's version. Returns (epoch, epoch zk version) if we won, None if we lost."""
        try:
            data, stat = self.store.get(zk.CONTROLLER_EPOCH)
            epoch, version = int(data), stat.version
        except NoNodeError:
            try:
                self.store.create(zk.CONTROLLER_EPOCH, b"0")
            except NodeExistsError:
                pass
            data, stat = self.store.get(zk.CONTROLLER_EPOCH)
            epoch, version = int(data), stat.version
        try:
            results = self.store.multi([
                Op("create", zk.CONTROLLER, zk.encode_controller(broker_id), ephemeral=True),
                Op("set", zk.CONTROLLER_EPOCH, str(epoch + 1).encode(), version),
            ])
        except (NodeExistsError, BadVersionError):
            return None
        return epoch + 1, results[1].version

    # -- topics ---------------------------------------------------------------------------------
    def get_all_topics(self) -> list[str]:
        return self.store.get_children(zk.TOPICS)

    def get_topic_assignment(self, topic: str) -> zk.TopicAssignment | None:
        try:
            return zk.TopicAssignment.decode(self.store.get(zk.topic_path(topic))[0])
        except NoNodeError:
            return None

    def create_topic(self, topic: str, assignment: zk.TopicAssignment, config: dict[str, str]) -> None:
        """Config first, then the topic znode (the controller's watch), as AdminZkClient does."""
        config_path = zk.topic_config_path(topic)
        if self.store.exists(config_path) is None:
            self.store.create(config_path, zk.encode_entity_config(config), makepath=True)
        else:
            self.store.set(config_path, zk.encode_entity_config(config))
        self.store.create(zk.topic_path(topic), assignment.encode(), makepath=True)

    def set_topic_assignment(self, topic: str, assignment: zk.TopicAssignment) -> None:
        self.store.set(zk.topic_path(topic), assignment.encode())

    def get_topic_config(self, topic: str) -> dict[str, str]:
        return self.get_entity_config("topics", topic)

    def set_topic_config(self, topic: str, config: dict[str, str]) -> None:
        self.set_entity_config("topics", topic, config)

    def get_entity_config(self, entity_type: str, name: str) -> dict[str, str]:
        """/config/<entity_type>/<name>'s config ({} when there is none); `name` as stored (sanitized)."""
        try:
            return zk.decode_entity_config(self.store.get(zk.entity_config_path(entity_type, name))[0])
        except NoNodeError:
            return {}

    def get_entity_names(self, entity_type: str) -> list[str]:
        try:
            return self.store.get_children(f"/config/{entity_type}")
        except NoNodeError:
            return []

    def set_entity_config(self, entity_type: str, name: str, config: dict[str, str]) -> None:
        """Writes the config and a /config/changes notification (entity_path `<entity_type>/<name>`),
        as Kafka's AdminZkClient.changeEntityConfig does, so every broker re-reads it."""
        path = zk.entity_config_path(entity_type, name)
        if self.store.exists(path) is None:
            self.store.create(path, zk.encode_entity_config(config), makepath=True)
        else:
            self.store.set(path, zk.encode_entity_config(config))
        self.store.create(f"{zk.CONFIG_CHANGES}/config_change_", zk.encode_config_change(f"{entity_type}/{name}"),
                          sequence=True, makepath=True)

    def mark_topic_for_deletion(self, topic: str) -> None:
        try:
            self.store.create(zk.delete_topic_path(topic), b"", makepath=True)
        except NodeExistsError:
            pass

    def topics_to_delete(self) -> list[str]:
        return self.store.get_children(zk.DELETE_TOPICS)

    def delete_topic_znodes(self, topic: str, epoch_zk_version: int) -> None:
        """Removes the topic's znode tree, its config and its deletion marker, a controller write
        fenced as Kafka fences them: each multi starts with a check of /controller_epoch's version,
        so a controller that has lost its epoch deletes nothing (ControllerMovedError).
        A multi cannot delete recursively, so the tree is listed and deleted children first.
        A topic of up to ~500 partitions goes in one multi, all or nothing; a larger one in
        several, each fenced, so no request outgrows ZooKeeper's jute.maxbuffer. The marker is
        deleted last: while anything of the topic is left, the marker stays and the deletion is
        finished by the next attempt, of this controller or the next."""
        doomed = self._subtree_children_first(zk.topic_path(topic))
        doomed += [path for path in (zk.topic_config_path(topic), zk.delete_topic_path(topic))
                   if self.store.exists(path) is not None]
        for start in range(0, len(doomed), _MAX_DELETES_PER_MULTI):
            chunk = doomed[start:start + _MAX_DELETES_PER_MULTI]
            self._fenced_multi([Op("delete", path) for path in chunk], epoch_zk_version)

    def _subtree_children_first(self, path: str) -> list[str]:
        """`path` and every znode below it, each child before its parent; [] if it is gone."""
        try:
            children = self.store.get_children(path)
        except NoNodeError:
            return []
        below = [p for child in children for p in self._subtree_children_first(f"{path}/{child}")]
        return below + [path]

    def _fenced_multi(self, ops: list[Op], epoch_zk_version: int) -> list:
        """One multi conditioned on the controller epoch's version (Kafka's CheckOp on
        /controller_epoch), for ops that expect no version of their own: a BadVersionError can
        only be the epoch's then, and means another controller has taken over."""
        try:
            return self.store.multi([Op("check", zk.CONTROLLER_EPOCH, version=epoch_zk_version), *ops])
        except BadVersionError:
            raise ControllerMovedError from None

    # -- log dir failures (Kafka's propagateLogDirEvent and the controller's side) ---------------
    def propagate_log_dir_event(self, broker_id: int) -> str:
        """A broker tells the controller one of its log dirs failed: a sequential znode."""
        prefix = f"{zk.LOG_DIR_EVENT_NOTIFICATION}/{zk.LOG_DIR_EVENT_PREFIX}"
        return self.store.create(prefix, zk.encode_log_dir_event(broker_id), sequence=True, makepath=True)

    def get_all_log_dir_event_notifications(self) -> list[str]:
        try:
            children = self.store.get_children(zk.LOG_DIR_EVENT_NOTIFICATION)
        except NoNodeError:
            return []
        return sorted(c for c in children if c.startswith(zk.LOG_DIR_EVENT_PREFIX))

    def get_broker_ids_from_log_dir_events(self, notifications: list[str]) -> list[int]:
        broker_ids: set[int] = set()
        for child in notifications:
            try:
                data, _stat = self.store.get(f"{zk.LOG_DIR_EVENT_NOTIFICATION}/{child}")
            except NoNodeError:
                continue
            broker_id = zk.decode_log_dir_event(data)
            if broker_id is not None:
                broker_ids.add(broker_id)
        return sorted(broker_ids)

    def delete_log_dir_event_notifications(self, notifications: list[str], epoch_zk_version: int) -> None:
        """Fenced by the controller epoch, as Kafka's deleteLogDirEventNotifications."""
        existing = [f"{zk.LOG_DIR_EVENT_NOTIFICATION}/{c}" for c in notifications
                    if self.store.exists(f"{zk.LOG_DIR_EVENT_NOTIFICATION}/{c}") is not None]
        for start in range(0, len(existing), _MAX_DELETES_PER_MULTI):
            chunk = existing[start:start + _MAX_DELETES_PER_MULTI]
            self._fenced_multi([Op("delete", path) for path in chunk], epoch_zk_version)

    # -- partition states ---------------------------------------------------------------------
    def get_partition_state(self, topic: str, partition: int) -> zk.LeaderIsrAndControllerEpoch | None:
        try:
            data, stat = self.store.get(zk.partition_state_path(topic, partition))
        except NoNodeError:
            return None
        return zk.LeaderIsrAndControllerEpoch.decode(data, stat.version)

    def create_partition_state(self, topic: str, partition: int, state: zk.LeaderIsrAndControllerEpoch,
                               epoch_zk_version: int) -> None:
        """Creates .../partitions/<p>/state, fenced by the controller epoch's zk version."""
        self.create_partition_states([(topic, partition, state)], epoch_zk_version)

    def create_partition_states(self, states: list[tuple[str, int, zk.LeaderIsrAndControllerEpoch]],
                                epoch_zk_version: int) -> None:
        """Creates the state znodes of new partitions, PARTITION_STATES_PER_MULTI partitions per
        fenced multi. One multi per partition made a 10,000-partition topic quadratic (the embedded
        store copies and saves its whole tree per multi: minutes with the event loop blocked); one
        multi for all could pass ZooKeeper's jute.maxbuffer (1 MiB by default)."""
        for start in range(0, len(states), PARTITION_STATES_PER_MULTI):
            chunk = states[start:start + PARTITION_STATES_PER_MULTI]
            self._fenced_multi(self._partition_state_creations(chunk), epoch_zk_version)
            for _, _, state in chunk:
                state.zk_version = 0

    def _partition_state_creations(self, states: list[tuple[str, int, zk.LeaderIsrAndControllerEpoch]]) -> list[Op]:
        ops = []
        topics_with_partitions_znode: set[str] = set()
        for topic, partition, state in states:
            if topic not in topics_with_partitions_znode:
                topics_with_partitions_znode.add(topic)
                if self.store.exists(zk.partitions_path(topic)) is None:
                    ops.append(Op("create", zk.partitions_path(topic)))
            ops.append(Op("create", zk.partition_path(topic, partition)))
            ops.append(Op("create", zk.partition_state_path(topic, partition), state.encode()))
        return ops

    def update_partition_state(self, topic: str, partition: int, state: zk.LeaderIsrAndControllerEpoch,
                               epoch_zk_version: int) -> bool:
        """Conditional setData on the state znode; False if its version moved (caller retries)."""
        ops = [Op("check", zk.CONTROLLER_EPOCH, version=epoch_zk_version),
               Op("set", zk.partition_state_path(topic, partition), state.encode(), state.zk_version)]
        try:
            results = self.store.multi(ops)
        except BadVersionError:
            if self.store.get(zk.CONTROLLER_EPOCH)[1].version != epoch_zk_version:
                raise ControllerMovedError from None
            return False
        state.zk_version = results[1].version
        return True
