"""The authorizer with authenticated principals (issue 12, "clients across the features").

One broker with the AclAuthorizer (allow.everyone.if.no.acl.found=false, super.users=User:admin)
and three listeners: PLAINTEXT (the harness's), SASL_SSL (PLAIN from JAAS, SCRAM users created
over SASL_SSL itself) and MTLS (SSL with ssl.client.auth=required, whose certificates' names are
mapped by ssl.principal.mapping.rules: `CN=carol,OU=apps,O=kbroker` is `User:carol`).

carol holds rights (ALL on topics prefixed `granted-`, on every group and transactional id,
DESCRIBE on the cluster); bob holds none. Each of them is reached both as a SCRAM user over
SASL_SSL and as a client certificate over MTLS, and through each client library: bob gets
TOPIC/GROUP/CLUSTER/TRANSACTIONAL_ID_AUTHORIZATION_FAILED where carol does not, and Metadata
shows carol her topics only. admin, a super user by its SASL principal, bypasses a DENY; it manages
ACLs over SASL_SSL with confluent-kafka's, kafka-python's and KafkaJS's admin clients, and SCRAM
users with confluent-kafka's and kafka-python's (KafkaJS and aiokafka have no SCRAM or ACL admin
API), and runs kbroker's own tools over SASL_SSL and mutual TLS (consumer-groups --delete-offsets
and reassign-partitions, whose requests kbroker's codec sends); the healthcheck speaks TLS to a
TLS listener.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)
from cryptography.x509.oid import NameOID

from kbroker.protocol.api_keys import ApiKey
from kbroker.testing.processes import free_port
from kbroker.testing.sasl import ADMIN, jaas
from kbroker.testing.tls import STORE_PASSWORD, CertificateAuthority
from kbroker.testing.tools import kcat_metadata, run_kafkajs, run_kcat
from kbroker.testing.waiting import eventually

pytestmark = pytest.mark.timeout(300)
TIMEOUT_S = 20
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
PASSWORDS = {"bob": "bob-secret", "carol": "carol-secret"}
SOURCES = ("scram", "certificate")  # where the principal comes from
MAPPING = "RULE:^CN=([a-z]+),OU=apps,O=kbroker$/$1/,DEFAULT"


def _certificate_names(name: str) -> list:
    # x509 subjects list the most general attribute first; RFC 2253 prints them last
    return [(NameOID.ORGANIZATION_NAME, "kbroker"), (NameOID.ORGANIZATIONAL_UNIT_NAME, "apps"),
            (NameOID.COMMON_NAME, name)]


@pytest.fixture(scope="module")
def broker(module_broker_factory, tmp_path_factory):
    ca = CertificateAuthority(tmp_path_factory.mktemp("pki"))
    identity = ca.issue("broker")
    plain, sasl_ssl, mtls = free_port(), free_port(), free_port()
    tls_settings = [setting for listener in ("sasl_ssl", "mtls") for setting in (
        f"listener.name.{listener}.ssl.keystore.type=PKCS12",
        f"listener.name.{listener}.ssl.keystore.location={identity.pkcs12}",
        f"listener.name.{listener}.ssl.keystore.password={STORE_PASSWORD}")]
    broker = module_broker_factory(
        f"listeners=PLAINTEXT://127.0.0.1:{plain},SASL_SSL://127.0.0.1:{sasl_ssl},MTLS://127.0.0.1:{mtls}",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,MTLS:SSL",
        "inter.broker.listener.name=PLAINTEXT",
        f"sasl.enabled.mechanisms={','.join(MECHANISMS)}",
        *(f"listener.name.sasl_ssl.{m.lower()}.sasl.jaas.config={jaas(m)}" for m in MECHANISMS),
        *tls_settings,
        "listener.name.mtls.ssl.client.auth=required",
        "listener.name.mtls.ssl.truststore.type=PEM", f"listener.name.mtls.ssl.truststore.location={ca.cert_pem}",
        f"ssl.principal.mapping.rules={MAPPING}",
        "authorizer.class.name=kafka.security.authorizer.AclAuthorizer",
        "allow.everyone.if.no.acl.found=false", "super.users=User:admin",
        port=plain)
    broker.ca_pem = str(ca.cert_pem)
    broker.sasl_ssl = f"127.0.0.1:{sasl_ssl}"
    broker.mtls = f"127.0.0.1:{mtls}"
    broker.certificates = {name: ca.issue(name, _certificate_names(name)) for name in PASSWORDS}
    admin = AdminClient(admin_config(broker))
    upserts = [UserScramCredentialUpsertion(user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096),
                                            password.encode()) for user, password in PASSWORDS.items()]
    for future in admin.alter_user_scram_credentials(upserts).values():
        future.result(timeout=TIMEOUT_S)
    grants = [binding(ResourceType.TOPIC, "granted-", AclOperation.ALL, pattern=ResourcePatternType.PREFIXED),
              binding(ResourceType.GROUP, "*", AclOperation.ALL),
              binding(ResourceType.TRANSACTIONAL_ID, "*", AclOperation.ALL),
              binding(ResourceType.BROKER, "kafka-cluster", AclOperation.DESCRIBE)]
    for future in admin.create_acls(grants, request_timeout=TIMEOUT_S).values():
        future.result(timeout=TIMEOUT_S)
    broker.granted, broker.hidden = f"granted-{uuid.uuid4().hex[:6]}", f"hidden-{uuid.uuid4().hex[:6]}"
    for future in admin.create_topics([NewTopic(broker.granted, 1, 1), NewTopic(broker.hidden, 1, 1)],
                                      request_timeout=TIMEOUT_S).values():
        future.result(timeout=TIMEOUT_S)
    return broker


def binding(kind: ResourceType, name: str, operation: AclOperation, principal: str = "User:carol",
            permission=AclPermissionType.ALLOW, pattern=ResourcePatternType.LITERAL) -> AclBinding:
    return AclBinding(kind, name, pattern, principal, "*", operation, permission)


def admin_config(broker) -> dict[str, str]:
    return {"bootstrap.servers": broker.sasl_ssl, "security.protocol": "SASL_SSL", "ssl.ca.location": broker.ca_pem,
            "sasl.mechanism": "PLAIN", "sasl.username": ADMIN[0], "sasl.password": ADMIN[1]}


def librdkafka(broker, user: str, source: str) -> dict[str, str]:
    """librdkafka's settings for `user` as a SCRAM-SHA-512 login over SASL_SSL or a certificate over MTLS."""
    if source == "scram":
        return {"bootstrap.servers": broker.sasl_ssl, "security.protocol": "SASL_SSL",
                "ssl.ca.location": broker.ca_pem, "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": user,
                "sasl.password": PASSWORDS[user]}
    certificate = broker.certificates[user]
    return {"bootstrap.servers": broker.mtls, "security.protocol": "SSL", "ssl.ca.location": broker.ca_pem,
            "ssl.certificate.location": str(certificate.cert_pem), "ssl.key.location": str(certificate.key_pem)}


