// One KafkaJS consumer-group member for the group compat tests, speaking the same stdout lines as
// compat-tests/test_groups_member.py: {"event": "assigned" | "records" | "committed" |
// "commit_failed" | "closed", ...}. Arguments: <topic> <group> <client id>; BOOTSTRAP names the
// broker. Round-robin assignment (KafkaJS's only built-in assigner), 6 s session, 1 s heartbeats,
// 500 ms fetch waits, no auto-commit: each batch is committed before the next. A "close" line (or
// end of file) on stdin disconnects cleanly (LeaveGroup); the tests SIGKILL it to play a member
// that just dies.
'use strict';

const { makeKafka } = require('./lib');

function emit(event, fields = {}) {
  process.stdout.write(JSON.stringify({ event, ...fields }) + '\n');
}

async function main() {
  const [topic, group, clientId] = process.argv.slice(2);
  const kafka = makeKafka({ clientId });
  const consumer = kafka.consumer({
    groupId: group,
    sessionTimeout: 6000,
    heartbeatInterval: 1000,
    rebalanceTimeout: 10000,
    // KafkaJS heartbeats between fetches: a short fetch wait keeps rebalances and closes quick.
    maxWaitTimeInMs: 500,
    retry: { retries: 10, initialRetryTime: 100 },
  });
  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
    emit('assigned', { partitions: (payload.memberAssignment[topic] || []).slice().sort((a, b) => a - b) });
  });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    eachBatch: async ({ batch }) => {
      if (batch.messages.length === 0) return;
      emit('records', {
        records: batch.messages.map((m) => [batch.partition, Number(m.offset), m.value.toString()]),
      });
      const next = String(Number(batch.messages[batch.messages.length - 1].offset) + 1);
      try {
        await consumer.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: next }]);
        emit('committed', { offsets: { [batch.partition]: Number(next) } });
      } catch (err) {
        emit('commit_failed', { error: String(err) });
      }
    },
  });

  let closing = false;
  const close = async () => {
    if (closing) return;
    closing = true;
    await consumer.disconnect();
    emit('closed');
    process.exit(0);
  };
  let buffered = '';
  process.stdin.on('data', (chunk) => {
    buffered += chunk.toString();
    if (buffered.split('\n').some((line) => line.trim() === 'close')) close();
  });
  process.stdin.on('end', close);
}

main().catch((err) => {
  process.stderr.write(`error: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
