// Produces records with KafkaJS's idempotent producer, then reads the partitions back.
//
// Usage: node produce_read.js <spec.json> <answer.json>, where spec.json is
//   {"topic": t, "compression": "none"|"gzip", "chunk": n,
//    "records": [{"partition": p, "timestamp": ms, "key": b64|null, "value": b64|null,
//                 "headers": [[name, b64], ...]}, ...]}
// Records are sent in order, `chunk` per send() call (one request each, one batch per partition).
// Writes {"acks": [[partition, baseOffset, count], ...], "partitions": {p: {highWatermark, messages}}}
// to answer.json (keys, values and header values in base64) and prints {"answer": path}: the answer
// is megabytes, more than a pipe takes before lib.js's run() exits the process.
'use strict';

const fs = require('fs');
const { CompressionTypes } = require('kafkajs');
const { run } = require('./lib');
const { readPartitions } = require('./partition_reader');

const CODECS = { none: CompressionTypes.None, gzip: CompressionTypes.GZIP };

const fromBase64 = (text) => (text === null ? null : Buffer.from(text, 'base64'));

// KafkaJS takes headers as an object; a repeated name becomes an array, kept in order.
function headerObject(pairs) {
  const headers = {};
  for (const [name, value] of pairs) {
    const buffer = fromBase64(value);
    if (!(name in headers)) {
      headers[name] = buffer;
    } else if (Array.isArray(headers[name])) {
      headers[name].push(buffer);
    } else {
      headers[name] = [headers[name], buffer];
    }
  }
  return headers;
}

run(async (kafka) => {
  const spec = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: true });
  await producer.connect();
  const acks = [];
  try {
    for (let start = 0; start < spec.records.length; start += spec.chunk) {
      const chunk = spec.records.slice(start, start + spec.chunk);
      const metadata = await producer.send({
        topic: spec.topic,
        acks: -1,
        compression: CODECS[spec.compression],
        messages: chunk.map((r) => ({
          partition: r.partition,
          timestamp: String(r.timestamp),
          key: fromBase64(r.key),
          value: fromBase64(r.value),
          headers: headerObject(r.headers),
        })),
      });
      for (const m of metadata) {
        const count = chunk.filter((r) => r.partition === m.partition).length;
        acks.push([m.partition, Number(m.baseOffset), count]);
      }
    }
  } finally {
    await producer.disconnect();
  }
  const partitions = [...new Set(spec.records.map((r) => r.partition))].sort((a, b) => a - b);
  const answer = { acks, partitions: await readPartitions(spec.topic, partitions) };
  fs.writeFileSync(process.argv[3], JSON.stringify(answer));
  return { answer: process.argv[3] };
});
