"""ZNodeStore: the znode tree the controller and brokers share, behind one small interface.

Two implementations of the same calls (a subset of kazoo's client API) raising the same
exceptions, defined here, so callers handle both alike (kazoo_store.py translates kazoo's; this
module does not import kazoo, which a single-node broker never needs):
- `EmbeddedZNodeStore`: single-node mode. An in-process tree with ZooKeeper's semantics that
  matter to Kafka (versions, czxid, ephemeral and sequential nodes, multi-ops that all succeed or
  none, persistent watches), its persistent part kept in the log dir as a JSON snapshot plus a
  journal of the multis since (one line each), folded into a new snapshot as the journal grows:
  a write costs what it changes, not the size of the tree (10,000 partitions' leader changes one
  by one were quadratic when every write saved the whole tree).
- `KazooZNodeStore` (kbroker/metadata/kazoo_store.py): a real ZooKeeper through kazoo.
Watch callbacks never run inside the store's call: they go through `notify`, which hands them
to the event loop, so kazoo's threads (or a half-done write) never touch broker state.
This module knows nothing of Kafka's JSON shapes (zk_data.py) or of Kafka requests.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

__all__ = ["BadVersionError", "NoNodeError", "NodeExistsError", "NotEmptyError", "ZNodeError", "ZnodeStat",
           "ZooKeeperUnavailableError", "EmbeddedZNodeStore", "Op"]

STORE_FILE = "kbroker-metadata.json"
JOURNAL_SUFFIX = ".journal"
# The journal is folded into a new snapshot once it is larger than the snapshot (and this): the
# cost of rewriting the tree is spread over at least as many bytes of writes.
MIN_JOURNAL_BYTES_TO_FOLD = 256 * 1024


class ZNodeError(Exception):
    """A ZooKeeper call refused for the reason the subclass names (kazoo's error of that name)."""


class NoNodeError(ZNodeError):
    pass


class NodeExistsError(ZNodeError):
    pass


class BadVersionError(ZNodeError):
    pass


class NotEmptyError(ZNodeError):
    pass


class ZooKeeperUnavailableError(ZNodeError):
    """No answer from ZooKeeper: the session expired, or the connection was lost or timed out
    before the call completed (its outcome is unknown). kazoo's SessionExpiredError,
    ConnectionLoss, OperationTimeoutError and the like; the embedded store never raises it."""


@dataclass(slots=True)
class ZnodeStat:
    """The parts of ZooKeeper's Stat that kbroker reads."""

    czxid: int
    version: int
    owner: int = 0  # ZooKeeper's ephemeralOwner: the session that created an ephemeral node, else 0
    ctime_ms: int = 0  # ZooKeeper's ctime (ms since the epoch; embedded: not saved, the load time)


@dataclass(slots=True)
class _Node:
    """One znode of the embedded store."""

    data: bytes
    czxid: int
    version: int = 0
    ephemeral: bool = False
    children: set[str] = field(default_factory=set)
    sequence: int = 0  # next sequence number for sequential children
    ctime_ms: int = 0


@dataclass(slots=True)
class Op:
    """One operation of a multi (transaction): kind is check, create, set or delete."""
    kind: str
    path: str
    data: bytes = b""
    version: int = -1
    ephemeral: bool = False
    sequence: bool = False


class _Staged:
    """A multi's view of the tree: its changes (None: deleted) over the committed nodes, which
    it never touches; they are applied only once every operation has succeeded."""

    __slots__ = ("base", "changes")

    def __init__(self, base: dict[str, _Node]) -> None:
        self.base = base
        self.changes: dict[str, _Node | None] = {}

    def get(self, path: str) -> _Node | None:
        return self.changes[path] if path in self.changes else self.base.get(path)

    def __contains__(self, path: str) -> bool:
        return self.get(path) is not None

    def set(self, path: str, node: _Node | None) -> None:
        self.changes[path] = node

    def parent_for_update(self, path: str) -> _Node:
        """The parent node as this multi may change its children: copied once per multi."""
        node = self.changes.get(path)
        if node is None:
            committed = self.base.get(path)
            if committed is None:
                raise NoNodeError(path)
            node = self.changes[path] = _Node(committed.data, committed.czxid, committed.version,
                                              committed.ephemeral, set(committed.children), committed.sequence,
                                              committed.ctime_ms)
        return node


def _versioned_node(nodes: _Staged, op: Op) -> _Node:
    """The node an op names, checked against the version it expects (-1: any)."""
    node = nodes.get(op.path)
    if node is None:
        raise NoNodeError(op.path)
    if op.version != -1 and node.version != op.version:
        raise BadVersionError(op.path)
    return node


def _now_ms() -> int:
    return int(time.time() * 1000)


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] or "/"


