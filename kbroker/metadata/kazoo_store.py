"""KazooZNodeStore: the ZNodeStore interface on a real ZooKeeper, through kazoo.

The same calls as EmbeddedZNodeStore (znode_store.py), so KafkaZkClient and the controller
run unchanged in cluster mode. A chroot in zookeeper.connect ("host:port/kafka") is created if
missing, as Kafka does. kazoo runs its own threads: watch callbacks and session-state changes
never run here, they are handed to `notify` (the event loop's call_soon_threadsafe), so broker
state is only touched on the loop. It knows nothing of Kafka's JSON shapes or requests.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

from kazoo import exceptions as kazoo_errors
from kazoo.client import KazooClient, KazooState
from kazoo.handlers.threading import KazooTimeoutError

from kbroker.metadata import znode_store
from kbroker.metadata.znode_store import Op, ZnodeStat

log = logging.getLogger("kbroker.zk")


# kazoo's refusals as the store interface's own (znode_store.py), which callers catch.
_OUR_ERRORS = {
    kazoo_errors.NoNodeError: znode_store.NoNodeError,
    kazoo_errors.NodeExistsError: znode_store.NodeExistsError,
    kazoo_errors.BadVersionError: znode_store.BadVersionError,
    kazoo_errors.NotEmptyError: znode_store.NotEmptyError,
}
# ZooKeeper did not answer (session gone, connection lost or timed out): one error type for the
# callers, so a request handler can answer it (NOT_CONTROLLER on the controller's paths) instead
# of letting kazoo's exception close the client's connection with a traceback.
_UNAVAILABLE = (kazoo_errors.SessionExpiredError, kazoo_errors.ConnectionLoss, kazoo_errors.ConnectionDropped,
                kazoo_errors.OperationTimeoutError, kazoo_errors.SessionMovedError, KazooTimeoutError)
_KAZOO_REFUSALS = (*_OUR_ERRORS, *_UNAVAILABLE)


def _ours(error: Exception) -> Exception:
    if isinstance(error, _UNAVAILABLE):
        return znode_store.ZooKeeperUnavailableError(f"ZooKeeper unavailable: {type(error).__name__}")
    our_type = next((ours for theirs, ours in _OUR_ERRORS.items() if isinstance(error, theirs)), None)
    return error if our_type is None else our_type(*error.args)


def _translating_errors(call: Callable) -> Callable:
    @functools.wraps(call)
    def translated(*args, **kwargs):
        try:
            return call(*args, **kwargs)
        except _KAZOO_REFUSALS as error:
            raise _ours(error) from error

    return translated


def split_chroot(connect: str) -> tuple[str, str]:
    """'h1:2181,h2:2181/kafka' -> ('h1:2181,h2:2181', '/kafka'); no chroot -> '' ."""
    hosts, slash, chroot = connect.partition("/")
    return hosts, ("/" + chroot.rstrip("/")) if slash and chroot.strip("/") else ""


def _start(client: KazooClient, hosts: str, timeout_s: float) -> None:
    """Connect, or raise ConnectionError saying where and how long (kazoo stopped the client)."""
    try:
        client.start(timeout=timeout_s)
    except client.handler.timeout_exception:
        raise ConnectionError(f"no ZooKeeper answered at {hosts} within {timeout_s * 1000:.0f} ms "
                              "(zookeeper.connect, zookeeper.connection.timeout.ms)") from None


class KazooZNodeStore:
    def __init__(self, connect: str, session_timeout_ms: int, connection_timeout_ms: int,
                 notify: Callable[[Callable[[], None]], None],
                 on_session_event: Callable[[str], None] | None = None) -> None:
        hosts, chroot = split_chroot(connect)
        timeout = connection_timeout_ms / 1000
        if chroot:
            bootstrap = KazooClient(hosts=hosts, timeout=timeout)
            _start(bootstrap, hosts, timeout)
            try:
                bootstrap.ensure_path(chroot)
            finally:
                bootstrap.stop()
                bootstrap.close()
        self.notify = notify
        self.on_session_event = on_session_event
        self.client = KazooClient(hosts=hosts + chroot, timeout=session_timeout_ms / 1000)
        self.client.add_listener(self._state_changed)
        _start(self.client, hosts, timeout)

    def _state_changed(self, state: str) -> None:
        # Runs on a kazoo thread: only hand the event over.
        on_session_event = self.on_session_event
        if on_session_event is not None:
            name = {KazooState.LOST: "lost", KazooState.SUSPENDED: "suspended",
                    KazooState.CONNECTED: "connected"}.get(state, str(state))
            self.notify(lambda: on_session_event(name))

    @property
    def session_id(self) -> int:
        session = self.client.client_id
        return session[0] if session else 0

    # -- reads --------------------------------------------------------------------------------
    @_translating_errors
    def exists(self, path: str) -> ZnodeStat | None:
        stat = self.client.exists(path)
        return None if stat is None else ZnodeStat(stat.czxid, stat.version, stat.ephemeralOwner, stat.ctime)

    @_translating_errors
    def get(self, path: str) -> tuple[bytes, ZnodeStat]:
        data, stat = self.client.get(path)
        return data or b"", ZnodeStat(stat.czxid, stat.version, stat.ephemeralOwner, stat.ctime)

    @_translating_errors
    def get_children(self, path: str) -> list[str]:
        return sorted(self.client.get_children(path))

    @_translating_errors
    def sync(self, path: str) -> None:
        """Let the ZooKeeper server we read from catch up with the leader, so that the next read
        sees every write committed before this call (ZooKeeper reads may lag otherwise)."""
        self.client.sync(path)

    # -- writes -------------------------------------------------------------------------------
    @_translating_errors
    def create(self, path: str, value: bytes = b"", ephemeral: bool = False, sequence: bool = False,
               makepath: bool = False) -> str:
        return self.client.create(path, value, ephemeral=ephemeral, sequence=sequence, makepath=makepath)

    @_translating_errors
    def ensure_path(self, path: str) -> None:
        self.client.ensure_path(path)

    @_translating_errors
    def set(self, path: str, value: bytes, version: int = -1) -> ZnodeStat:
        stat = self.client.set(path, value, version=version)
        return ZnodeStat(stat.czxid, stat.version)

    @_translating_errors
    def delete(self, path: str, version: int = -1, recursive: bool = False) -> None:
        self.client.delete(path, version=version, recursive=recursive)

    @_translating_errors
    def multi(self, ops: list[Op]) -> list:
        """A ZooKeeper multi; raises the first failing op's error, as the embedded store does."""
        txn = self.client.transaction()
        for op in ops:
            if op.kind == "check":
                txn.check(op.path, op.version)
            elif op.kind == "create":
                txn.create(op.path, op.data, ephemeral=op.ephemeral, sequence=op.sequence)
            elif op.kind == "set":
                txn.set_data(op.path, op.data, op.version)
            elif op.kind == "delete":
                txn.delete(op.path, op.version)
            else:
                raise ValueError(f"unknown op {op.kind}")
        results = txn.commit()
        failures = [r for r in results if isinstance(r, Exception) and not isinstance(r, kazoo_errors.RolledBackError)]
        if failures:
            raise _ours(failures[0])
        return [ZnodeStat(r.czxid, r.version) if hasattr(r, "czxid") else r for r in results]

    # -- watches: persistent, re-registered by kazoo's recipes --------------------------------
    def watch_children(self, path: str, fn: Callable[[], None]) -> None:
        first = [True]

        def on_children(_children) -> None:
            if first[0]:  # the recipe calls once at registration: not a change
                first[0] = False
                return
            self.notify(fn)

        try:
            self.client.ChildrenWatch(path, on_children)
        except Exception:
            log.exception("cannot watch children of %s", path)

    def watch_data(self, path: str, fn: Callable[[], None]) -> None:
        first = [True]

        def on_data(_data, _stat) -> None:
            if first[0]:
                first[0] = False
                return
            self.notify(fn)

        self.client.DataWatch(path, on_data)

    def close(self) -> None:
        try:
            self.client.stop()
            self.client.close()
        except Exception:  # closing a broken session must not fail a shutdown
            log.debug("error closing the ZooKeeper session", exc_info=True)


__all__ = ["KazooZNodeStore", "split_chroot"]
