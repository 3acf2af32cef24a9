"""Describe/AlterClientQuotas' logic over the entity configs, as Kafka's ZkAdminManager has it.

Entities come as (entity type, name) pairs: `user` and `client-id`, a null name meaning the
default (stored as `<default>`). An alteration reads the entity's znode, changes only the quota
keys it names (a user's znode keeps its SCRAM credentials) and writes it back with a
/config/changes notification, so every broker's ClientQuotaManagers follow. Errors are Kafka's:
INVALID_REQUEST for an empty or unknown entity, an empty name, an unknown key or a non-integer
byte rate; UNSUPPORTED_VERSION for an unknown entity type in a describe filter.

`ip` entities (`/config/ips/<ip>`, `<default>`) hold `connection_creation_rate` alone (KIP-612),
never combined with a user or client id; an IP that is neither a literal nor a resolvable host is
refused. The network's ConnectionQuotas enforces them (ClientQuotaManagers.follow_ip_quotas).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from kbroker.metadata.zk_data import desanitize_entity_name, sanitize_entity_name
from kbroker.protocol.errors import Errors
from kbroker.security.client_quota_manager import (
    CLIENTS,
    CONNECTION_CREATION_RATE,
    DEFAULT,
    IPS,
    QUOTA_KEYS,
    USERS,
    ClientQuotaManagers,
    ip_entity_address,
)

if TYPE_CHECKING:
    from kbroker.metadata.kafka_zk_client import KafkaZkClient

USER = "user"
CLIENT_ID = "client-id"
IP = "ip"
MATCH_EXACT, MATCH_DEFAULT, MATCH_SPECIFIED = 0, 1, 2
_ANY = object()  # a filter component matching any specified (non-default) name


class QuotaRequestError(Exception):
    def __init__(self, error: Errors, message: str) -> None:
        super().__init__(message)
        self.error = error
        self.message = message


def _stored(name: str | None) -> str:
    return DEFAULT if name is None else sanitize_entity_name(name)


def _shown(stored: str) -> str | None:
    return None if stored == DEFAULT else desanitize_entity_name(stored)


def _entity_path(entity: list[dict]) -> tuple[str, str]:
    """The (entity type, stored name) of an AlterClientQuotas entity, or QuotaRequestError."""
    if not entity:
        raise QuotaRequestError(Errors.INVALID_REQUEST, "Invalid empty client quota entity")
    names: dict[str, str | None] = {}
    for part in entity:
        kind, name = part["entity_type"], part["entity_name"]
        if kind not in (USER, CLIENT_ID, IP):
            raise QuotaRequestError(Errors.INVALID_REQUEST, f"Unhandled client quota entity type: {kind}")
        if name is not None and not name:
            raise QuotaRequestError(Errors.INVALID_REQUEST, f"Empty {kind} not supported")
        names[kind] = name  # a type given twice: the last wins, as in Kafka's ClientQuotaEntity map
    if IP in names:
        if len(names) > 1:
            raise QuotaRequestError(Errors.INVALID_REQUEST, "Invalid quota entity combination, "
                                    "IP entity should not be used with user/client ID entity.")
        stored = _stored(names[IP])
        if stored != DEFAULT and ip_entity_address(stored) is None:
            raise QuotaRequestError(Errors.INVALID_REQUEST, f"{stored} is not a valid IP or resolvable host.")
        return IPS, stored
    if USER in names and CLIENT_ID in names:
        return USERS, f"{_stored(names[USER])}/{CLIENTS}/{_stored(names[CLIENT_ID])}"
    if USER in names:
        return USERS, _stored(names[USER])
    return CLIENTS, _stored(names[CLIENT_ID])


# The keys of an ip entity, with their ConfigDef type (DynamicConfig.Ip).
IP_QUOTA_KEYS: dict[str, str] = {CONNECTION_CREATION_RATE: "INT"}
# User and client-id entities' keys: LONG, else DOUBLE.
_USER_CLIENT_TYPES: dict[str, str] = {key: "LONG" if is_long else "DOUBLE" for key, is_long in QUOTA_KEYS.items()}


def _apply_op(config: dict[str, str], op: dict, key_types: dict[str, str]) -> None:
    key = op["key"]
    if op["remove"]:
        config.pop(key, None)
        return
    key_type = key_types.get(key)
    if key_type is None:
        raise QuotaRequestError(Errors.INVALID_REQUEST, f"Invalid configuration key {key}")
    value = float(op["value"])
    if math.isnan(value) or math.isinf(value):
        raise QuotaRequestError(Errors.INVALID_REQUEST, f"Configuration {key} must be a finite number")
    if key_type == "DOUBLE":
        config[key] = repr(value)  # Java's Double.toString of a quota: 200.0
        return
    as_integer = int(value + 1e-6)
    if abs(as_integer - value) > 1e-6:
        raise QuotaRequestError(Errors.INVALID_REQUEST, f"Configuration {key} must be a {key_type} value")
    config[key] = str(as_integer)


class ClientQuotaAdmin:
    """The admin side of client quotas over the store; the managers follow at once on this
    broker (as the credentials do) and through notifications on the others."""

    def __init__(self, zk_client: KafkaZkClient, managers: ClientQuotaManagers) -> None:
        self.zk_client = zk_client
        self.managers = managers

    def alter(self, entries: list[dict], validate_only: bool) -> list[dict]:
        """One result per entry, in request order, with Kafka's error and message."""
        results = []
        for entry in entries:
            try:
                self._alter_entry(entry, validate_only)
                error, message = Errors.NONE, None
            except QuotaRequestError as exc:
                error, message = exc.error, exc.message
            results.append({"error_code": error, "error_message": message,
                            "entity": [{"entity_type": e["entity_type"], "entity_name": e["entity_name"]}
                                       for e in entry["entity"]]})
        return results

    def _alter_entry(self, entry: dict, validate_only: bool) -> None:
        entity_type, stored_name = _entity_path(entry["entity"])
        config = self.zk_client.get_entity_config(entity_type, stored_name)
        key_types = IP_QUOTA_KEYS if entity_type == IPS else _USER_CLIENT_TYPES
        for op in entry["ops"]:
            _apply_op(config, op, key_types)
        if validate_only:
            return
        self.zk_client.set_entity_config(entity_type, stored_name, config)
        self.managers.refresh(self.zk_client, entity_type, stored_name)

    def describe(self, components: list[dict], strict: bool) -> list[dict]:
        """DescribeClientQuotas' entries: each entity with quotas matching the filter, as
        ZkAdminManager.describeClientQuotas selects them (QuotaRequestError for a bad filter)."""
        matches: dict[str, object] = {}
        for component in components:
            kind = component["entity_type"]
            if kind == "":
                raise QuotaRequestError(Errors.INVALID_REQUEST, "Unexpected empty filter component entity type")
            if kind not in (USER, CLIENT_ID, IP):
                raise QuotaRequestError(Errors.UNSUPPORTED_VERSION, f"Custom entity type '{kind}' not supported")
            if kind in matches:
                noun = "client" if kind == CLIENT_ID else kind
                raise QuotaRequestError(Errors.INVALID_REQUEST, f"Duplicate {noun} filter component entity type")
            matches[kind] = _match_of(component)
        if IP in matches:
            if len(matches) > 1:
                raise QuotaRequestError(Errors.INVALID_REQUEST, "Invalid entity filter component combination, IP "
                                        "filter component should not be used with user or clientId filter component.")
            return self._describe_ips(components[0])
        entries = self._describe_users_and_clients(matches, strict)
        if not matches and not strict:  # as Kafka: an empty filter that is not strict lists ip entities too
            entries += self._describe_ips(None)
        return entries

    def _describe_users_and_clients(self, matches: dict[str, object], strict: bool) -> list[dict]:
        entries = []
        for user, client, config in self._all_entities():
            quotas = {k: float(v) for k, v in config.items() if k in QUOTA_KEYS}
            if quotas and _matches(matches, USER, user, strict) and _matches(matches, CLIENT_ID, client, strict):
                entity = ([{"entity_type": USER, "entity_name": _shown(user)}] if user is not None else []) + \
                         ([{"entity_type": CLIENT_ID, "entity_name": _shown(client)}] if client is not None else [])
                entries.append({"entity": entity,
                                "values": [{"key": k, "value": v} for k, v in sorted(quotas.items())]})
        return entries

    def _describe_ips(self, component: dict | None) -> list[dict]:
        """ZkAdminManager.handleDescribeIpQuotas: the named or default ip entity (an exact or
        default component), else every ip entity, the default included (as Kafka does)."""
        zk_client = self.zk_client
        if component is not None and component["match_type"] in (MATCH_EXACT, MATCH_DEFAULT):
            name = component["match"] if component["match_type"] == MATCH_EXACT else None
            found = [(name, zk_client.get_entity_config(IPS, _stored(name)))]
        else:  # any specified ip (the filter's match type was checked by _match_of), or no filter
            found = [(_shown(ip), zk_client.get_entity_config(IPS, ip)) for ip in zk_client.get_entity_names(IPS)]
        entries = []
        for name, config in found:
            quotas = {k: float(v) for k, v in config.items() if k in IP_QUOTA_KEYS}
            if quotas:
                entries.append({"entity": [{"entity_type": IP, "entity_name": name}],
                                "values": [{"key": k, "value": v} for k, v in sorted(quotas.items())]})
        return entries

    def _all_entities(self) -> list[tuple[str | None, str | None, dict[str, str]]]:
        zk_client = self.zk_client
        found: list[tuple[str | None, str | None, dict[str, str]]] = []
        for user in zk_client.get_entity_names(USERS):
            found.append((user, None, zk_client.get_entity_config(USERS, user)))
            for client in zk_client.get_entity_names(f"{USERS}/{user}/{CLIENTS}"):
                found.append((user, client, zk_client.get_entity_config(USERS, f"{user}/{CLIENTS}/{client}")))
        found += [(None, client, zk_client.get_entity_config(CLIENTS, client))
                  for client in zk_client.get_entity_names(CLIENTS)]
        return found


def _match_of(component: dict) -> object:
    """The stored name an exact or default component wants, or _ANY for "any specified name"."""
    match_type = component["match_type"]
    if match_type == MATCH_EXACT:
        return _stored(component["match"])
    if match_type == MATCH_DEFAULT:
        return DEFAULT
    if match_type == MATCH_SPECIFIED:
        return _ANY
    raise QuotaRequestError(Errors.INVALID_REQUEST, f"Unexpected match type: {match_type}")


def _matches(matches: dict[str, object], kind: str, stored: str | None, strict: bool) -> bool:
    """Kafka's filter: a component wants its name (or any name of that type); without a
    component, a strict filter wants the entity not to have that part at all."""
    if kind not in matches:
        return stored is None or not strict
    want = matches[kind]
    if want is _ANY:
        return stored is not None
    return stored == want
