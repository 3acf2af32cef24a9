// A KafkaJS transactional producer: commits 20 records with the offset 11 of partition 1 for
// group js-group (sendOffsets), then aborts 20 more with the offset 99.
//
// Usage: node transactions.js <topic>. Prints {"committed": 20, "aborted": 20}.
'use strict';

const { run } = require('./lib');

const PARTITIONS = 3;

function records(prefix) {
  return Array.from({ length: 20 }, (_, i) => ({ value: `${prefix}-${i}`, partition: i % PARTITIONS }));
}

run(async (kafka) => {
  const topic = process.argv[2];
  const producer = kafka.producer({ transactionalId: 'kafkajs-txn', idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  try {
    const committing = await producer.transaction();
    await committing.send({ topic, messages: records('js-commit') });
    await committing.sendOffsets({ consumerGroupId: 'js-group', topics: [{ topic, partitions: [{ partition: 1, offset: '11' }] }] });
    await committing.commit();
    const aborting = await producer.transaction();
    await aborting.send({ topic, messages: records('js-abort') });
    await aborting.sendOffsets({ consumerGroupId: 'js-group', topics: [{ topic, partitions: [{ partition: 1, offset: '99' }] }] });
    await aborting.abort();
  } finally {
    await producer.disconnect();
  }
  return { committed: 20, aborted: 20 };
});