def python_settings(broker, user: str, source: str) -> dict:
    """kafka-python's and aiokafka's settings for the same (an ssl.SSLContext fits both)."""
    context = ssl.create_default_context(cafile=broker.ca_pem)
    if source == "scram":
        return {"bootstrap_servers": broker.sasl_ssl, "security_protocol": "SASL_SSL", "ssl_context": context,
                "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": user,
                "sasl_plain_password": PASSWORDS[user]}
    certificate = broker.certificates[user]
    context.load_cert_chain(str(certificate.cert_pem), str(certificate.key_pem))
    return {"bootstrap_servers": broker.mtls, "security_protocol": "SSL", "ssl_context": context}


def code_of(exc: BaseException) -> int:
    return exc.args[0].code()


# -- confluent-kafka ---------------------------------------------------------------------------
def produce_error(config: dict[str, str], topic: str) -> int | None:
    outcome: list[KafkaError | None] = []
    producer = Producer({**config, "message.timeout.ms": 8000})
    producer.produce(topic, b"v", on_delivery=lambda err, _msg: outcome.append(err))
    producer.flush(TIMEOUT_S)
    assert outcome, "no delivery report"
    return None if outcome[0] is None else outcome[0].code()


def consume_error(config: dict[str, str], topic: str) -> int | None:
    """The first error a subscribed consumer polls, or None once a record came."""
    consumer = Consumer({**config, "group.id": f"g-{uuid.uuid4().hex[:6]}", "auto.offset.reset": "earliest"})
    try:
        consumer.subscribe([topic])
        for _ in range(60):
            message = consumer.poll(0.5)
            if message is not None:
                return None if message.error() is None else message.error().code()
        raise AssertionError("neither a record nor an error")
    finally:
        consumer.close()


