// Logs in with SASL (SASL_MECHANISM: plain, scram-sha-256 or scram-sha-512; SASL_USERNAME,
// SASL_PASSWORD), produces the values given as arguments to TOPIC (one partition) and reads them
// back with a consumer group. Prints {"offsets": [...], "values": [...]}.
'use strict';

const { makeKafka } = require('./lib');

async function main() {
  // KafkaJS re-authenticates once less than reauthenticationThreshold ms of the session are
  // left (default 10 s): below the broker's connections.max.reauth.ms, or it would try on
  // every request and Kafka refuses more than one re-authentication a second.
  // lib.js's makeKafka takes the login from SASL_MECHANISM, SASL_USERNAME and SASL_PASSWORD.
  const kafka = makeKafka({ reauthenticationThreshold: 1000 });
  const topic = process.env.TOPIC;
  const values = process.argv.slice(2);
  const producer = kafka.producer({ allowAutoTopicCreation: true });
  await producer.connect();
  const sent = await producer.send({ topic, acks: -1, messages: values.map((value) => ({ value })) });
  await producer.disconnect();
  const consumer = kafka.consumer({ groupId: `sasl-${topic}` });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const received = [];
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`read ${received.length} of ${values.length}`)), 30000);
    consumer.run({
      eachMessage: async ({ message }) => {
        received.push(message.value.toString());
        if (received.length === values.length) {
          clearTimeout(timer);
          resolve();
        }
      },
    }).catch(reject);
  });
  await consumer.disconnect();
  return { offsets: sent.map((r) => r.baseOffset), values: received };
}

main()
  .then((result) => process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(0)))
  .catch((err) => process.stderr.write(`error: ${err && err.stack ? err.stack : err}\n`, () => process.exit(1)));
