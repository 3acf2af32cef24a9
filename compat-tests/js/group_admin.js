// Prints what KafkaJS's admin client says of a consumer group, for the group compat tests:
// {"groups": admin.listGroups().groups, "described": admin.describeGroups([group]).groups,
//  "offsets": the partitions of admin.fetchOffsets({groupId, topics: [topic]})}.
// With "delete" as a third argument it deletes the group instead and prints
// {"deleted": admin.deleteGroups([group]), "groups": admin.listGroups().groups afterwards}.
// Arguments: <group> <topic> [delete]; BOOTSTRAP names the broker.
'use strict';

const { run } = require('./lib');

run(async (kafka) => {
  const [groupId, topic, action] = process.argv.slice(2);
  const admin = kafka.admin();
  await admin.connect();
  try {
    if (action === 'delete') {
      const deleted = await admin.deleteGroups([groupId]);
      return { deleted, groups: (await admin.listGroups()).groups };
    }
    const { groups } = await admin.listGroups();
    const described = (await admin.describeGroups([groupId])).groups.map((g) => ({
      groupId: g.groupId,
      state: g.state,
      protocolType: g.protocolType,
      protocol: g.protocol,
      members: g.members.map((m) => ({ memberId: m.memberId, clientId: m.clientId, clientHost: m.clientHost })),
    }));
    const fetched = await admin.fetchOffsets({ groupId, topics: [topic] });
    const offsets = fetched.find((t) => t.topic === topic).partitions;
    return { groups, described, offsets };
  } finally {
    await admin.disconnect();
  }
});
