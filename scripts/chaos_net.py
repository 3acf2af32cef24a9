"""scripts/chaos's network: where each node (ZooKeeper, brokers) lives and how to cut it off.

With network namespaces (root and iproute2), every node gets its own namespace with a veth pair
into one bridge that this run creates; the bridge holds the runner's own address, so the
workload and checker on the host reach every node while the nodes can be partitioned from each
other. A partition between two nodes is a pair of blackhole routes (`ip -n NS route add
blackhole PEER/32`) in both namespaces: packets of open connections are dropped, new connections
fail, and deleting the routes heals it. (`tc netem` and nftables are not available on every
machine; routes are.) Packet loss between two nodes (`lose(a, b, percent)`) is a pair of
iptables rules in a's namespace, `-m statistic --mode random --probability P -j DROP` on what
goes to and comes from b, when the `iptables` command is installed (Debian's `iptables`; its
nf_tables or legacy backend alike). Delay is not possible without `tc netem` (sch_netem), which
this kernel does not have ("Specified qdisc kind is unknown"). Nodes listen on their namespace
address only, never on a host interface.

Without namespaces, `LoopbackNetwork` puts every node on 127.0.0.1 and says why the network
nemeses cannot run. Everything this creates is deleted by `close()`, also after a failure; only a
runner killed with SIGKILL leaves its `kbc<pid>-*` namespaces and `kbc<pid>br` bridge behind
(`ip netns del`, `ip link del` remove them).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

from kbroker.testing.processes import free_port

BROKER_PORT = 9092
ZOOKEEPER_PORT = 2181


@dataclass(frozen=True)
class Node:
    """Where one process of the cluster lives: its address, port and the argv prefix that enters
    its namespace (empty on loopback)."""

    name: str
    host: str
    port: int
    argv_prefix: tuple[str, ...] = ()


def ip(*args: str) -> None:
    """Run `ip ARGS`; raises RuntimeError with ip's own message when it fails."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip() or done.returncode}")


def free_subnet(first: int) -> str:
    """A 10.213.x /24 that no interface of the host uses yet, trying x = first, first+1, ..."""
    done = subprocess.run(["ip", "-o", "addr", "show"], capture_output=True, text=True)
    for step in range(250):
        subnet = f"10.213.{(first + step) % 250}"
        if f" {subnet}." not in done.stdout:
            return subnet
    raise RuntimeError("every 10.213.x.0/24 is in use")


class LoopbackNetwork:
    """Every node on 127.0.0.1 with a free port; partitions are not possible."""

    def __init__(self, names: list[str], reason: str) -> None:
        self.partition_unavailable = reason
        self.loss_unavailable: str | None = reason
        self.nodes = {name: Node(name, "127.0.0.1", free_port()) for name in names}

    def partition(self, _a: str, _b: str) -> None:
        raise RuntimeError(self.partition_unavailable)

    def lose(self, _a: str, _b: str, _percent: int) -> None:
        raise RuntimeError(self.partition_unavailable)

    def stop_losing(self, _a: str, _b: str) -> None:
        pass

    def heal(self, _a: str, _b: str) -> None:
        pass

    def heal_all(self) -> None:
        pass

    def close(self) -> None:
        pass


