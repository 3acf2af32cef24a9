// Looks offsets up with KafkaJS's admin client (ListOffsets).
//
// Usage: node offsets_by_time.js <topic> <timestamp> [<timestamp> ...]
// Prints {"byTimestamp": {ts: [{partition, offset}]}, "offsets": [{partition, offset, high, low}]}:
// fetchTopicOffsetsByTimestamp for each timestamp, and fetchTopicOffsets (earliest and latest).
'use strict';

const { run } = require('./lib');

run(async (kafka) => {
  const [topic, ...timestamps] = process.argv.slice(2);
  const admin = kafka.admin();
  await admin.connect();
  try {
    const byTimestamp = {};
    for (const timestamp of timestamps) {
      byTimestamp[timestamp] = await admin.fetchTopicOffsetsByTimestamp(topic, Number(timestamp));
    }
    return { byTimestamp, offsets: await admin.fetchTopicOffsets(topic) };
  } finally {
    await admin.disconnect();
  }
});
