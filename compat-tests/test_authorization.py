"""The ACL authorizer (authorizer.class.name=kafka.security.authorizer.AclAuthorizer) through real
clients: confluent-kafka and kafka-python manage ACLs of every pattern type; a principal without
rights gets Kafka's authorization errors from the producer, the consumer and the admin client, and
no more once an ACL grants them; DENY beats ALLOW; super.users bypass; `kbroker acls` works
against it; ACLs written straight into ZooKeeper in Kafka's format are enforced by every broker
of a 3-broker cluster within a second; a strict cluster replicates once its brokers hold
CLUSTER_ACTION; kcat sees only describable topics; a transactional producer needs WRITE on its
transactional id.

On PLAINTEXT every client is User:ANONYMOUS. The single broker runs with
allow.everyone.if.no.acl.found=false; its store is seeded before it starts, as
kafka-acls.sh --authorizer-properties would, with one ACL: ANONYMOUS may do anything on the
cluster (create topics, manage ACLs) but nothing on any topic or group until granted.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)
from kazoo.client import KazooClient

from kbroker.metadata.znode_store import EmbeddedZNodeStore
from kbroker.testing.cluster import KafkaCluster
from kbroker.testing.raw_client import RawClient
from kbroker.testing.tools import kcat_metadata, run_kafkajs, run_kcat
from kbroker.testing.waiting import eventually

TIMEOUT_S = 15
AUTHORIZER = "authorizer.class.name=kafka.security.authorizer.AclAuthorizer"
ANONYMOUS = "User:ANONYMOUS"
CLUSTER_ALL = {"version": 1, "acls": [{"principal": ANONYMOUS, "permissionType": "Allow", "operation": "All",
                                       "host": "*"}]}


def seeded_broker(factory, *overrides: str):
    broker = factory.start(AUTHORIZER, "allow.everyone.if.no.acl.found=false", *overrides, start=False)
    store = EmbeddedZNodeStore(str(broker.log_dir))
    store.create("/kafka-acl/Cluster/kafka-cluster", json.dumps(CLUSTER_ALL).encode(), makepath=True)
    store.close()
    return broker.start()


@pytest.fixture(scope="module")
def kbroker(module_broker_factory):
    return seeded_broker(module_broker_factory)


@pytest.fixture(scope="module")
def admin(kbroker) -> AdminClient:
    return AdminClient({"bootstrap.servers": kbroker.bootstrap})


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_topic(admin: AdminClient, name: str) -> None:
    [future] = admin.create_topics([NewTopic(name, 1, 1)], request_timeout=TIMEOUT_S).values()
    future.result(timeout=TIMEOUT_S)


def acl(kind: ResourceType, name: str, operation: AclOperation, permission=AclPermissionType.ALLOW,
        pattern=ResourcePatternType.LITERAL, principal: str = ANONYMOUS) -> AclBinding:
    return AclBinding(kind, name, pattern, principal, "*", operation, permission)


def add(admin: AdminClient, *bindings: AclBinding) -> None:
    for future in admin.create_acls(list(bindings), request_timeout=TIMEOUT_S).values():
        future.result(timeout=TIMEOUT_S)


def produce_error(bootstrap: str, topic: str, **config: str) -> int | None:
    """One record through a fresh producer: None when delivered, else the error code."""
    outcome: list[KafkaError | None] = []
    producer = Producer({"bootstrap.servers": bootstrap, "message.timeout.ms": 5000, **config})
    producer.produce(topic, b"v", on_delivery=lambda err, _msg: outcome.append(err))
    producer.flush(TIMEOUT_S)
    assert outcome, "no delivery report"
    return None if outcome[0] is None else outcome[0].code()


def consume_error(bootstrap: str, topic: str, group: str) -> int | None:
    """Subscribe with a fresh consumer and poll: the first error's code, or None once a record came."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest"})
    try:
        consumer.subscribe([topic])
        for _ in range(40):
            message = consumer.poll(0.5)
            if message is None:
                continue
            return None if message.error() is None else message.error().code()
        raise AssertionError("neither a record nor an error")
    finally:
        consumer.close()


