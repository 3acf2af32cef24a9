// Shared plumbing for the KafkaJS scripts the compat tests run.
//
// BOOTSTRAP (host:port[,host:port]) names the brokers. A script calls run(async (kafka) => result):
// the result is printed as one JSON line on stdout; any error goes to stderr and exits 1.
// KafkaJS's own log lines go to stderr at WARN so stdout stays parseable.
//
// The connection's security comes from the environment when it is set: SSL_CA (a PEM file of
// trusted CAs) switches TLS on, SSL_CERT and SSL_KEY (PEM files) add a client certificate for
// mutual TLS; SASL_MECHANISM (plain, scram-sha-256, scram-sha-512) with SASL_USERNAME and
// SASL_PASSWORD logs in. A script's own options win over these.
'use strict';

const fs = require('fs');
const { Kafka, logLevel } = require('kafkajs');

function stderrLogCreator() {
  return ({ namespace, level, log }) => {
    const { message, ...extra } = log;
    process.stderr.write(`[kafkajs ${level}] ${namespace}: ${message} ${JSON.stringify(extra)}\n`);
  };
}

function sslOptions() {
  const ssl = { ca: [fs.readFileSync(process.env.SSL_CA, 'utf8')] };
  if (process.env.SSL_CERT) {
    ssl.cert = fs.readFileSync(process.env.SSL_CERT, 'utf8');
    ssl.key = fs.readFileSync(process.env.SSL_KEY, 'utf8');
  }
  return ssl;
}

function securityFromEnv() {
  const security = {};
  if (process.env.SSL_CA) {
    security.ssl = sslOptions();
  }
  if (process.env.SASL_MECHANISM) {
    security.sasl = {
      mechanism: process.env.SASL_MECHANISM,
      username: process.env.SASL_USERNAME,
      password: process.env.SASL_PASSWORD,
    };
  }
  return security;
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
    ...securityFromEnv(),
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