def transaction_error(config: dict[str, str], topic: str) -> int | None:
    producer = Producer({**config, "transactional.id": f"tx-{uuid.uuid4().hex[:6]}"})
    try:
        producer.init_transactions(TIMEOUT_S)
        producer.begin_transaction()
        producer.produce(topic, b"t")
        producer.commit_transaction(TIMEOUT_S)
    except KafkaException as exc:
        return code_of(exc)
    return None


def create_acls_error(config: dict[str, str]) -> int | None:
    """CreateAcls needs ALTER on the cluster. (librdkafka hands a refused DescribeAcls back as an
    empty list, so the cluster's refusal is checked on CreateAcls; KafkaJS checks DescribeAcls.)"""
    admin = AdminClient(config)
    acl = binding(ResourceType.TOPIC, f"granted-{uuid.uuid4().hex[:6]}", AclOperation.READ, principal="User:zed")
    try:
        admin.create_acls([acl], request_timeout=TIMEOUT_S)[acl].result(timeout=TIMEOUT_S)
    except KafkaException as exc:
        return code_of(exc)
    return None


@pytest.mark.parametrize("source", SOURCES)
def test_confluent_kafka_bob_is_refused_what_carol_may_do(broker, source):
    bob, carol = librdkafka(broker, "bob", source), librdkafka(broker, "carol", source)
    assert produce_error(bob, broker.granted) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert produce_error(carol, broker.granted) is None
    assert consume_error(bob, broker.granted) == KafkaError.GROUP_AUTHORIZATION_FAILED
    assert consume_error(carol, broker.granted) is None
    assert transaction_error(bob, broker.granted) == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    assert transaction_error(carol, broker.granted) is None
    assert create_acls_error(bob) == KafkaError.CLUSTER_AUTHORIZATION_FAILED
    assert create_acls_error(carol) == KafkaError.CLUSTER_AUTHORIZATION_FAILED  # DESCRIBE is not ALTER
    assert create_acls_error(admin_config(broker)) is None


@pytest.mark.parametrize("source", SOURCES)
def test_metadata_shows_each_principal_only_the_topics_it_may_describe(broker, source):
    def listed(user: str) -> set[str]:
        return set(AdminClient(librdkafka(broker, user, source)).list_topics(timeout=TIMEOUT_S).topics)

    assert broker.granted in listed("carol") and broker.hidden not in listed("carol")
    assert not {broker.granted, broker.hidden} & listed("bob")


def test_a_super_user_by_its_sasl_principal_bypasses_a_deny(broker):
    admin = AdminClient(admin_config(broker))
    deny = binding(ResourceType.TOPIC, broker.hidden, AclOperation.ALL, principal="User:admin",
                   permission=AclPermissionType.DENY)
    admin.create_acls([deny], request_timeout=TIMEOUT_S)[deny].result(timeout=TIMEOUT_S)
    assert produce_error(admin_config(broker), broker.hidden) is None
    assert produce_error(librdkafka(broker, "carol", "scram"), broker.hidden) == KafkaError.TOPIC_AUTHORIZATION_FAILED


# -- kafka-python, aiokafka, kcat, KafkaJS -------------------------------------------------------
@pytest.mark.parametrize("source", SOURCES)
def test_kafka_python(broker, source):
    from kafka import KafkaProducer
    from kafka.errors import TopicAuthorizationFailedError

    def send(user: str) -> None:
        producer = KafkaProducer(max_block_ms=TIMEOUT_S * 1000, **python_settings(broker, user, source))
        try:
            producer.send(broker.granted, b"kp").get(timeout=TIMEOUT_S)
        finally:
            producer.close()

    with pytest.raises(TopicAuthorizationFailedError):
        send("bob")
    send("carol")


@pytest.mark.parametrize("source", SOURCES)
def test_aiokafka(broker, source):
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import TopicAuthorizationFailedError

    async def send(user: str) -> None:
        producer = AIOKafkaProducer(request_timeout_ms=TIMEOUT_S * 1000, **python_settings(broker, user, source))
        await producer.start()
        try:
            await producer.send_and_wait(broker.granted, b"aio")
        finally:
            await producer.stop()

    with pytest.raises(TopicAuthorizationFailedError):
        asyncio.run(send("bob"))
    asyncio.run(send("carol"))


