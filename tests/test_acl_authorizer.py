"""AclAuthorizer (kbroker/security/acl_authorizer.py) on the embedded metadata store: Kafka's
decision rules for any principal, the znodes and JSON Kafka's own tools read and write, and
change notifications followed by a second broker's authorizer on the same store."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from kbroker.config import KafkaConfig
from kbroker.metadata.acl_zk_client import AclZkClient
from kbroker.metadata.znode_store import EmbeddedZNodeStore
from kbroker.security.acl import (
    AccessControlEntry,
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    PatternType,
    ResourcePattern,
    ResourceType,
    binding_invalid_reason,
    filter_only_reason,
)
from kbroker.security.acl_authorizer import CHANGE_EXPIRATION_MS, AclAuthorizer, parse_super_users

Op, R, P = AclOperation, ResourceType, PatternType
ALLOW, DENY = AclPermissionType.ALLOW, AclPermissionType.DENY
ALICE, BOB = "User:alice", "User:bob"
HOST = "10.0.0.1"


def binding(name: str, operation: AclOperation, principal: str = ALICE, permission: AclPermissionType = ALLOW,
            pattern: PatternType = P.LITERAL, resource: ResourceType = R.TOPIC, host: str = "*") -> AclBinding:
    return AclBinding(ResourcePattern(resource, name, pattern), AccessControlEntry(principal, host, operation, permission))


def any_filter(**fields) -> AclBindingFilter:
    base = {"resource_type": R.ANY, "name": None, "pattern_type": P.ANY, "principal": None, "host": None,
            "operation": Op.ANY, "permission_type": AclPermissionType.ANY}
    return AclBindingFilter(**{**base, **fields})


@pytest.fixture
def store() -> EmbeddedZNodeStore:
    return EmbeddedZNodeStore(None)


def make(store: EmbeddedZNodeStore, super_users: str = "", allow_everyone: bool = False) -> AclAuthorizer:
    authorizer = AclAuthorizer(AclZkClient(store), parse_super_users(super_users), allow_everyone)
    authorizer.start()
    return authorizer


def test_no_acl_denies_unless_allow_everyone_if_no_acl_found(store):
    assert not make(store).authorize(ALICE, HOST, Op.READ, R.TOPIC, "orders")
    assert make(store, allow_everyone=True).authorize(ALICE, HOST, Op.READ, R.TOPIC, "orders")


def test_an_acl_on_a_resource_ends_allow_everyone_for_it(store):
    authorizer = make(store, allow_everyone=True)
    authorizer.create_acls([binding("orders", Op.READ, principal=BOB)])
    assert not authorizer.authorize(ALICE, HOST, Op.READ, R.TOPIC, "orders")
    assert authorizer.authorize(BOB, HOST, Op.READ, R.TOPIC, "orders")
    assert authorizer.authorize(ALICE, HOST, Op.READ, R.TOPIC, "payments")


def test_literal_wildcard_and_prefixed_patterns(store):
    authorizer = make(store)
    authorizer.create_acls([binding("orders", Op.READ), binding("*", Op.WRITE, principal=BOB),
                            binding("pay", Op.DELETE, pattern=P.PREFIXED)])
    assert authorizer.authorize(ALICE, HOST, Op.READ, R.TOPIC, "orders")
    assert not authorizer.authorize(ALICE, HOST, Op.READ, R.TOPIC, "orders2")
    assert authorizer.authorize(BOB, HOST, Op.WRITE, R.TOPIC, "anything")
    assert not authorizer.authorize(BOB, HOST, Op.WRITE, R.GROUP, "anything")  # per resource type
    assert authorizer.authorize(ALICE, HOST, Op.DELETE, R.TOPIC, "payments")
    assert authorizer.authorize(ALICE, HOST, Op.DELETE, R.TOPIC, "pay")
    assert not authorizer.authorize(ALICE, HOST, Op.DELETE, R.TOPIC, "pa")


@pytest.mark.parametrize("granted", [Op.READ, Op.WRITE, Op.DELETE, Op.ALTER, Op.DESCRIBE])
def test_describe_is_implied_by_read_write_delete_and_alter(store, granted):
    authorizer = make(store)
    authorizer.create_acls([binding("orders", granted)])
    assert authorizer.authorize(ALICE, HOST, Op.DESCRIBE, R.TOPIC, "orders")


def test_implications_go_one_way_and_all_grants_everything(store):
    authorizer = make(store)
    authorizer.create_acls([binding("orders", Op.DESCRIBE), binding("conf", Op.ALTER_CONFIGS), binding("all", Op.ALL)])
    assert not authorizer.authorize(ALICE, HOST, Op.READ, R.TOPIC, "orders")
    assert authorizer.authorize(ALICE, HOST, Op.DESCRIBE_CONFIGS, R.TOPIC, "conf")
    assert not authorizer.authorize(ALICE, HOST, Op.DESCRIBE, R.TOPIC, "conf")
    assert all(authorizer.authorize(ALICE, HOST, op, R.TOPIC, "all") for op in (Op.READ, Op.WRITE, Op.ALTER_CONFIGS))


def test_deny_beats_allow_and_is_not_implied(store):
    authorizer = make(store)
    authorizer.create_acls([binding("orders", Op.ALL), binding("orders", Op.WRITE, permission=DENY),
                            binding("or", Op.READ, pattern=P.PREFIXED, principal="User:*", permission=DENY)])
    assert not authorizer.authorize(ALICE, HOST, Op.WRITE, R.TOPIC, "orders")
    assert not authorizer.authorize(ALICE, HOST, Op.READ, R.TOPIC, "orders")  # User:* prefixed deny
    assert authorizer.authorize(ALICE, HOST, Op.DESCRIBE, R.TOPIC, "orders")  # DENY WRITE does not deny DESCRIBE


def test_host_filters(store):
    authorizer = make(store)
    authorizer.create_acls([binding("orders", Op.READ, host="10.0.0.1"),
                            binding("orders", Op.READ, host="10.0.0.9", permission=DENY)])
    assert authorizer.authorize(ALICE, "10.0.0.1", Op.READ, R.TOPIC, "orders")
    assert not authorizer.authorize(ALICE, "10.0.0.2", Op.READ, R.TOPIC, "orders")
    assert not authorizer.authorize(ALICE, "10.0.0.9", Op.READ, R.TOPIC, "orders")


def test_super_users_bypass_even_deny(store):
    authorizer = make(store, super_users=" User:admin ; User:root")
    authorizer.create_acls([binding("orders", Op.ALL, principal="User:*", permission=DENY)])
    assert authorizer.authorize("User:admin", HOST, Op.WRITE, R.TOPIC, "orders")
    assert authorizer.authorize("User:root", HOST, Op.CLUSTER_ACTION, R.CLUSTER, "kafka-cluster")
    assert not authorizer.authorize(ALICE, HOST, Op.WRITE, R.TOPIC, "orders")


def test_authorized_operations_bits(store):
    authorizer = make(store)
    authorizer.create_acls([binding("orders", Op.READ), binding("g", Op.READ, resource=R.GROUP)])
    assert authorizer.authorized_operations(ALICE, HOST, R.TOPIC, "orders") == (1 << Op.READ) | (1 << Op.DESCRIBE)
    assert authorizer.authorized_operations(ALICE, HOST, R.GROUP, "g") == (1 << Op.READ) | (1 << Op.DESCRIBE)
    assert authorizer.authorized_operations(BOB, HOST, R.TOPIC, "orders") == 0


def test_authorize_by_resource_type(store):
    authorizer = make(store)
    assert not authorizer.authorize_by_resource_type(ALICE, HOST, Op.WRITE, R.TOPIC)
    authorizer.create_acls([binding("orders", Op.WRITE)])
    assert authorizer.authorize_by_resource_type(ALICE, HOST, Op.WRITE, R.TOPIC)
    authorizer.create_acls([binding("ord", Op.WRITE, pattern=P.PREFIXED, permission=DENY)])
    assert not authorizer.authorize_by_resource_type(ALICE, HOST, Op.WRITE, R.TOPIC)


def test_acls_are_stored_in_kafkas_znodes_and_format(store):
    authorizer = make(store)
    authorizer.create_acls([binding("orders", Op.READ), binding("pay", Op.WRITE, pattern=P.PREFIXED, permission=DENY),
                            binding("kafka-cluster", Op.CLUSTER_ACTION, resource=R.CLUSTER),
                            binding("tx", Op.WRITE, resource=R.TRANSACTIONAL_ID)])
    assert json.loads(store.get("/kafka-acl/Topic/orders")[0]) == {"version": 1, "acls": [
        {"principal": ALICE, "permissionType": "Allow", "operation": "Read", "host": "*"}]}
    assert json.loads(store.get("/kafka-acl-extended/prefixed/Topic/pay")[0])["acls"] == [
        {"principal": ALICE, "permissionType": "Deny", "operation": "Write", "host": "*"}]
    assert json.loads(store.get("/kafka-acl/Cluster/kafka-cluster")[0])["acls"][0]["operation"] == "ClusterAction"
    assert store.exists("/kafka-acl/TransactionalId/tx") is not None
    literal_changes = [store.get(f"/kafka-acl-changes/{c}")[0] for c in store.get_children("/kafka-acl-changes")]
    assert b"TOPIC:orders" in literal_changes and all(c.startswith("acl_changes_") for c in
                                                      store.get_children("/kafka-acl-changes"))
    [extended] = [json.loads(store.get(f"/kafka-acl-extended-changes/{c}")[0])
                  for c in store.get_children("/kafka-acl-extended-changes")]
    assert extended == {"version": 1, "resourceType": "TOPIC", "name": "pay", "patternType": "PREFIXED"}


def test_another_brokers_authorizer_follows_the_change_notifications(store):
    writer, reader = make(store), make(store)
    writer.create_acls([binding("orders", Op.READ)])
    assert reader.authorize(ALICE, HOST, Op.READ, R.TOPIC, "orders")
    writer.delete_acls([any_filter(name="orders")])
    assert not reader.authorize(ALICE, HOST, Op.READ, R.TOPIC, "orders")


def test_acls_written_by_kafkas_tooling_are_enforced(store):
    authorizer = make(store)
    # What kafka-acls.sh --authorizer-properties zookeeper.connect=... writes.
    store.create("/kafka-acl/Group/readers", json.dumps({"version": 1, "acls": [
        {"principal": "User:carol", "permissionType": "Allow", "operation": "Read", "host": "*"}]}).encode(),
        makepath=True)
    store.create("/kafka-acl-changes/acl_changes_", b"Group:readers", sequence=True)
    assert authorizer.authorize("User:carol", HOST, Op.READ, R.GROUP, "readers")
    assert make(store).authorize("User:carol", HOST, Op.DESCRIBE, R.GROUP, "readers")  # loaded at start too


def test_describe_filters_any_match_and_literal(store):
    authorizer = make(store)
    bindings = [binding("orders", Op.READ), binding("*", Op.READ), binding("ord", Op.READ, pattern=P.PREFIXED),
                binding("other", Op.WRITE, principal=BOB)]
    authorizer.create_acls(bindings)
    assert set(authorizer.describe(any_filter())) == set(bindings)
    assert set(authorizer.describe(any_filter(name="orders", pattern_type=P.MATCH))) == set(bindings[:3])
    assert set(authorizer.describe(any_filter(name="orders", pattern_type=P.ANY))) == {bindings[0]}
    assert set(authorizer.describe(any_filter(pattern_type=P.PREFIXED))) == {bindings[2]}
    assert set(authorizer.describe(any_filter(principal=BOB))) == {bindings[3]}
    assert authorizer.describe(any_filter(resource_type=R.GROUP)) == []


def test_delete_reports_what_each_filter_removed(store):
    authorizer = make(store)
    bindings = [binding("orders", Op.READ), binding("orders", Op.WRITE), binding("pay", Op.READ, pattern=P.PREFIXED)]
    authorizer.create_acls(bindings)
    removed = authorizer.delete_acls([any_filter(operation=Op.READ), any_filter(name="orders", pattern_type=P.LITERAL)])
    assert set(removed[0]) == {bindings[0], bindings[2]}
    assert set(removed[1]) == {bindings[0], bindings[1]}
    assert authorizer.describe(any_filter()) == []
    assert store.exists("/kafka-acl/Topic/orders") is None  # an empty resource's znode goes, as in Kafka


@pytest.mark.parametrize(("bad", "reason"), [
    (binding("x", Op.READ, resource=R.CLUSTER), "The only valid name for the CLUSTER resource is kafka-cluster"),
    (binding("", Op.READ), "Invalid empty resource name"),
    (binding("a/b", Op.READ), "Failed to create ACL"),
    (binding("x", Op.READ, principal="alice"), "Could not parse principal"),
])
def test_invalid_bindings(bad, reason):
    assert reason in binding_invalid_reason(bad)


@pytest.mark.parametrize(("bad", "reason"), [
    (binding("x", Op.READ, pattern=P.MATCH), "patternType must not be MATCH"),
    (binding("x", Op.ANY), "operation must not be ANY"),
    (binding("x", Op.READ, resource=R.ANY), "resourceType must not be ANY"),
    (binding("x", Op.READ, permission=AclPermissionType.ANY), "permissionType must not be ANY"),
])
def test_filter_values_cannot_be_bindings(bad, reason):
    assert filter_only_reason(bad) == reason


def test_from_config_reads_kafkas_settings(store):
    config = KafkaConfig.load(overrides=["authorizer.class.name=kafka.security.auth.SimpleAclAuthorizer",
                                         "super.users=User:admin", "allow.everyone.if.no.acl.found=true"])
    authorizer = AclAuthorizer.from_config(config, store)
    assert authorizer is not None
    assert authorizer.super_users == {"User:admin"} and authorizer.allow_everyone_if_no_acl_found
    assert AclAuthorizer.from_config(KafkaConfig.load(), store) is None


def test_a_thousand_acls_keep_decisions_cached_and_indexed(store):
    authorizer = make(store)
    authorizer.create_acls([binding(f"topic-{i}", Op.WRITE) for i in range(1000)])
    assert authorizer.authorize(ALICE, HOST, Op.WRITE, R.TOPIC, "topic-999")
    assert authorizer.authorize(ALICE, HOST, Op.WRITE, R.TOPIC, "topic-999")  # the cached decision
    assert len(authorizer._cache) == 1
    authorizer.delete_acls([any_filter(name="topic-999")])  # a change drops the cache
    assert not authorizer.authorize(ALICE, HOST, Op.WRITE, R.TOPIC, "topic-999")


def test_authorize_by_resource_type_follows_kafkas_dominance_rules(store):
    authorizer = make(store, allow_everyone=True)
    assert authorizer.authorize_by_resource_type(ALICE, HOST, Op.WRITE, R.TOPIC)  # allow.everyone...
    authorizer.create_acls([binding("*", Op.ALL, permission=DENY)])
    assert not authorizer.authorize_by_resource_type(ALICE, HOST, Op.WRITE, R.TOPIC)  # ...but not past DENY *
    strict = make(EmbeddedZNodeStore(None))
    strict.create_acls([binding("*", Op.WRITE), binding("x", Op.WRITE, pattern=P.PREFIXED, permission=DENY)])
    assert strict.authorize_by_resource_type(ALICE, HOST, Op.WRITE, R.TOPIC)  # an ALLOW on * always counts
    assert not strict.authorize_by_resource_type(ALICE, HOST, Op.READ, R.TOPIC)


def test_delete_by_exact_name_reaches_acls_not_yet_notified(store):
    authorizer = make(store)
    store.create("/kafka-acl/Topic/quiet", json.dumps({"version": 1, "acls": [
        {"principal": ALICE, "permissionType": "Allow", "operation": "Read", "host": "*"}]}).encode(), makepath=True)
    [removed] = authorizer.delete_acls([any_filter(resource_type=R.TOPIC, name="quiet")])
    assert removed == [binding("quiet", Op.READ)]
    assert store.exists("/kafka-acl/Topic/quiet") is None


def test_change_notifications_older_than_15_minutes_are_purged(store):
    authorizer = make(store)
    authorizer.create_acls([binding("orders", Op.READ)])
    zk = AclZkClient(store)
    present = zk.change_notifications()
    assert len(present) == 1
    zk.purge_changes(present, CHANGE_EXPIRATION_MS, int(time.time() * 1000) + 60_000)  # a minute on: kept
    assert zk.change_notifications() == present
    zk.purge_changes(present, CHANGE_EXPIRATION_MS, int(time.time() * 1000) + CHANGE_EXPIRATION_MS + 1000)
    assert zk.change_notifications() == []
    assert authorizer.authorize(ALICE, HOST, Op.READ, R.TOPIC, "orders")  # the ACL itself stays


def test_a_store_failure_fails_that_resource_alone(store, monkeypatch):
    authorizer = make(store)
    create = store.create

    def failing_create(path: str, *args, **kwargs):  # ZooKeeper gone for one resource's write
        if path.endswith("/broken"):
            raise ConnectionError("ZooKeeper unreachable")
        return create(path, *args, **kwargs)

    monkeypatch.setattr(store, "create", failing_create)
    failed = authorizer.create_acls([binding("broken", Op.READ), binding("fine", Op.READ)])
    assert list(failed) == [binding("broken", Op.READ).pattern]
    assert authorizer.authorize(ALICE, HOST, Op.READ, R.TOPIC, "fine")
    assert not authorizer.authorize(ALICE, HOST, Op.READ, R.TOPIC, "broken")


def test_a_burst_of_notifications_on_the_loop_is_read_once():
    """CreateAcls of many bindings fires one watch event per notification, queued on the event
    loop; the other broker's authorizer reads the notifications once after the burst (not once
    per event, each listing all of them) and enforces every ACL."""
    async def scenario() -> tuple[int, bool]:
        store = EmbeddedZNodeStore(None, notify=asyncio.get_running_loop().call_soon)
        writer, reader = make(store), make(store)
        listings = 0
        real_listing = reader.zk.change_notifications

        def counted() -> list[tuple[str, str]]:
            nonlocal listings
            listings += 1
            return real_listing()

        reader.zk.change_notifications = counted  # type: ignore[method-assign]
        writer.create_acls([binding(f"topic-{i}", Op.READ) for i in range(200)])
        await eventually_async(lambda: reader.authorize(ALICE, HOST, Op.READ, R.TOPIC, "topic-199"))
        return listings, all(reader.authorize(ALICE, HOST, Op.READ, R.TOPIC, f"topic-{i}") for i in range(200))

    listings, all_enforced = asyncio.run(scenario())

    assert all_enforced and listings == 1


async def eventually_async(condition, attempts: int = 100) -> None:
    for _ in range(attempts):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")
