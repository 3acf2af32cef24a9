// Runs a list of KafkaJS admin calls in order and reports each result or error.
//
// Usage: node admin_steps.js <steps.json>, where steps.json is [[method, argument], ...] and
// method is an admin() method (createTopics, fetchTopicMetadata, describeConfigs, ...).
// Prints {"steps": [{"result": ...} | {"error": {name, type, code, message, errors}}, ...]}:
// a failing call does not stop the later ones. `errors` lists {type, code} of the broker errors
// inside an aggregate error (createTopics reports one per topic that way); an error KafkaJS wrapped
// after retrying (KafkaJSNumberOfRetriesExceeded) is reported as the broker error it wraps (its cause).
'use strict';

const fs = require('fs');
const { run } = require('./lib');

function describeError(outer) {
  const err = outer.name === 'KafkaJSNumberOfRetriesExceeded' && outer.cause ? outer.cause : outer;
  return {
    name: err.name,
    type: err.type || null,
    code: err.code === undefined ? null : err.code,
    message: err.message,
    errors: (err.errors || []).map((e) => ({ type: e.type || null, code: e.code === undefined ? null : e.code })),
  };
}

run(async (kafka) => {
  const steps = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  const admin = kafka.admin({ retry: { retries: 0 } });
  await admin.connect();
  const outcomes = [];
  try {
    for (const [method, argument] of steps) {
      try {
        const result = await admin[method](argument);
        outcomes.push({ result: result === undefined ? null : result });
      } catch (err) {
        outcomes.push({ error: describeError(err) });
      }
    }
  } finally {
    await admin.disconnect();
  }
  return { steps: outcomes };
});