@pytest.mark.parametrize("source", SOURCES)
def test_kcat(broker, source):
    def options(user: str) -> list[str]:
        config = librdkafka(broker, user, source)
        return [f"-X{key}={value}" for key, value in config.items() if key != "bootstrap.servers"]

    bootstrap = librdkafka(broker, "bob", source)["bootstrap.servers"]
    names = {t["topic"] for t in kcat_metadata(bootstrap, *options("carol"))["topics"]}
    assert broker.granted in names and broker.hidden not in names
    refused = run_kcat(bootstrap, *options("bob"), "-P", "-t", broker.granted, input_text="v\n", check=False)
    assert refused.returncode != 0 and "Topic authorization failed" in refused.stderr
    run_kcat(bootstrap, *options("carol"), "-P", "-t", broker.granted, input_text="v\n")


def kafkajs_env(broker, user: str, source: str) -> tuple[str, dict[str, str]]:
    if source == "scram":
        return broker.sasl_ssl, {"SSL_CA": broker.ca_pem, "SASL_MECHANISM": "scram-sha-512", "SASL_USERNAME": user,
                                 "SASL_PASSWORD": PASSWORDS[user]}
    certificate = broker.certificates[user]
    return broker.mtls, {"SSL_CA": broker.ca_pem, "SSL_CERT": str(certificate.cert_pem),
                         "SSL_KEY": str(certificate.key_pem)}


def kafkajs_steps(broker, user: str, source: str, steps: list, tmp_path: Path) -> list[dict]:
    steps_file = tmp_path / f"{user}-steps.json"
    steps_file.write_text(json.dumps(steps))
    bootstrap, env = kafkajs_env(broker, user, source)
    return run_kafkajs("admin_steps.js", bootstrap, str(steps_file), env=env)["steps"]


@pytest.mark.parametrize("source", SOURCES)
def test_kafkajs(broker, source, tmp_path):
    every_acl = {"resourceType": 1, "resourcePatternType": 1, "operation": 1, "permissionType": 1}  # ANY
    steps = [["fetchTopicMetadata", {"topics": [broker.granted]}],
             ["fetchOffsets", {"groupId": f"kjs-{uuid.uuid4().hex[:6]}", "topics": [broker.granted]}],
             ["describeAcls", every_acl]]
    bob = kafkajs_steps(broker, "bob", source, steps, tmp_path)
    # KafkaJS's cluster.findGroupCoordinator swallows FindCoordinator's GROUP_AUTHORIZATION_FAILED
    # (withBroker tries every broker) and throws its own "Failed to find group coordinator".
    assert [step["error"]["type"] or step["error"]["name"] for step in bob] == [
        "TOPIC_AUTHORIZATION_FAILED", "KafkaJSGroupCoordinatorNotFound", "CLUSTER_AUTHORIZATION_FAILED"], bob
    carol = kafkajs_steps(broker, "carol", source, steps, tmp_path)
    assert all("error" not in step for step in carol), carol
    bootstrap, env = kafkajs_env(broker, "carol", source)
    topic = f"granted-kjs-{uuid.uuid4().hex[:6]}"  # auto-created: CREATE from the prefixed ALL
    answer = run_kafkajs("sasl_roundtrip.js", bootstrap, "a", "b", env={**env, "TOPIC": topic})
    assert answer["values"] == ["a", "b"]


