// Shared plumbing for the KafkaJS scripts the compat tests run.
//
// BOOTSTRAP (host:port[,host:port]) names the brokers. A script calls run(async (kafka) => result):
// the result is printed as one JSON line on stdout; any error goes to stderr and exits 1.
// KafkaJS's own log lines go to stderr at WARN so stdout stays parseable.
'use strict';

const { Kafka, logLevel } = require('kafkajs');

function stderrLogCreator() {
  return ({ namespace, level, log }) => {
    const { message, ...extra } = log;
    process.stderr.write(`[kafkajs ${level}] ${namespace}: ${message} ${JSON.stringify(extra)}\n`);
  };
}

function makeKafka(extra = {}) {
  const brokers = (process.env.BOOTSTRAP || '').split(',').filter(Boolean);
  if (brokers.length === 0) {
    throw new Error('BOOTSTRAP is not set');
  }
  return new Kafka({
    clientId: 'kbroker-compat-js',
    brokers,
    logLevel: logLevel.WARN,
    logCreator: stderrLogCreator,
    connectionTimeout: 5000,
    requestTimeout: 15000,
    retry: { retries: 3, initialRetryTime: 200 },
    ...extra,
  });
}

function run(body) {
  Promise.resolve()
    .then(() => body(makeKafka()))
    .then((result) => {
      // Exit only once the answer is written: a pipe takes 64 KiB at a time.
      process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(0));
    })
    .catch((err) => {
      process.stderr.write(`error: ${err && err.stack ? err.stack : err}\n`, () => process.exit(1));
    });
}

module.exports = { makeKafka, run, stderrLogCreator };
