"""aiokafka's consumer against the log side of transactions in a real kbroker: transactional
batches produced over a socket with idempotent producer ids, ended by WriteTxnMarkers as a
coordinator sends them (kbroker/testing/txn_log.py), then read with isolation_level
read_committed and read_uncommitted. read_committed sees the committed and plain records only,
up to the first open transaction, skipping the aborted ones by Fetch's aborted_transactions;
read_uncommitted sees every data record; neither sees a marker. aiokafka decodes batches and
drops aborted transactions with its own code, independent of librdkafka and kafka-python.
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition

from kbroker.testing.raw_client import RawClient, create_topic
from kbroker.testing.txn_log import NO_VERIFICATION, write_mixed_transactions

TIMEOUT_S = 15


async def consume(bootstrap: str, topic: str, isolation: str, expected: int) -> list[tuple[int, bytes]]:
    """(offset, value) of the first `expected` records from offset 0, then whatever else arrives
    within one more empty fetch round."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                isolation_level=isolation)
    await consumer.start()
    partition = TopicPartition(topic, 0)
    consumer.assign([partition])
    consumer.seek(partition, 0)
    records: list[tuple[int, bytes]] = []
    try:
        deadline = asyncio.get_running_loop().time() + TIMEOUT_S
        while len(records) < expected and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(partition, timeout_ms=500)
            records += [(m.offset, m.value) for m in batch.get(partition, [])]
        # Whatever comes after the expected records is wrong: one more fetch round must bring none.
        batch = await consumer.getmany(partition, timeout_ms=500)
        records += [(m.offset, m.value) for m in batch.get(partition, [])]
        position = await consumer.position(partition)
    finally:
        await consumer.stop()
    return records + [(position, b"<position>")]


def test_aiokafka_reads_committed_records_only_under_read_committed(module_broker_factory):
    kbroker = module_broker_factory(NO_VERIFICATION)
    topic = "txn-aiokafka"
    create_topic(kbroker.port, topic)
    with RawClient(kbroker.port) as client:
        _producers, expected = write_mixed_transactions(client, topic)
    committed = asyncio.run(consume(kbroker.bootstrap, topic, "read_committed", len(expected["committed"])))
    # The consumer stops at the last stable offset: the open transaction's first offset.
    assert committed == expected["committed"] + [(expected["lso"], b"<position>")]
    uncommitted = asyncio.run(consume(kbroker.bootstrap, topic, "read_uncommitted", len(expected["uncommitted"])))
    assert uncommitted == expected["uncommitted"] + [(expected["lso"] + 1, b"<position>")]
