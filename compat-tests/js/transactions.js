// A KafkaJS transactional producer: commits 20 records, then aborts 20 more.
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
    await committing.commit();
    const aborting = await producer.transaction();
    await aborting.send({ topic, messages: records('js-abort') });
    await aborting.abort();
  } finally {
    await producer.disconnect();
  }
  return { committed: 20, aborted: 20 };
});
