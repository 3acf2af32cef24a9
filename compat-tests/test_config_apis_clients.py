"""Topic and broker configs through real clients: confluent-kafka's AdminClient (DescribeConfigs and
IncrementalAlterConfigs) and KafkaJS's admin (DescribeConfigs v2 and the legacy AlterConfigs), against
a broker started with broker.id=1. kcat has no config commands.

Expectations are Apache Kafka's defaults and sources: retention.ms=604800000 from DEFAULT_CONFIG until
it is altered, then DYNAMIC_TOPIC_CONFIG; broker settings are read-only, and changing one is refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewTopic,
    ResourceType,
)

from kbroker.testing.tools import JS_DIR, run_kafkajs

BROKER_ID = 1
TIMEOUT_S = 15
WEEK_MS = "604800000"
INVALID_REQUEST = 42
DYNAMIC_TOPIC_CONFIG, DEFAULT_CONFIG = 1, 5

# KafkaJS script: create a topic, set retention.ms with AlterConfigs, describe it and the broker.
# It lives here rather than under js/ so this test file is self-contained; lib.js does the plumbing.
KAFKAJS_SCRIPT = """
'use strict';
const path = require('path');
const jsDir = process.env.KBROKER_JS_DIR;
const { run } = require(path.join(jsDir, 'lib'));
const { ConfigResourceTypes } = require(path.join(jsDir, 'node_modules', 'kafkajs'));
const [topic, brokerId] = process.argv.slice(2);

run(async (kafka) => {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions: 1, replicationFactor: 1 }], waitForLeaders: true });
    const describeTopic = () => admin.describeConfigs({
      resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: ['retention.ms', 'cleanup.policy'] }],
      includeSynonyms: true,
    });
    const before = await describeTopic();
    const altered = await admin.alterConfigs({
      resources: [{ type: ConfigResourceTypes.TOPIC, name: topic,
                    configEntries: [{ name: 'retention.ms', value: '86400000' }] }],
    });
    const after = await describeTopic();
    const broker = await admin.describeConfigs({
      resources: [{ type: ConfigResourceTypes.BROKER, name: brokerId, configNames: ['log.retention.hours'] }],
      includeSynonyms: false,
    });
    let refused = null;
    try {
      await admin.alterConfigs({
        resources: [{ type: ConfigResourceTypes.BROKER, name: brokerId,
                      configEntries: [{ name: 'log.retention.hours', value: '1' }] }],
      });
    } catch (err) {
      refused = { type: err.type, message: err.message };
    }
    return { before, altered, after, broker, refused };
  } finally {
    await admin.disconnect();
  }
});
"""


@pytest.fixture(scope="module")
def cluster(module_broker_factory):
    return module_broker_factory(f"broker.id={BROKER_ID}")


@pytest.fixture(scope="module")
def admin(cluster) -> AdminClient:
    return AdminClient({"bootstrap.servers": cluster.bootstrap})


def create_topic(admin: AdminClient, name: str) -> None:
    futures = admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)],
                                  request_timeout=TIMEOUT_S)
    futures[name].result(TIMEOUT_S)


def describe(admin: AdminClient, resource: ConfigResource) -> dict:
    return admin.describe_configs([resource], request_timeout=TIMEOUT_S)[resource].result(TIMEOUT_S)


def test_confluent_describe_and_incremental_alter_topic(admin):
    create_topic(admin, "confluent-configs")
    topic = ConfigResource(ResourceType.TOPIC, "confluent-configs")
    configs = describe(admin, topic)
    retention = configs["retention.ms"]
    assert (retention.value, retention.source) == (WEEK_MS, ConfigSource.DEFAULT_CONFIG.value)
    assert retention.is_default and not retention.is_read_only and not retention.is_sensitive
    assert configs["cleanup.policy"].value == "delete"

    change = ConfigResource(ResourceType.TOPIC, "confluent-configs", incremental_configs=[
        ConfigEntry("retention.ms", "86400000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND),
    ])
    admin.incremental_alter_configs([change], request_timeout=TIMEOUT_S)[change].result(TIMEOUT_S)

    configs = describe(admin, topic)
    assert (configs["retention.ms"].value, configs["retention.ms"].source) == (
        "86400000", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
    assert not configs["retention.ms"].is_default
    assert configs["cleanup.policy"].value == "delete,compact"
    synonyms = configs["retention.ms"].synonyms
    assert [(s.name, s.source) for s in synonyms.values()][:1] == [("retention.ms",
                                                                   ConfigSource.DYNAMIC_TOPIC_CONFIG.value)]


def test_confluent_broker_configs_are_read_only(admin):
    broker = ConfigResource(ResourceType.BROKER, str(BROKER_ID))
    configs = describe(admin, broker)
    hours = configs["log.retention.hours"]
    assert (hours.value, hours.source, hours.is_read_only) == ("168", ConfigSource.DEFAULT_CONFIG.value, True)
    assert configs["broker.id"].value == str(BROKER_ID)
    assert configs["broker.id"].source == ConfigSource.STATIC_BROKER_CONFIG.value

    change = ConfigResource(ResourceType.BROKER, str(BROKER_ID), incremental_configs=[
        ConfigEntry("log.retention.hours", "1", incremental_operation=AlterConfigOpType.SET)])
    future = admin.incremental_alter_configs([change], request_timeout=TIMEOUT_S)[change]
    with pytest.raises(KafkaException) as refused:
        future.result(TIMEOUT_S)
    assert "Cannot update these configs dynamically" in str(refused.value)


def test_confluent_unknown_topic(admin):
    future = admin.describe_configs([ConfigResource(ResourceType.TOPIC, "no-such-topic")],
                                    request_timeout=TIMEOUT_S)
    with pytest.raises(KafkaException) as failed:
        next(iter(future.values())).result(TIMEOUT_S)
    assert failed.value.args[0].name() == "UNKNOWN_TOPIC_OR_PART"


def test_kafkajs_describe_and_alter_configs(cluster, tmp_path):
    script = tmp_path / "config_apis.js"
    script.write_text(KAFKAJS_SCRIPT)
    result = run_kafkajs(str(script), cluster.bootstrap, "kafkajs-configs", str(BROKER_ID),
                         env={"KBROKER_JS_DIR": str(Path(JS_DIR))})

    def entries(answer: dict) -> dict:
        (resource,) = answer["resources"]
        assert resource["errorCode"] == 0, resource
        return {e["configName"]: e for e in resource["configEntries"]}

    before = entries(result["before"])
    assert set(before) == {"retention.ms", "cleanup.policy"}
    assert (before["retention.ms"]["configValue"], before["retention.ms"]["configSource"]) == (WEEK_MS,
                                                                                              DEFAULT_CONFIG)
    assert before["retention.ms"]["isDefault"] is True
    assert [r["errorCode"] for r in result["altered"]["resources"]] == [0]
    after = entries(result["after"])
    assert (after["retention.ms"]["configValue"], after["retention.ms"]["configSource"]) == ("86400000",
                                                                                            DYNAMIC_TOPIC_CONFIG)
    assert after["retention.ms"]["configSynonyms"][0]["configName"] == "retention.ms"
    broker = entries(result["broker"])
    assert broker["log.retention.hours"]["configValue"] == "168" and broker["log.retention.hours"]["readOnly"]
    assert result["refused"] is not None, "altering a broker setting was not refused"
    assert result["refused"]["type"] == "INVALID_REQUEST", json.dumps(result["refused"])
