"""A broker restarted at once after kill -9 finds its previous run's ephemeral /brokers/ids/<id>
still in ZooKeeper until the old session expires (issue 16, bug 7): it waits for it, says so in
one line and registers, with no traceback; it listens only once registered, so no client is told
by its empty metadata cache that the topics do not exist (found by scripts/chaos, seed 3). A registration held by a session that never expires
(another live broker with the same id) stops the start with one line. Real ZooKeeper, real
broker processes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from kazoo.client import KazooClient

from kbroker.testing.cluster import KafkaCluster
from kbroker.testing.processes import BrokerFailed

SESSION_TIMEOUT_MS = 4000  # the fixture's ZooKeeper (tickTime 2000) allows no less
OVERRIDES = (f"zookeeper.session.timeout.ms={SESSION_TIMEOUT_MS}",)
WAITING_LINE = "is still registered in ZooKeeper by an earlier session"


@contextmanager
def id_held_by_a_live_session(zookeeper: str, broker_id: int) -> Iterator[str]:
    """A fresh chroot whose /brokers/ids/<broker_id> belongs to a session that will not expire
    while the block runs; yields the chroot."""
    chroot = f"/kbroker-registration-{uuid.uuid4().hex[:8]}"
    other = KazooClient(hosts=zookeeper, timeout=10)
    other.start(timeout=10)
    try:
        other.create(f"{chroot}/brokers/ids/{broker_id}",
                     b'{"version":5,"host":"elsewhere","port":9092,"endpoints":[]}', ephemeral=True, makepath=True)
        yield chroot
    finally:
        other.stop()
        other.close()


def test_restart_right_after_kill_9_waits_for_the_old_registration_and_comes_up(zookeeper, broker_factory):
    with KafkaCluster(broker_factory, zookeeper, size=1, overrides=OVERRIDES) as cluster:
        broker = cluster.brokers[1]
        first_epoch = cluster.broker_epoch(1)
        assert first_epoch is not None

        cluster.kill(1)
        assert cluster.broker_epoch(1) == first_epoch  # the session outlives the process
        cluster.restart(1)
        cluster.wait_for(lambda: cluster.broker_epoch(1) not in (None, first_epoch),
                         timeout=SESSION_TIMEOUT_MS / 1000 * 4, what="the restarted broker to register anew")
        assert broker.alive()
        cluster.wait_for(lambda: len(cluster.metadata(1).brokers) == 1, what="the broker to serve metadata again")

    output = broker.output()
    last_run = output.rsplit("=== starting:", 1)[1]
    assert last_run.count(WAITING_LINE) == 1
    assert "Traceback" not in output and "NodeExists" not in output
    # A normal start logs the ZooKeeper session at INFO; WARNING is for a real loss.
    assert "INFO kbroker.server: ZooKeeper session connected" in last_run
    assert "WARNING kbroker.server: ZooKeeper session" not in output


def test_an_id_held_by_a_live_session_stops_the_start_with_one_line(zookeeper, broker_factory):
    with id_held_by_a_live_session(zookeeper, 7) as chroot:
        # It waits for the registration before it listens (an unregistered broker would answer
        # Metadata from an empty cache), gives up, and exits 1 without ever serving.
        broker = broker_factory.start("broker.id=7", f"zookeeper.connect={zookeeper}{chroot}", *OVERRIDES,
                                      start=False)
        with pytest.raises(BrokerFailed, match="exited with 1 before serving"):
            broker.start(timeout=SESSION_TIMEOUT_MS / 1000 * 3)
    output = broker.output()
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if " ERROR " in line]
    assert errors == [errors[0]] and "cannot start: broker.id 7 is registered in ZooKeeper by another session" \
        in errors[0]


def test_a_start_that_never_answers_leaves_every_threads_stack_in_the_output(zookeeper, broker_factory):
    """A broker that does not answer ApiVersions in time (here: still waiting for a registration a
    live session holds) is killed with SIGABRT first, so its log says where it was stuck
    (faulthandler's dump; scripts/chaos's failing soak had only "did not answer" to go on)."""
    with id_held_by_a_live_session(zookeeper, 8) as chroot:
        broker = broker_factory.start("broker.id=8", f"zookeeper.connect={zookeeper}{chroot}", *OVERRIDES,
                                      start=False)
        with pytest.raises(BrokerFailed, match="did not answer ApiVersions") as failed:
            broker.start(timeout=1.0)
    assert not broker.alive()
    assert "Fatal Python error: Aborted" in failed.value.args[0]  # the tail in the message carries it
    stacks = broker.output().split("Fatal Python error: Aborted", 1)[1]
    assert "most recent call first" in stacks and "kbroker/cli.py" in stacks