# -- admin clients over SASL_SSL: ACLs and SCRAM users ------------------------------------------
def test_confluent_admin_manages_acls_and_scram_users_over_sasl_ssl(broker):
    admin = AdminClient(admin_config(broker))
    user = f"u{uuid.uuid4().hex[:6]}"
    upsert = UserScramCredentialUpsertion(user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 8192), b"pw")
    admin.alter_user_scram_credentials([upsert])[user].result(timeout=TIMEOUT_S)
    [info] = admin.describe_user_scram_credentials([user])[user].result(timeout=TIMEOUT_S).scram_credential_infos
    assert (info.mechanism, info.iterations) == (ScramMechanism.SCRAM_SHA_256, 8192)
    read = binding(ResourceType.TOPIC, broker.granted, AclOperation.READ, principal=f"User:{user}")
    admin.create_acls([read], request_timeout=TIMEOUT_S)[read].result(timeout=TIMEOUT_S)
    mine = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, f"User:{user}", None, AclOperation.ANY,
                            AclPermissionType.ANY)
    assert admin.describe_acls(mine, request_timeout=TIMEOUT_S).result(timeout=TIMEOUT_S) == [read]
    login = {"bootstrap.servers": broker.sasl_ssl, "security.protocol": "SASL_SSL", "ssl.ca.location": broker.ca_pem,
             "sasl.mechanism": "SCRAM-SHA-256", "sasl.username": user, "sasl.password": "pw"}
    assert broker.granted in AdminClient(login).list_topics(timeout=TIMEOUT_S).topics  # READ implies DESCRIBE
    [deleted] = admin.delete_acls([mine], request_timeout=TIMEOUT_S)[mine].result(timeout=TIMEOUT_S)
    assert deleted == read
    deletion = UserScramCredentialDeletion(user, ScramMechanism.SCRAM_SHA_256)
    admin.alter_user_scram_credentials([deletion])[user].result(timeout=TIMEOUT_S)
    with pytest.raises(KafkaException) as raised:
        admin.describe_user_scram_credentials([user])[user].result(timeout=TIMEOUT_S)
    assert code_of(raised.value) == KafkaError.RESOURCE_NOT_FOUND


def test_bob_may_not_manage_scram_users(broker):
    admin = AdminClient(librdkafka(broker, "bob", "scram"))
    upsert = UserScramCredentialUpsertion("mallory", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"pw")
    with pytest.raises(KafkaException) as raised:
        admin.alter_user_scram_credentials([upsert])["mallory"].result(timeout=TIMEOUT_S)
    assert code_of(raised.value) == KafkaError.CLUSTER_AUTHORIZATION_FAILED
    # (DescribeUserScramCredentials' refusal is checked over kbroker's codec in
    # tests/test_authorization_wire.py: librdkafka 2.x aborts the process on its top-level error.)
    assert produce_error(librdkafka(broker, "carol", "scram"), broker.granted) is None  # carol's login stays


def test_kafka_python_admin_manages_acls_and_scram_users_over_sasl_ssl(broker):
    from kafka.admin import ACL, ACLFilter, ACLOperation, ACLPermissionType, KafkaAdminClient, ResourcePattern
    from kafka.admin import ACLResourcePatternType as PatternType
    from kafka.admin import ResourceType as KpResourceType
    from kafka.admin import ScramMechanism as KpScram
    from kafka.admin import UserScramCredentialUpsertion as KpUpsertion
    from kafka.errors import ClusterAuthorizationFailedError

    name, user = f"kp-{uuid.uuid4().hex[:6]}", f"kp{uuid.uuid4().hex[:4]}"
    tls = {"bootstrap_servers": broker.sasl_ssl, "security_protocol": "SASL_SSL",
           "ssl_context": ssl.create_default_context(cafile=broker.ca_pem)}
    client = KafkaAdminClient(**tls, sasl_mechanism="PLAIN", sasl_plain_username=ADMIN[0],
                              sasl_plain_password=ADMIN[1])
    try:
        acl = ACL(f"User:{user}", "*", ACLOperation.READ, ACLPermissionType.ALLOW,
                  ResourcePattern(KpResourceType.TOPIC, name, PatternType.LITERAL))
        created = client.create_acls([acl])
        assert created["failed"] == [] and len(created["succeeded"]) == 1
        every = ACLFilter(f"User:{user}", None, ACLOperation.ANY, ACLPermissionType.ANY,
                          ResourcePattern(KpResourceType.TOPIC, name, PatternType.LITERAL))
        found, error = client.describe_acls(every)
        assert error.errno == 0 and len(found) == 1
        [(_, deleted, error)] = client.delete_acls([every])
        assert error.errno == 0 and len(deleted) == 1
        upsert = KpUpsertion(user, KpScram.SCRAM_SHA_256, "kp-pw", iterations=4096)
        assert client.alter_user_scram_credentials([upsert]) == {user: None}
        described = client.describe_user_scram_credentials([user])
        assert [(i["mechanism"], i["iterations"]) for i in described[user]["credential_infos"]] == [
            (KpScram.SCRAM_SHA_256, 4096)]
        bob = KafkaAdminClient(**tls, sasl_mechanism="SCRAM-SHA-512", sasl_plain_username="bob",
                               sasl_plain_password=PASSWORDS["bob"])
        try:
            with pytest.raises(ClusterAuthorizationFailedError):
                bob.describe_user_scram_credentials(["bob"])
            # kafka-python reports a refused alteration by its message, which Kafka leaves null for
            # CLUSTER_AUTHORIZATION_FAILED: what counts is that nothing changed.
            bob.alter_user_scram_credentials([KpUpsertion("bob", KpScram.SCRAM_SHA_256, "pw")])
        finally:
            bob.close()
        kept = client.describe_user_scram_credentials(["bob"])["bob"]["credential_infos"]
        assert [i["mechanism"] for i in kept] == [KpScram.SCRAM_SHA_512]
    finally:
        client.close()


