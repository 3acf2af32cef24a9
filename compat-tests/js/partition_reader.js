// Reads whole partitions with KafkaJS's own Fetch request and record decoding, without a group.
//
// KafkaJS only consumes through a consumer group, which picks partitions and starting offsets
// itself; to read whole partitions from offset 0 this goes one level down: KafkaJS's Cluster
// (metadata, leaders, connections) and Broker.fetch, the same calls its consumer makes once it
// owns a partition. Records come back as KafkaJS
// decodes them (decompressed, headers as an object), turned into JSON-friendly plain data.
'use strict';

const Cluster = require('kafkajs/src/cluster');
const { createLogger, LEVELS } = require('kafkajs/src/loggers');
const defaultSocketFactory = require('kafkajs/src/network/socketFactory');
const { stderrLogCreator } = require('./lib');

const READ_COMMITTED = 1;
const FETCH_MAX_BYTES = 4 * 1024 * 1024;

function newCluster() {
  const brokers = (process.env.BOOTSTRAP || '').split(',').filter(Boolean);
  return new Cluster({
    logger: createLogger({ level: LEVELS.WARN, logCreator: stderrLogCreator }),
    socketFactory: defaultSocketFactory(),
    brokers,
    clientId: 'kbroker-compat-js-reader',
    connectionTimeout: 5000,
    requestTimeout: 15000,
    enforceRequestTimeout: true,
    metadataMaxAge: 300000,
    retry: { retries: 3, initialRetryTime: 200 },
    allowAutoTopicCreation: false,
    isolationLevel: READ_COMMITTED,
  });
}

const base64 = (buffer) => (buffer === null || buffer === undefined ? null : buffer.toString('base64'));

// KafkaJS folds repeated header names into an array under one key; unfold them in order.
function headerPairs(headers) {
  const pairs = [];
  for (const [name, value] of Object.entries(headers || {})) {
    for (const one of Array.isArray(value) ? value : [value]) {
      pairs.push([name, base64(one)]);
    }
  }
  return pairs;
}

function plainMessage(message) {
  return {
    offset: Number(message.offset),
    timestamp: Number(message.timestamp),
    key: base64(message.key),
    value: base64(message.value),
    headers: headerPairs(message.headers),
  };
}

// Every record of topic/partition from offset 0 up to the high watermark.
async function readPartition(cluster, topic, partition) {
  const leaders = cluster.findLeaderForPartitions(topic, [partition]);
  const [nodeId] = Object.keys(leaders);
  const broker = await cluster.findBroker({ nodeId });
  const messages = [];
  let next = 0;
  for (;;) {
    const response = await broker.fetch({
      replicaId: -1,
      isolationLevel: READ_COMMITTED,
      maxWaitTime: 100,
      minBytes: 1,
      maxBytes: FETCH_MAX_BYTES,
      topics: [{ topic, partitions: [{ partition, fetchOffset: String(next), maxBytes: FETCH_MAX_BYTES }] }],
    });
    const data = response.responses[0].partitions[0];
    if (data.errorCode !== 0) {
      throw new Error(`fetch ${topic}-${partition} at ${next}: error code ${data.errorCode}`);
    }
    // A fetch may start inside a batch that begins before the offset asked for.
    const fresh = data.messages.filter((m) => Number(m.offset) >= next);
    messages.push(...fresh.map(plainMessage));
    if (fresh.length > 0) {
      next = Number(fresh[fresh.length - 1].offset) + 1;
    }
    if (next >= Number(data.highWatermark)) {
      return { highWatermark: Number(data.highWatermark), messages };
    }
    if (fresh.length === 0) {
      throw new Error(`fetch ${topic}-${partition} at ${next} returned nothing below the high watermark`);
    }
  }
}

// {partition: {highWatermark, messages}} for the given partitions of topic.
async function readPartitions(topic, partitions) {
  const cluster = newCluster();
  await cluster.connect();
  try {
    await cluster.addTargetTopic(topic);
    await cluster.refreshMetadata();
    const result = {};
    for (const partition of partitions) {
      result[partition] = await readPartition(cluster, topic, partition);
    }
    return result;
  } finally {
    await cluster.disconnect();
  }
}

module.exports = { readPartitions };