def test_a_producer_without_write_is_refused_until_an_acl_grants_it(kbroker, admin):
    topic = unique("orders")
    create_topic(admin, topic)
    assert produce_error(kbroker.bootstrap, topic) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    add(admin, acl(ResourceType.TOPIC, topic, AclOperation.WRITE))
    eventually(lambda: produce_error(kbroker.bootstrap, topic) is None, timeout=5)


def test_a_consumer_without_read_on_its_group_then_its_topic_is_refused(kbroker, admin):
    topic, group = unique("events"), unique("readers")
    create_topic(admin, topic)
    add(admin, acl(ResourceType.TOPIC, topic, AclOperation.WRITE))
    assert produce_error(kbroker.bootstrap, topic) is None
    assert consume_error(kbroker.bootstrap, topic, group) == KafkaError.GROUP_AUTHORIZATION_FAILED
    add(admin, acl(ResourceType.GROUP, group[:8], AclOperation.READ, pattern=ResourcePatternType.PREFIXED))
    assert consume_error(kbroker.bootstrap, topic, group) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    add(admin, acl(ResourceType.TOPIC, topic, AclOperation.READ))
    assert consume_error(kbroker.bootstrap, topic, group) is None


def test_a_transactional_producer_needs_write_on_its_transactional_id(kbroker, admin):
    topic, transactional_id = unique("txn"), unique("tx")
    create_topic(admin, topic)
    add(admin, acl(ResourceType.TOPIC, topic, AclOperation.WRITE))

    def commit_one() -> None:
        producer = Producer({"bootstrap.servers": kbroker.bootstrap, "transactional.id": transactional_id})
        producer.init_transactions(TIMEOUT_S)
        producer.begin_transaction()
        producer.produce(topic, b"v")
        producer.commit_transaction(TIMEOUT_S)

    with pytest.raises(KafkaException) as raised:
        commit_one()
    assert raised.value.args[0].code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    add(admin, acl(ResourceType.TRANSACTIONAL_ID, transactional_id, AclOperation.WRITE))
    commit_one()


def test_aiokafka_producer_is_refused_until_an_acl_grants_it(kbroker, admin):
    import asyncio

    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import TopicAuthorizationFailedError

    topic = unique("aio")
    create_topic(admin, topic)

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kbroker.bootstrap, request_timeout_ms=5000)
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"v")
        finally:
            await producer.stop()

    with pytest.raises(TopicAuthorizationFailedError):
        asyncio.run(send())
    add(admin, acl(ResourceType.TOPIC, topic, AclOperation.WRITE))
    asyncio.run(send())


def test_deny_beats_allow(kbroker, admin):
    topic = unique("ledger")
    create_topic(admin, topic)
    add(admin, acl(ResourceType.TOPIC, topic, AclOperation.ALL),
        acl(ResourceType.TOPIC, "*", AclOperation.WRITE, permission=AclPermissionType.DENY))
    assert produce_error(kbroker.bootstrap, topic) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    [future] = admin.delete_acls([AclBindingFilter(ResourceType.TOPIC, "*", ResourcePatternType.LITERAL, None, None,
                                                   AclOperation.ANY, AclPermissionType.DENY)]).values()
    assert len(future.result(timeout=TIMEOUT_S)) == 1
    assert produce_error(kbroker.bootstrap, topic) is None


