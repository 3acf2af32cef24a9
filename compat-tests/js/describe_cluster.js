// Prints admin.describeCluster(): {"brokers": [{nodeId, host, port}], "controller": id, "clusterId": "..."}.
'use strict';

const { run } = require('./lib');

run(async (kafka) => {
  const admin = kafka.admin();
  await admin.connect();
  try {
    return await admin.describeCluster();
  } finally {
    await admin.disconnect();
  }
});
