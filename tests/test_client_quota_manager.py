"""ClientQuotaManagers and ClientQuotaAdmin without a server: Kafka's precedence of the eight
quota entities, who shares a rate, the sampled rate and throttle time, and Describe/Alter's
validation and storage in Kafka's znodes (the embedded store, the same paths as ZooKeeper)."""

from __future__ import annotations

import json

import pytest

from kbroker.metadata.kafka_zk_client import KafkaZkClient
from kbroker.metadata.znode_store import EmbeddedZNodeStore
from kbroker.protocol.errors import Errors
from kbroker.security.client_quota_admin import ClientQuotaAdmin, QuotaRequestError
from kbroker.security.client_quota_manager import DEFAULT, ClientQuotaManager, ClientQuotaManagers, Rate

# The eight entities in Kafka's order of precedence, as (user, client id) stored names.
PRECEDENCE = [("alice", "app"), ("alice", DEFAULT), ("alice", None), (DEFAULT, "app"),
              (DEFAULT, DEFAULT), (DEFAULT, None), (None, "app"), (None, DEFAULT)]


@pytest.mark.parametrize("winner", range(len(PRECEDENCE)))
def test_the_most_specific_entity_with_a_quota_wins(winner):
    manager = ClientQuotaManager("producer_byte_rate", 11, 1)
    for rank, entity in enumerate(PRECEDENCE[winner:], start=winner):
        manager.set_quota(entity, 1000.0 * (rank + 1))

    found = manager.quota_for("alice", "app")

    assert found is not None and found[1] == 1000.0 * (winner + 1)


def test_who_shares_a_rate_follows_the_level_of_the_quota():
    manager = ClientQuotaManager("producer_byte_rate", 11, 1)
    manager.set_quota(("alice", None), 100.0)  # a user quota: all of alice's clients share it
    manager.set_quota((None, "app"), 200.0)  # a client-id quota: every user of "app" shares it

    assert manager.sensor("alice", "one") is manager.sensor("alice", "two")
    assert manager.sensor("bob", "app") is manager.sensor("carol", "app")
    assert manager.sensor("bob", "other") is None
    assert manager.sensor("alice", "app").bound == 100.0


def test_a_default_user_quota_gives_each_user_a_rate_of_its_own():
    manager = ClientQuotaManager("consumer_byte_rate", 11, 1)
    manager.set_quota((DEFAULT, None), 100.0)

    assert manager.sensor("alice", "x") is not manager.sensor("bob", "x")
    assert manager.sensor("alice", "x") is manager.sensor("alice", "y")


def test_user_names_are_sanitized_as_kafka_stores_them():
    manager = ClientQuotaManager("producer_byte_rate", 11, 1)
    manager.set_quota(("CN%3Dalice%2COU%3Dteam", None), 10.0)  # a TLS principal's stored name

    assert manager.sensor("CN=alice,OU=team", "c") is not None


def test_rate_counts_at_least_n_minus_one_windows():
    rate = Rate(11, 1000)
    rate.record(10_000, 0)

    assert rate.window_size_ms(500) == 10_500
    assert rate.measure(500) == pytest.approx(10_000 / 10.5)


def test_old_samples_expire():
    rate = Rate(3, 1000)
    rate.record(5000, 0)
    rate.record(1000, 3500)

    assert rate.measure(3500) == pytest.approx(1000 / 2.0)


def test_throttle_time_is_the_excess_over_the_quota_times_the_window():
    manager = ClientQuotaManager("producer_byte_rate", 11, 1)
    manager.set_quota((None, "app"), 1000.0)

    assert manager.record_and_get_throttle_time_ms("u", "app", 5000, 0) == 0  # 5000 B / 10 s: within
    throttle = manager.record_and_get_throttle_time_ms("u", "app", 15_000, 100)

    assert throttle == round((20_000 / 10.1 - 1000) / 1000 * 10_100)  # Kafka's QuotaUtils.throttleTime