def test_admin_operations_get_topic_authorization_failed(admin):
    topic = unique("kept")
    create_topic(admin, topic)
    [future] = admin.delete_topics([topic], request_timeout=TIMEOUT_S).values()
    with pytest.raises(KafkaException) as raised:
        future.result(timeout=TIMEOUT_S)
    assert raised.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_metadata_leaves_out_topics_the_principal_may_not_describe(kbroker, admin):
    hidden, shown = unique("hidden"), unique("shown")
    create_topic(admin, hidden)
    create_topic(admin, shown)
    add(admin, acl(ResourceType.TOPIC, shown, AclOperation.READ))
    topics = admin.list_topics(timeout=TIMEOUT_S).topics
    assert shown in topics and hidden not in topics
    with RawClient(kbroker.port) as client:  # Metadata v10: authorized operations from the authorizer
        answer = client.call(3, 10, {"topics": [{"name": shown, "topic_id": uuid.UUID(int=0)}],
                                     "allow_auto_topic_creation": False,
                                     "include_cluster_authorized_operations": True,
                                     "include_topic_authorized_operations": True})
    [entry] = answer["topics"]
    assert entry["topic_authorized_operations"] == (1 << 3) | (1 << 8)  # READ, and DESCRIBE it implies
    assert answer["cluster_authorized_operations"] == sum(1 << op for op in (5, 7, 8, 9, 10, 11, 12))


def test_kcat_sees_only_describable_topics_and_is_refused_a_write(kbroker, admin):
    hidden, shown = unique("kcat-hidden"), unique("kcat-shown")
    create_topic(admin, hidden)
    create_topic(admin, shown)
    add(admin, acl(ResourceType.TOPIC, shown, AclOperation.DESCRIBE))
    names = {t["topic"] for t in kcat_metadata(kbroker.bootstrap)["topics"]}
    assert shown in names and hidden not in names
    produced = run_kcat(kbroker.bootstrap, "-P", "-t", shown, input_text="v\n", check=False)
    assert produced.returncode != 0 and "Topic authorization failed" in produced.stderr


def test_confluent_admin_manages_acls_of_every_pattern_type(admin):
    name = unique("acl")
    literal = acl(ResourceType.TOPIC, name, AclOperation.READ, principal="User:alice")
    prefixed = acl(ResourceType.TOPIC, name[:6], AclOperation.WRITE, pattern=ResourcePatternType.PREFIXED,
                   principal="User:alice")
    group = acl(ResourceType.GROUP, name, AclOperation.DESCRIBE, permission=AclPermissionType.DENY,
                principal="User:alice")
    add(admin, literal, prefixed, group)

    def described(pattern: ResourcePatternType, kind=ResourceType.ANY, name_filter: str | None = name) -> set:
        found = admin.describe_acls(AclBindingFilter(kind, name_filter, pattern, "User:alice", None, AclOperation.ANY,
                                                     AclPermissionType.ANY), request_timeout=TIMEOUT_S)
        return set(found.result(timeout=TIMEOUT_S))

    assert described(ResourcePatternType.MATCH, ResourceType.TOPIC) == {literal, prefixed}
    assert described(ResourcePatternType.ANY) == {literal, group}
    assert described(ResourcePatternType.PREFIXED, name_filter=None) >= {prefixed}
    [future] = admin.delete_acls([AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, "User:alice",
                                                   None, AclOperation.ANY, AclPermissionType.ANY)]).values()
    assert {literal, prefixed, group} <= set(future.result(timeout=TIMEOUT_S))
    assert described(ResourcePatternType.ANY, name_filter=None) == set()


def test_confluent_create_acls_refuses_a_bad_binding_alone(admin):
    bad = acl(ResourceType.BROKER, "not-the-cluster", AclOperation.ALTER)
    good = acl(ResourceType.TOPIC, unique("fine"), AclOperation.READ, principal="User:zed")
    futures = admin.create_acls([bad, good], request_timeout=TIMEOUT_S)
    futures[good].result(timeout=TIMEOUT_S)
    with pytest.raises(KafkaException) as raised:
        futures[bad].result(timeout=TIMEOUT_S)
    assert raised.value.args[0].code() == KafkaError.INVALID_REQUEST


