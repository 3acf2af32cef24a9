"""ZNodeStore: the znode tree the controller and brokers share, behind one small interface.

Two implementations of the same calls (a subset of kazoo's client API) raising the same
exceptions, defined here, so callers handle both alike (kazoo_store.py translates kazoo's; this
module does not import kazoo, which a single-node broker never needs):
- `EmbeddedZNodeStore`: single-node mode. An in-process tree with ZooKeeper's semantics that
  matter to Kafka (versions, czxid, ephemeral and sequential nodes, multi-ops that all succeed or
  none, persistent watches), its persistent part saved to one JSON file in the log dir.
- `KazooZNodeStore` (kbroker/metadata/kazoo_store.py): a real ZooKeeper through kazoo.
Watch callbacks never run inside the store's call: they go through `notify`, which hands them
to the event loop, so kazoo's threads (or a half-done write) never touch broker state.
This module knows nothing of Kafka's JSON shapes (zk_data.py) or of Kafka requests.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["BadVersionError", "NoNodeError", "NodeExistsError", "NotEmptyError", "ZNodeError", "ZnodeStat",
           "EmbeddedZNodeStore", "Op"]

STORE_FILE = "kbroker-metadata.json"


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


@dataclass(slots=True)
class ZnodeStat:
    czxid: int
    version: int
    owner: int = 0  # ZooKeeper's ephemeralOwner: the session that created an ephemeral node, else 0


@dataclass(slots=True)
class _Node:
    data: bytes
    czxid: int
    version: int = 0
    ephemeral: bool = False
    children: set[str] = field(default_factory=set)
    sequence: int = 0  # next sequence number for sequential children


@dataclass(slots=True)
class Op:
    """One operation of a multi (transaction): kind is check, create, set or delete."""
    kind: str
    path: str
    data: bytes = b""
    version: int = -1
    ephemeral: bool = False
    sequence: bool = False


def _versioned_node(nodes: dict[str, _Node], op: Op) -> _Node:
    """The node an op names, checked against the version it expects (-1: any)."""
    node = nodes.get(op.path)
    if node is None:
        raise NoNodeError(op.path)
    if op.version != -1 and node.version != op.version:
        raise BadVersionError(op.path)
    return node


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] or "/"


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
        self._load()

    # -- persistence ------------------------------------------------------------------------
    def _load(self) -> None:
        if self.path is None or not os.path.exists(self.path):
            return
        with open(self.path, encoding="utf-8") as f:
            saved = json.load(f)
        self.zxid = saved["zxid"]
        for path, (data, czxid, version, sequence) in sorted(saved["nodes"].items()):
            node = _Node(base64.b64decode(data), czxid, version, sequence=sequence)
            self.nodes[path] = node
            if path != "/":
                self.nodes[_parent(path)].children.add(path.rsplit("/", 1)[1])

    def _save(self) -> None:
        if self.path is None:
            return
        nodes = {p: [base64.b64encode(n.data).decode(), n.czxid, n.version, n.sequence]
                 for p, n in self.nodes.items() if not n.ephemeral}
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"version": 1, "zxid": self.zxid, "nodes": nodes}, f)
        os.replace(tmp, self.path)

    # -- reads --------------------------------------------------------------------------------
    def _stat(self, node: _Node) -> ZnodeStat:
        return ZnodeStat(node.czxid, node.version, self.session_id if node.ephemeral else 0)

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
        staged = dict(self.nodes)  # shallow: nodes are replaced, never mutated, while staging
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
                parent = staged.get(parent_path)
                if parent is None:
                    raise NoNodeError(parent_path)
                path = op.path
                parent = _Node(parent.data, parent.czxid, parent.version, parent.ephemeral,
                               set(parent.children), parent.sequence)
                if op.sequence:
                    path = f"{op.path}{parent.sequence:010d}"
                    parent.sequence += 1
                if path in staged:
                    raise NodeExistsError(path)
                zxid += 1
                parent.children.add(path.rsplit("/", 1)[1])
                staged[parent_path] = parent
                staged[path] = _Node(op.data, zxid, 0, op.ephemeral)
                touched_children.add(parent_path)
                touched_data.add(path)
                persistent_change |= not op.ephemeral
                results.append(path)
            elif op.kind == "set":
                node = _versioned_node(staged, op)
                zxid += 1
                staged[op.path] = _Node(op.data, node.czxid, node.version + 1, node.ephemeral,
                                        node.children, node.sequence)
                touched_data.add(op.path)
                persistent_change |= not node.ephemeral
                results.append(ZnodeStat(node.czxid, node.version + 1))
            elif op.kind == "delete":
                node = _versioned_node(staged, op)
                if node.children:
                    raise NotEmptyError(op.path)
                parent_path = _parent(op.path)
                parent = staged[parent_path]
                staged[parent_path] = _Node(parent.data, parent.czxid, parent.version, parent.ephemeral,
                                            parent.children - {op.path.rsplit("/", 1)[1]}, parent.sequence)
                del staged[op.path]
                zxid += 1
                touched_children.add(parent_path)
                touched_data.add(op.path)
                persistent_change |= not node.ephemeral
                results.append(True)
            else:
                raise ValueError(f"unknown op {op.kind}")
        self.nodes, self.zxid = staged, zxid
        if persistent_change:
            self._save()
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