def test_kafkajs_admin_manages_acls_over_sasl_ssl(broker, tmp_path):
    name = f"kjs-{uuid.uuid4().hex[:6]}"
    entry = {"resourceType": 2, "resourceName": name, "resourcePatternType": 3, "principal": "User:kjs",
             "host": "*", "operation": 3, "permissionType": 3}  # TOPIC, LITERAL, READ, ALLOW
    steps = [["createAcls", {"acl": [entry]}], ["describeAcls", entry], ["deleteAcls", {"filters": [entry]}],
             ["describeAcls", entry]]
    steps_file = tmp_path / "steps.json"
    steps_file.write_text(json.dumps(steps))
    env = {"SSL_CA": broker.ca_pem, "SASL_MECHANISM": "plain", "SASL_USERNAME": ADMIN[0], "SASL_PASSWORD": ADMIN[1]}
    created, described, deleted, after = run_kafkajs("admin_steps.js", broker.sasl_ssl, str(steps_file),
                                                     env=env)["steps"]
    assert "error" not in created
    assert [r["resourceName"] for r in described["result"]["resources"]] == [name]
    assert len(deleted["result"]["filterResponses"][0]["matchingAcls"]) == 1
    assert after["result"]["resources"] == []


# -- kbroker's tools over TLS and SASL --------------------------------------------------------
def kbroker_tool(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "kbroker", *argv], capture_output=True, text=True, timeout=90)
    if check:
        assert proc.returncode == 0, f"{argv} exited {proc.returncode}: {proc.stderr}"
    return proc


def command_config(tmp_path: Path, settings: dict[str, str]) -> str:
    path = tmp_path / f"client-{uuid.uuid4().hex[:6]}.properties"
    path.write_text("".join(f"{k}={v}\n" for k, v in settings.items() if k != "bootstrap.servers"))
    return str(path)


def java_sasl_ssl_config(broker, tmp_path: Path) -> str:
    """A Java client's client.properties (Kafka's names), which the tools translate."""
    login = (f'org.apache.kafka.common.security.scram.ScramLoginModule required username="{ADMIN[0]}" '
             f'password="{ADMIN[1]}";')
    path = tmp_path / "java-client.properties"
    path.write_text(f"security.protocol=SASL_SSL\nsasl.mechanism=PLAIN\nssl.ca.location={broker.ca_pem}\n"
                    f"sasl.jaas.config={login}\n")
    return str(path)