def test_kafka_python_admin_manages_acls(kbroker):
    from kafka.admin import (
        ACL,
        ACLFilter,
        ACLOperation,
        ACLPermissionType,
        KafkaAdminClient,
        ResourcePattern,
        ResourcePatternFilter,
    )
    from kafka.admin import ACLResourcePatternType as PatternType
    from kafka.admin import ResourceType as KpResourceType

    name = unique("kp")
    client = KafkaAdminClient(bootstrap_servers=kbroker.bootstrap)
    try:
        bindings = [ACL("User:kp", "*", ACLOperation.READ, ACLPermissionType.ALLOW,
                        ResourcePattern(KpResourceType.TOPIC, name, PatternType.LITERAL)),
                    ACL("User:kp", "*", ACLOperation.WRITE, ACLPermissionType.ALLOW,
                        ResourcePattern(KpResourceType.TOPIC, name[:4], PatternType.PREFIXED))]
        created = client.create_acls(bindings)
        assert created["failed"] == [] and len(created["succeeded"]) == 2
        match = ACLFilter("User:kp", None, ACLOperation.ANY, ACLPermissionType.ANY,
                          ResourcePatternFilter(KpResourceType.TOPIC, name, PatternType.MATCH))
        found, error = client.describe_acls(match)
        assert error.errno == 0 and len(found) == 2
        [(_, deleted, error)] = client.delete_acls([ACLFilter(
            "User:kp", None, ACLOperation.ANY, ACLPermissionType.ANY,
            ResourcePatternFilter(KpResourceType.TOPIC, None, PatternType.ANY))])
        assert error.errno == 0 and len(deleted) == 2
    finally:
        client.close()


def test_kafkajs_admin_manages_acls_and_is_refused_a_topic_deletion(kbroker, admin, tmp_path):
    name, topic = unique("kjs"), unique("kjs-kept")
    create_topic(admin, topic)
    entry = {"principal": "User:kjs", "host": "*", "operation": 3, "permissionType": 3}  # READ, ALLOW
    any_filter = {"resourceType": 2, "resourceName": name, "resourcePatternType": 1, "principal": "User:kjs",
                  "host": "*", "operation": 1, "permissionType": 1}
    steps = [
        ["createAcls", {"acl": [{"resourceType": 2, "resourceName": name, "resourcePatternType": 3, **entry},
                                {"resourceType": 2, "resourceName": name, "resourcePatternType": 4, **entry}]}],
        ["describeAcls", any_filter],
        ["deleteAcls", {"filters": [any_filter]}],
        ["describeAcls", any_filter],
        ["deleteTopics", {"topics": [topic]}],
    ]
    steps_file = tmp_path / "steps.json"
    steps_file.write_text(json.dumps(steps))
    created, described, deleted, after, refused = run_kafkajs("admin_steps.js", kbroker.bootstrap,
                                                              str(steps_file))["steps"]
    assert "error" not in created
    assert sorted(r["resourcePatternType"] for r in described["result"]["resources"]) == [3, 4]
    assert len(deleted["result"]["filterResponses"][0]["matchingAcls"]) == 2
    assert after["result"]["resources"] == []
    assert refused["error"]["type"] == "TOPIC_AUTHORIZATION_FAILED"


def test_kbroker_acls_cli_against_the_authorizer(kbroker):
    topic = unique("cli")

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "kbroker", "acls", "--bootstrap-server", kbroker.bootstrap,
                               *argv], capture_output=True, text=True, timeout=60, check=True)

    run("--add", "--allow-principal", "User:cli", "--operation", "Read", "--topic", topic)
    listed = run("--list", "--topic", topic).stdout
    assert f"ResourcePattern(resourceType=TOPIC, name={topic}, patternType=LITERAL)" in listed
    assert "(principal=User:cli, host=*, operation=READ, permissionType=ALLOW)" in listed
    run("--remove", "--force", "--allow-principal", "User:cli", "--operation", "Read", "--topic", topic)
    assert run("--list", "--topic", topic).stdout == ""