def test_request_quota_throttles_at_most_one_window():
    managers = ClientQuotaManagers(11, 1)
    managers.update_entity((None, DEFAULT), {"request_percentage": "1"})

    assert managers.request.record_and_get_throttle_time_ms("u", "c", 100_000, 0) == 1000


def test_managers_are_enabled_only_while_a_quota_exists():
    managers = ClientQuotaManagers()
    assert not managers.enabled
    managers.update_entity(("alice", None), {"producer_byte_rate": "1024", "SCRAM-SHA-256": "salt=..."})
    assert managers.enabled and managers.produce.quotas == {("alice", None): 1024.0}
    assert not managers.fetch.quotas
    managers.update_entity(("alice", None), {})
    assert not managers.enabled


# -- the admin side over the store ----------------------------------------------------------
@pytest.fixture
def admin():
    zk_client = KafkaZkClient(EmbeddedZNodeStore(None))
    zk_client.create_top_level_paths()
    return ClientQuotaAdmin(zk_client, ClientQuotaManagers())


def entry(entity: dict[str, str | None], **ops: float | None) -> dict:
    return {"entity": [{"entity_type": t, "entity_name": n} for t, n in entity.items()],
            "ops": [{"key": k, "value": v or 0.0, "remove": v is None} for k, v in ops.items()]}


def stored(admin: ClientQuotaAdmin, path: str) -> dict:
    return json.loads(admin.zk_client.store.get(path)[0])


def test_quotas_are_stored_where_kafka_stores_them(admin):
    results = admin.alter([entry({"user": "alice"}, producer_byte_rate=1024.0),
                           entry({"user": "alice", "client-id": None}, consumer_byte_rate=2048.0),
                           entry({"client-id": "my app"}, request_percentage=50.0),
                           entry({"user": None}, controller_mutation_rate=10.0)], False)

    assert [r["error_code"] for r in results] == [0, 0, 0, 0]
    assert stored(admin, "/config/users/alice") == {"version": 1, "config": {"producer_byte_rate": "1024"}}
    assert stored(admin, "/config/users/alice/clients/<default>")["config"] == {"consumer_byte_rate": "2048"}
    assert stored(admin, "/config/clients/my%20app")["config"] == {"request_percentage": "50.0"}
    assert stored(admin, "/config/users/<default>")["config"] == {"controller_mutation_rate": "10.0"}
    changes = admin.zk_client.store.get_children("/config/changes")
    paths = {json.loads(admin.zk_client.store.get(f"/config/changes/{c}")[0])["entity_path"] for c in changes}
    assert paths == {"users/alice", "users/alice/clients/<default>", "clients/my%20app", "users/<default>"}
    assert admin.managers.produce.quotas == {("alice", None): 1024.0}  # this broker follows at once


def test_a_users_scram_credentials_survive_a_quota_change(admin):
    admin.zk_client.set_entity_config("users", "alice", {"SCRAM-SHA-256": "salt=x"})
    admin.alter([entry({"user": "alice"}, producer_byte_rate=10.0)], False)
    admin.alter([entry({"user": "alice"}, producer_byte_rate=None)], False)

    assert stored(admin, "/config/users/alice")["config"] == {"SCRAM-SHA-256": "salt=x"}


@pytest.mark.parametrize(("bad_entry", "message"), [
    ({"entity": [], "ops": []}, "Invalid empty client quota entity"),
    (entry({"group": "g"}, producer_byte_rate=1.0), "Unhandled client quota entity type: group"),
    (entry({"user": ""}, producer_byte_rate=1.0), "Empty user not supported"),
    (entry({"user": "a"}, nonsense=1.0), "Invalid configuration key nonsense"),
    (entry({"user": "a"}, producer_byte_rate=1.5), "Configuration producer_byte_rate must be a LONG value"),
])
def test_bad_alterations_get_invalid_request(admin, bad_entry, message):
    result, = admin.alter([bad_entry], False)

    assert (result["error_code"], result["error_message"]) == (Errors.INVALID_REQUEST, message)
    assert admin.zk_client.get_entity_names("users") == []