def _saved_form(node: _Node) -> list:
    return [base64.b64encode(node.data).decode(), node.czxid, node.version, node.sequence]


def read_saved_tree(path: str) -> tuple[int, dict[str, list], int]:
    """(zxid, {path: [data base64, czxid, version, sequence]}, journal lines replayed) of a saved
    store, read only: the snapshot, then the journal's multis after it (a torn last line, from a
    crash in the middle of a write, ends the replay; lines the snapshot already holds, from a
    crash while folding, are skipped)."""
    zxid, saved = 0, {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            snapshot = json.load(f)
        zxid, saved = snapshot["zxid"], snapshot["nodes"]
    replayed = 0
    if os.path.exists(path + JOURNAL_SUFFIX):
        with open(path + JOURNAL_SUFFIX, encoding="utf-8") as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except ValueError:
                    break
                if entry["zxid"] <= zxid:
                    continue
                saved.update(entry["set"])
                for deleted in entry["delete"]:
                    saved.pop(deleted, None)
                zxid = entry["zxid"]
                replayed += 1
    return zxid, saved, replayed


class EmbeddedZNodeStore:
    def __init__(self, log_dir: str | None, notify: Callable[[Callable[[], None]], None] | None = None) -> None:
        self.path = None
        if log_dir:
            os.makedirs(log_dir, exist_ok=True)
            self.path = os.path.join(log_dir, STORE_FILE)
        self.notify = notify or (lambda fn: fn())
        self.zxid = 0
        self.nodes: dict[str, _Node] = {"/": _Node(b"", 0)}
        self.child_watches: dict[str, list[Callable[[], None]]] = {}
        self.data_watches: dict[str, list[Callable[[], None]]] = {}
        self._journal: TextIO | None = None
        self._journal_bytes = 0
        self._snapshot_bytes = 0
        self._load()

    # -- persistence ------------------------------------------------------------------------
    def _load(self) -> None:
        """What read_saved_tree finds; then a fresh snapshot and an empty journal if it replayed any."""
        if self.path is None:
            return
        self.zxid, saved, replayed = read_saved_tree(self.path)
        loaded_ms = _now_ms()
        for path, (data, czxid, version, sequence) in sorted(saved.items()):
            node = _Node(base64.b64decode(data), czxid, version, sequence=sequence, ctime_ms=loaded_ms)
            self.nodes[path] = node
            if path != "/":
                self.nodes[_parent(path)].children.add(path.rsplit("/", 1)[1])
        if replayed or not os.path.exists(self.path):
            self._save()
        else:
            self._snapshot_bytes = os.path.getsize(self.path)
            self._open_journal(truncate=False)

    def _open_journal(self, truncate: bool) -> None:
        if self._journal is not None:
            self._journal.close()
        self._journal = open(self.path + JOURNAL_SUFFIX, "w" if truncate else "a", encoding="utf-8")  # type: ignore[operator]  # noqa: SIM115
        self._journal_bytes = self._journal.tell()

    def _save(self) -> None:
        """A full snapshot of the persistent nodes, then an empty journal."""
        if self.path is None:
            return
        nodes = {p: _saved_form(n) for p, n in self.nodes.items() if not n.ephemeral}
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"version": 1, "zxid": self.zxid, "nodes": nodes}, f)
            self._snapshot_bytes = f.tell()
        os.replace(tmp, self.path)
        self._open_journal(truncate=True)

    def _journal_entry(self, staged: _Staged) -> dict | None:
        """A multi's persistent changes, read before they are applied (deleted nodes still there)."""
        if self._journal is None:
            return None
        changed = {p: _saved_form(n) for p, n in staged.changes.items() if n is not None and not n.ephemeral}
        deleted = [p for p, n in staged.changes.items()
                   if n is None and (old := self.nodes.get(p)) is not None and not old.ephemeral]
        return {"zxid": self.zxid, "set": changed, "delete": deleted} if changed or deleted else None

    def _write_journal(self, entry: dict) -> None:
        """One line for a committed multi (applied already); folds the journal when it is large."""
        assert self._journal is not None
        line = json.dumps(entry) + "\n"
        self._journal.write(line)
        self._journal.flush()  # to the page cache now, as the snapshot's os.replace was
        self._journal_bytes += len(line)
        if self._journal_bytes > max(MIN_JOURNAL_BYTES_TO_FOLD, self._snapshot_bytes):
            self._save()

    # -- reads --------------------------------------------------------------------------------
    def _stat(self, node: _Node) -> ZnodeStat:
        return ZnodeStat(node.czxid, node.version, self.session_id if node.ephemeral else 0, node.ctime_ms)

    def exists(self, path: str) -> ZnodeStat | None:
        node = self.nodes.get(path)
        return None if node is None else self._stat(node)

    def get(self, path: str) -> tuple[bytes, ZnodeStat]:
        node = self._node(path)
        return node.data, self._stat(node)

    def sync(self, path: str) -> None:
        """ZooKeeper's sync: nothing to catch up with in a single in-process store."""

    def get_children(self, path: str) -> list[str]:
        return sorted(self._node(path).children)

    def _node(self, path: str) -> _Node:
        node = self.nodes.get(path)
        if node is None:
            raise NoNodeError(path)
        return node

    # -- writes ----------------------------------------------------------------------------
    def create(self, path: str, value: bytes = b"", ephemeral: bool = False, sequence: bool = False,
               makepath: bool = False) -> str:
        if makepath:
            self._make_parents(path)
        return self.multi([Op("create", path, value, ephemeral=ephemeral, sequence=sequence)])[0]

    def ensure_path(self, path: str) -> None:
        self._make_parents(path + "/x")

    def _make_parents(self, path: str) -> None:
        parts = path.strip("/").split("/")[:-1]
        current = ""
        for part in parts:
            current += "/" + part
            if current not in self.nodes:
                self.multi([Op("create", current)])

    def set(self, path: str, value: bytes, version: int = -1) -> ZnodeStat:
        self.multi([Op("set", path, value, version)])
        return self.exists(path)  # type: ignore[return-value]

    def delete(self, path: str, version: int = -1, recursive: bool = False) -> None:
        if recursive:
            for child in self.get_children(path):
                self.delete(f"{path}/{child}", recursive=True)
        self.multi([Op("delete", path, version=version)])

    def multi(self, ops: list[Op]) -> list:
        """All operations or none, as a ZooKeeper multi; returns per-op results (created paths)."""
        staged = _Staged(self.nodes)
        results: list = []
        touched_children: set[str] = set()
        touched_data: set[str] = set()
        zxid = self.zxid
        persistent_change = False
        for op in ops:
            if op.kind == "check":
                _versioned_node(staged, op)
                results.append(True)
            elif op.kind == "create":
                parent_path = _parent(op.path)
                parent = staged.parent_for_update(parent_path)
                path = op.path
                if op.sequence:
                    path = f"{op.path}{parent.sequence:010d}"
                    parent.sequence += 1
                if path in staged:
                    raise NodeExistsError(path)
                zxid += 1
                parent.children.add(path.rsplit("/", 1)[1])
                staged.set(path, _Node(op.data, zxid, 0, op.ephemeral, ctime_ms=_now_ms()))
                touched_children.add(parent_path)
                touched_data.add(path)
                persistent_change |= not op.ephemeral
                results.append(path)
            elif op.kind == "set":
                node = _versioned_node(staged, op)
                zxid += 1
                staged.set(op.path, _Node(op.data, node.czxid, node.version + 1, node.ephemeral,
                                          node.children, node.sequence, node.ctime_ms))
                touched_data.add(op.path)
                persistent_change |= not node.ephemeral
                results.append(ZnodeStat(node.czxid, node.version + 1))
            elif op.kind == "delete":
                node = _versioned_node(staged, op)
                if node.children:
                    raise NotEmptyError(op.path)
                parent_path = _parent(op.path)
                staged.parent_for_update(parent_path).children.discard(op.path.rsplit("/", 1)[1])
                staged.set(op.path, None)
                zxid += 1
                touched_children.add(parent_path)
                touched_data.add(op.path)
                persistent_change |= not node.ephemeral
                results.append(True)
            else:
                raise ValueError(f"unknown op {op.kind}")
        self.zxid = zxid
        entry = self._journal_entry(staged) if persistent_change else None
        for path, changed in staged.changes.items():
            if changed is None:
                self.nodes.pop(path, None)
            else:
                self.nodes[path] = changed
        if entry is not None:
            self._write_journal(entry)
        for path in touched_children:
            for fn in self.child_watches.get(path, ()):
                self.notify(fn)
        for path in touched_data:
            for fn in self.data_watches.get(path, ()):
                self.notify(fn)
        return results

    # -- watches (persistent; the callback re-reads what it needs) -------------------------
    def watch_children(self, path: str, fn: Callable[[], None]) -> None:
        self.child_watches.setdefault(path, []).append(fn)

    def watch_data(self, path: str, fn: Callable[[], None]) -> None:
        self.data_watches.setdefault(path, []).append(fn)

    @property
    def session_id(self) -> int:
        return 1

    def close(self) -> None:
        self._save()
        if self._journal is not None:
            self._journal.close()
            self._journal = None
