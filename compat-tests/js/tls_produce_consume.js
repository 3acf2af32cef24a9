// Produces records over TLS with KafkaJS, then consumes them back through a consumer group.
//
// Usage: node tls_produce_consume.js <topic> <count>, with BOOTSTRAP naming a TLS listener and
// SSL_CA (a PEM file of trusted CAs), optionally SSL_CERT and SSL_KEY (PEM files: the client's
// certificate chain and key, for mutual TLS). Prints {"acked": n, "values": [...]} (the values
// consumed, in order).
'use strict';

const { run } = require('./lib');

run(async (kafka) => {  // lib.js's makeKafka takes TLS from SSL_CA, SSL_CERT and SSL_KEY
  const [topic, countText] = process.argv.slice(2);
  const count = Number(countText);
  const producer = kafka.producer({ allowAutoTopicCreation: true });
  await producer.connect();
  let acked = 0;
  try {
    const messages = Array.from({ length: count }, (_, i) => ({ value: `kafkajs-${i}` }));
    const result = await producer.send({ topic, acks: -1, messages });
    acked = result.length ? count : 0;
  } finally {
    await producer.disconnect();
  }
  const consumer = kafka.consumer({ groupId: `tls-${topic}` });
  await consumer.connect();
  const values = [];
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`consumed ${values.length} of ${count}`)), 30000);
      consumer.run({
        eachMessage: async ({ message }) => {
          values.push(message.value.toString());
          if (values.length >= count) {
            clearTimeout(timer);
            resolve();
          }
        },
      }).catch(reject);
    });
  } finally {
    await consumer.disconnect();
  }
  return { acked, values };
});