def test_super_users_bypass_every_acl(broker_factory):
    broker = broker_factory(AUTHORIZER, f"super.users={ANONYMOUS}", "allow.everyone.if.no.acl.found=false")
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    topic = unique("super")
    create_topic(admin, topic)
    add(admin, acl(ResourceType.TOPIC, topic, AclOperation.ALL, permission=AclPermissionType.DENY))
    assert produce_error(broker.bootstrap, topic) is None


def test_acls_written_into_zookeeper_are_enforced_by_every_broker(broker_factory, zookeeper):
    # Without ACLs on the cluster resource the brokers (ANONYMOUS on PLAINTEXT) reach each other.
    with KafkaCluster(broker_factory, zookeeper, overrides=(AUTHORIZER, "allow.everyone.if.no.acl.found=true",
                                                            "offsets.topic.replication.factor=3")) as cluster:
        topic = unique("zk")
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
        [future] = admin.create_topics([NewTopic(topic, 3, 3)], request_timeout=TIMEOUT_S).values()
        future.result(timeout=TIMEOUT_S)
        eventually(lambda: produce_error(cluster.bootstrap, topic) is None, timeout=10)
        # What kafka-acls.sh --authorizer-properties zookeeper.connect=... writes.
        deny = {"version": 1, "acls": [{"principal": ANONYMOUS, "permissionType": "Deny", "operation": "Write",
                                        "host": "*"}]}
        cluster.zk.create(f"/kafka-acl/Topic/{topic}", json.dumps(deny).encode(), makepath=True)
        cluster.zk.create("/kafka-acl-changes/acl_changes_", f"Topic:{topic}".encode(), sequence=True)

        def every_broker_refuses() -> bool:
            return all(_raw_produce_error(b.port, topic) == KafkaError.TOPIC_AUTHORIZATION_FAILED
                       for b in cluster.brokers.values())

        eventually(every_broker_refuses, timeout=1.5)


def test_a_strict_cluster_replicates_with_cluster_action_for_its_brokers(broker_factory, zookeeper):
    # allow.everyone.if.no.acl.found=false: the brokers (ANONYMOUS on PLAINTEXT) reach each other
    # only through the CLUSTER ACL written before they start, as kafka-acls.sh would.
    cluster = KafkaCluster(broker_factory, zookeeper, overrides=(AUTHORIZER, "allow.everyone.if.no.acl.found=false"))
    seeding = KazooClient(hosts=zookeeper, timeout=10)
    seeding.start(timeout=10)
    try:
        seeding.create(f"{cluster.chroot}/kafka-acl/Cluster/kafka-cluster", json.dumps(CLUSTER_ALL).encode(),
                       makepath=True)
    finally:
        seeding.stop()
        seeding.close()
    with cluster:
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
        granted, refused = unique("granted"), unique("refused")
        for future in admin.create_topics([NewTopic(granted, 2, 3), NewTopic(refused, 1, 3)],
                                          request_timeout=TIMEOUT_S).values():
            future.result(timeout=TIMEOUT_S)
        add(admin, acl(ResourceType.TOPIC, granted, AclOperation.WRITE))

        # acks=all: answered once replicated to the ISR, so the followers fetched with CLUSTER_ACTION.
        eventually(lambda: produce_error(cluster.bootstrap, granted, acks="all") is None, timeout=15)
        assert produce_error(cluster.bootstrap, refused, acks="all") == KafkaError.TOPIC_AUTHORIZATION_FAILED


def _raw_produce_error(port: int, topic: str) -> int:
    """A Produce v9 of one empty-records partition straight to one broker: the partition's error
    code (authorization is checked before the records and the leadership)."""
    with RawClient(port) as client:
        answer = client.call(0, 9, {"transactional_id": None, "acks": 1, "timeout_ms": 1000, "topic_data": [
            {"name": topic, "partition_data": [{"index": 0, "records": None}]}]})
    return answer["responses"][0]["partition_responses"][0]["error_code"]