def test_validate_only_writes_nothing(admin):
    result, = admin.alter([entry({"user": "a"}, producer_byte_rate=1.0)], True)

    assert result["error_code"] == 0 and admin.zk_client.get_entity_names("users") == []


def describe_names(admin: ClientQuotaAdmin, components: list[tuple[str, int, str | None]], strict: bool) -> list:
    entries = admin.describe([{"entity_type": t, "match_type": m, "match": n} for t, m, n in components], strict)
    return sorted((tuple((e["entity_type"], e["entity_name"]) for e in entry["entity"]) for entry in entries), key=repr)


def test_describe_filters_as_kafka(admin):
    admin.alter([entry({"user": "alice"}, producer_byte_rate=1.0),
                 entry({"user": None}, producer_byte_rate=2.0),
                 entry({"user": "alice", "client-id": "app"}, producer_byte_rate=3.0),
                 entry({"client-id": "app"}, producer_byte_rate=4.0)], False)
    alice, default_user, app = ("user", "alice"), ("user", None), ("client-id", "app")

    assert describe_names(admin, [], False) == sorted([(alice,), (default_user,), (alice, app), (app,)], key=repr)
    assert describe_names(admin, [("user", 0, "alice")], True) == [(alice,)]
    assert describe_names(admin, [("user", 0, "alice")], False) == sorted([(alice,), (alice, app)], key=repr)
    assert describe_names(admin, [("user", 1, None)], True) == [(default_user,)]
    assert describe_names(admin, [("client-id", 2, None)], True) == [(app,)]
    assert describe_names(admin, [("user", 0, "alice"), ("client-id", 0, "app")], True) == [(alice, app)]
    values = admin.describe([{"entity_type": "user", "match_type": 0, "match": "alice"}], True)[0]["values"]
    assert values == [{"key": "producer_byte_rate", "value": 1.0}]


@pytest.mark.parametrize(("components", "error"), [
    ([("user", 0, "a"), ("user", 0, "b")], Errors.INVALID_REQUEST),
    ([("", 0, "a")], Errors.INVALID_REQUEST),
    ([("user", 7, "a")], Errors.INVALID_REQUEST),
    ([("ip", 0, "1.2.3.4"), ("user", 0, "a")], Errors.INVALID_REQUEST),
    ([("topic", 0, "t")], Errors.UNSUPPORTED_VERSION),
])
def test_bad_filters_are_refused(admin, components, error):
    with pytest.raises(QuotaRequestError) as refused:
        admin.describe([{"entity_type": t, "match_type": m, "match": n} for t, m, n in components], False)

    assert refused.value.error == error


def test_managers_load_what_the_store_holds(admin):
    admin.alter([entry({"user": "alice", "client-id": "app"}, producer_byte_rate=5.0),
                 entry({"client-id": None}, consumer_byte_rate=6.0)], False)
    fresh = ClientQuotaManagers()
    fresh.load(admin.zk_client)

    assert fresh.produce.quotas == {("alice", "app"): 5.0}
    assert fresh.fetch.quotas == {(None, DEFAULT): 6.0}


def test_controller_mutations_spend_a_token_bucket():
    managers = ClientQuotaManagers(controller_num_samples=11, controller_window_s=1)
    managers.update_entity((None, DEFAULT), {"controller_mutation_rate": "2"})
    bucket = managers.controller_mutation.bucket("u", "c")

    assert bucket is not None and bucket.burst == 20  # 2/s x (11 - 1) one-second windows
    bucket.record(25, 0)
    assert bucket.throttle_time_ms(0) == 2500  # 5 tokens short at 2 tokens a second
    assert bucket.throttle_time_ms(1000) == 1500  # refilled meanwhile
    assert bucket.throttle_time_ms(3000) == 0