def committed_group(config: dict[str, str], topic: str) -> str:
    group = f"granted-tools-{uuid.uuid4().hex[:6]}"
    consumer = Consumer({**config, "group.id": group, "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[TopicPartition(topic, 0, 1)], asynchronous=False)
    finally:
        consumer.close()
    return group


@pytest.mark.parametrize("how", ["sasl_ssl_java_properties", "mutual_tls"])
def test_consumer_groups_delete_offsets_over_tls(broker, tmp_path, how):
    if how == "mutual_tls":
        settings = librdkafka(broker, "carol", "certificate")
        config = command_config(tmp_path, settings)
    else:
        settings = admin_config(broker)
        config = java_sasl_ssl_config(broker, tmp_path)
    group = committed_group(settings, broker.granted)
    out = kbroker_tool("consumer-groups", "--bootstrap-server", settings["bootstrap.servers"], "--command-config",
                       config, "--delete-offsets", "--group", group, "--topic", broker.granted).stdout
    assert out.splitlines()[0] == f"Request succeed for deleting offsets with topic {broker.granted} group {group}"
    assert out.split()[-3:] == [broker.granted, "0", "Successful"]


def test_reassign_partitions_over_sasl_ssl_and_a_refused_login(broker, tmp_path):
    bootstrap, config = broker.sasl_ssl, command_config(tmp_path, admin_config(broker))
    [broker_id] = AdminClient(admin_config(broker)).list_topics(timeout=TIMEOUT_S).brokers
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"version": 1, "partitions": [{"topic": broker.granted, "partition": 0,
                                                              "replicas": [broker_id]}]}))
    reassign = ("reassign-partitions", "--bootstrap-server", bootstrap, "--command-config", config,
                "--reassignment-json-file", str(plan))
    assert kbroker_tool(*reassign, "--execute").stdout.splitlines()[-1] == (
        f"Successfully started partition reassignments for {broker.granted}-0")
    eventually(lambda: "is completed" in kbroker_tool(*reassign, "--verify").stdout, what="the reassignment")
    listed = kbroker_tool("reassign-partitions", "--bootstrap-server", bootstrap, "--command-config", config, "--list")
    assert listed.stdout == "No partition reassignments found.\n"
    # bob has no ALTER on the cluster: the controller refuses his reassignment
    bob = command_config(tmp_path, librdkafka(broker, "bob", "scram"))
    refused = kbroker_tool("reassign-partitions", "--bootstrap-server", bootstrap, "--command-config", bob,
                           "--list", check=False)
    assert refused.returncode == 1 and "CLUSTER_AUTHORIZATION_FAILED" in refused.stderr, refused.stderr


def test_the_tools_own_connections_report_a_refused_login_or_an_untrusted_broker(broker, monkeypatch):
    from kbroker.tools import wire
    from kbroker.tools.common import SESSION, ToolError

    listing = {"timeout_ms": 5000, "topics": None}

    def send(settings: dict[str, str]) -> dict:
        monkeypatch.setattr(SESSION, "config", settings)
        return wire.send_request(broker.sasl_ssl, ApiKey.LIST_PARTITION_REASSIGNMENTS, 0, listing)

    assert send(admin_config(broker))["error_code"] == 0
    wrong = {**librdkafka(broker, "carol", "scram"), "sasl.password": "not-it"}
    with pytest.raises(ToolError, match="^SASL authentication failed: Authentication failed during authentication "
                                        "due to invalid credentials with SASL mechanism SCRAM-SHA-512$"):
        send(wrong)
    with pytest.raises(ToolError, match="does not enable SASL mechanism OAUTHBEARER|not supported by this tool"):
        send({**wrong, "sasl.mechanism": "OAUTHBEARER"})
    with pytest.raises(ToolError, match="TLS connection to .* failed: .*CERTIFICATE_VERIFY_FAILED"):
        send({key: value for key, value in wrong.items() if key != "ssl.ca.location"})
    with pytest.raises(ToolError, match="security.protocol=SASL_SSL_TYPO is not one of"):
        send({**wrong, "security.protocol": "SASL_SSL_TYPO"})


def test_the_healthcheck_speaks_tls_to_a_tls_listener(broker, monkeypatch):
    from kbroker.healthcheck import main as healthcheck

    port = broker.sasl_ssl.rpartition(":")[2]
    assert healthcheck([broker.sasl_ssl, "--tls"]) == 0
    assert healthcheck([broker.sasl_ssl]) == 1  # plaintext bytes on a TLS port: no answer
    monkeypatch.setenv("KBROKER_LISTENERS", f"SECURE://0.0.0.0:{port},PLAINTEXT://0.0.0.0:{broker.port}")
    monkeypatch.setenv("KBROKER_LISTENER_SECURITY_PROTOCOL_MAP", "SECURE:SASL_SSL,PLAINTEXT:PLAINTEXT")
    assert healthcheck([]) == 0
    monkeypatch.setenv("KBROKER_LISTENER_SECURITY_PROTOCOL_MAP", "SECURE:PLAINTEXT")
    assert healthcheck([]) == 1
