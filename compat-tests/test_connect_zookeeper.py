"""The `zookeeper` fixture gives a real, usable ZooKeeper: kazoo (the client kbroker uses in
cluster mode) can write and read znodes, and the four-letter words the helper enables answer.
"""

from __future__ import annotations

from kazoo.client import KazooClient

from kbroker.testing.zookeeper import four_letter_word


def test_zookeeper_answers_four_letter_words(zookeeper_process):
    assert four_letter_word(zookeeper_process.port, "ruok") == b"imok"
    assert b"Mode: standalone" in four_letter_word(zookeeper_process.port, "srvr")


def test_kazoo_writes_and_reads_znodes(zookeeper):
    client = KazooClient(hosts=zookeeper, timeout=10)
    client.start(timeout=10)
    try:
        client.create("/kbroker-fixture-check/child", b'{"version":1}', makepath=True, ephemeral=True)
        data, stat = client.get("/kbroker-fixture-check/child")
        children = client.get_children("/kbroker-fixture-check")
    finally:
        client.stop()
        client.close()

    assert data == b'{"version":1}'
    assert stat.ephemeralOwner != 0
    assert children == ["child"]