class NamespaceNetwork:
    """One namespace per node on a bridge; `partition(a, b)` cuts a from b in both directions."""

    partition_unavailable: str | None = None

    def __init__(self, names: list[str]) -> None:
        # Names and the /24 are derived from the pid so that two runs on one machine do not meet;
        # interface names must stay within 15 characters.
        self.tag = f"kbc{os.getpid() % 100000}"
        self.subnet = free_subnet(os.getpid() % 250)
        self.bridge = f"{self.tag}br"
        self.namespaces: list[str] = []
        self.cut: set[tuple[str, str]] = set()
        self.lossy: dict[tuple[str, str], int] = {}  # (a, b) -> percent of packets dropped
        self.nodes: dict[str, Node] = {}
        self.loss_unavailable = None if shutil.which("iptables") else "iptables is not installed (Debian: iptables)"
        try:
            self._create(names)
        except BaseException:
            self.close()
            raise

    def _create(self, names: list[str]) -> None:
        ip("link", "add", self.bridge, "type", "bridge")
        ip("link", "set", self.bridge, "up")
        ip("addr", "add", f"{self.subnet}.1/24", "dev", self.bridge)
        for index, name in enumerate(names):
            namespace, host_end = f"{self.tag}-{name}", f"{self.tag}{index}h"
            ip("netns", "add", namespace)
            self.namespaces.append(namespace)
            ip("link", "add", host_end, "type", "veth", "peer", "name", "eth0", "netns", namespace)
            ip("link", "set", host_end, "master", self.bridge)
            ip("link", "set", host_end, "up")
            address = f"{self.subnet}.{10 + index}"
            ip("-n", namespace, "addr", "add", f"{address}/24", "dev", "eth0")
            ip("-n", namespace, "link", "set", "eth0", "up")
            ip("-n", namespace, "link", "set", "lo", "up")
            port = ZOOKEEPER_PORT if name == "zk" else BROKER_PORT
            self.nodes[name] = Node(name, address, port, ("ip", "netns", "exec", namespace))

    def _namespace(self, name: str) -> str:
        return f"{self.tag}-{name}"

    def _routes(self, action: str, a: str, b: str) -> None:
        for one, other in ((a, b), (b, a)):
            ip("-n", self._namespace(one), "route", action, "blackhole", f"{self.nodes[other].host}/32")

    def partition(self, a: str, b: str) -> None:
        """Drop every packet between nodes a and b, both ways, until healed."""
        pair = (min(a, b), max(a, b))
        if pair not in self.cut:
            self._routes("add", *pair)
            self.cut.add(pair)

    def heal(self, a: str, b: str) -> None:
        pair = (min(a, b), max(a, b))
        if pair in self.cut:
            self._routes("del", *pair)
            self.cut.discard(pair)

    def _loss_rules(self, action: str, a: str, b: str, percent: int) -> None:
        peer = f"{self.nodes[b].host}/32"
        match = ("-m", "statistic", "--mode", "random", "--probability", f"{percent / 100:.2f}", "-j", "DROP")
        for chain, direction in (("INPUT", "-s"), ("OUTPUT", "-d")):
            argv = ["ip", "netns", "exec", self._namespace(a), "iptables", action, chain, direction, peer, *match]
            done = subprocess.run(argv, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip() or done.returncode}")

    def lose(self, a: str, b: str, percent: int) -> None:
        """Drop `percent` % of the packets between a and b, both ways, at random, until stopped."""
        if (a, b) not in self.lossy:
            self._loss_rules("-A", a, b, percent)
            self.lossy[(a, b)] = percent

    def stop_losing(self, a: str, b: str) -> None:
        percent = self.lossy.pop((a, b), None)
        if percent is not None:
            self._loss_rules("-D", a, b, percent)

    def heal_all(self) -> None:
        for pair in list(self.cut):
            self.heal(*pair)
        for a, b in list(self.lossy):
            self.stop_losing(a, b)

    def close(self) -> None:
        """Delete the namespaces (their veth ends go with them) and the bridge; stop the
        processes in them first."""
        for namespace in self.namespaces:
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
        self.namespaces.clear()


Network = LoopbackNetwork | NamespaceNetwork


def make_network(names: list[str], use_namespaces: bool) -> Network:
    """Namespaces when asked for and possible, else loopback with the reason printed by the caller."""
    if not use_namespaces:
        return LoopbackNetwork(names, "network namespaces turned off (--no-netns)")
    if os.geteuid() != 0:
        return LoopbackNetwork(names, "network namespaces need root")
    try:
        return NamespaceNetwork(names)
    except (RuntimeError, OSError) as failure:
        return LoopbackNetwork(names, f"network namespaces could not be created: {failure}")