# -- ip entities (KIP-612's connection_creation_rate) -------------------------------------------
def test_ip_entities_are_stored_under_config_ips_and_followed(admin):
    followed: list[tuple[str | None, int | None]] = []
    admin.managers.follow_ip_quotas(lambda address, rate: followed.append((address, rate)))

    results = admin.alter([entry({"ip": "127.0.0.2"}, connection_creation_rate=5.0),
                           entry({"ip": None}, connection_creation_rate=100.0)], False)

    assert [r["error_code"] for r in results] == [0, 0]
    assert stored(admin, "/config/ips/127.0.0.2") == {"version": 1, "config": {"connection_creation_rate": "5"}}
    assert stored(admin, "/config/ips/<default>")["config"] == {"connection_creation_rate": "100"}
    changes = admin.zk_client.store.get_children("/config/changes")
    paths = {json.loads(admin.zk_client.store.get(f"/config/changes/{c}")[0])["entity_path"] for c in changes}
    assert paths == {"ips/127.0.0.2", "ips/<default>"}
    assert followed == [("127.0.0.2", 5), (None, 100)]  # this broker's ConnectionQuotas, at once
    admin.alter([entry({"ip": "127.0.0.2"}, connection_creation_rate=None)], False)
    assert followed[-1] == ("127.0.0.2", None)


def test_ip_quotas_written_before_the_start_are_loaded_and_handed_on(admin):
    admin.alter([entry({"ip": "10.1.2.3"}, connection_creation_rate=7.0)], False)
    fresh = ClientQuotaManagers()
    fresh.load(admin.zk_client)
    followed: list[tuple[str | None, int | None]] = []

    fresh.follow_ip_quotas(lambda address, rate: followed.append((address, rate)))

    assert followed == [("10.1.2.3", 7)]


@pytest.mark.parametrize(("bad_entry", "message"), [
    (entry({"ip": "1.2.3.4", "user": "a"}, connection_creation_rate=1.0),
     "Invalid quota entity combination, IP entity should not be used with user/client ID entity."),
    (entry({"ip": "1.2.3.4"}, producer_byte_rate=1.0), "Invalid configuration key producer_byte_rate"),
    (entry({"user": "a"}, connection_creation_rate=1.0), "Invalid configuration key connection_creation_rate"),
    (entry({"ip": "1.2.3.4"}, connection_creation_rate=1.5), "Configuration connection_creation_rate must be a INT value"),
    (entry({"ip": "no such host.invalid"}, connection_creation_rate=1.0),
     "no%20such%20host.invalid is not a valid IP or resolvable host."),
    (entry({"ip": ""}, connection_creation_rate=1.0), "Empty ip not supported"),
])
def test_bad_ip_alterations_are_kafkas(admin, bad_entry, message):
    result, = admin.alter([bad_entry], False)

    assert (result["error_code"], result["error_message"]) == (Errors.INVALID_REQUEST, message)
    assert admin.zk_client.get_entity_names("ips") == []


def test_describe_ip_entities_as_kafka(admin):
    admin.alter([entry({"ip": "10.0.0.1"}, connection_creation_rate=1.0),
                 entry({"ip": None}, connection_creation_rate=2.0),
                 entry({"user": "alice"}, producer_byte_rate=3.0)], False)
    one, default_ip, alice = ("ip", "10.0.0.1"), ("ip", None), ("user", "alice")

    assert describe_names(admin, [("ip", 0, "10.0.0.1")], True) == [(one,)]
    assert describe_names(admin, [("ip", 1, None)], True) == [(default_ip,)]
    assert describe_names(admin, [("ip", 2, None)], True) == sorted([(one,), (default_ip,)], key=repr)  # as Kafka
    assert describe_names(admin, [], False) == sorted([(one,), (default_ip,), (alice,)], key=repr)
    assert describe_names(admin, [], True) == []
    assert describe_names(admin, [("user", 2, None)], False) == [(alice,)]
    assert describe_names(admin, [("ip", 0, "10.9.9.9")], True) == []
    values = admin.describe([{"entity_type": "ip", "match_type": 0, "match": "10.0.0.1"}], True)[0]["values"]
    assert values == [{"key": "connection_creation_rate", "value": 1.0}]
