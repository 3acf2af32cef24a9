"""SCRAM credentials: the broker's cache of /config/users, and the changes admin clients ask for.

Kafka (ZooKeeper mode) keeps each user's credentials in `/config/users/<sanitized user>` as
`{"version":1,"config":{"SCRAM-SHA-256":"salt=...,stored_key=...,server_key=...,iterations=4096"}}`
and announces a change with `/config/changes/config_change_<seq>` naming `users/<user>`.
CredentialCache (Kafka's CredentialCache) holds what the SCRAM servers check against: loaded
whole at start, so credentials written before any broker ran are honoured, and refreshed per
user on each notification. ScramCredentialManager answers Describe/AlterUserScramCredentials
as ZkAdminManager does. The store itself is kbroker/metadata's KafkaZkClient (ZooKeeper or the
embedded single-node store, the same paths in both).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kbroker.metadata.zk_data import desanitize_entity_name, sanitize_entity_name
from kbroker.protocol.errors import Errors
from kbroker.security.scram import (
    MAX_ITERATIONS,
    MIN_ITERATIONS,
    SCRAM_BY_TYPE,
    SCRAM_MECHANISMS,
    ScramCredential,
    credential_from_salted_password,
)

if TYPE_CHECKING:
    from kbroker.metadata.kafka_zk_client import KafkaZkClient

log = logging.getLogger("kbroker.security")

USERS = "users"


class CredentialCache:
    def __init__(self) -> None:
        self._credentials: dict[str, dict[str, ScramCredential]] = {m: {} for m in SCRAM_MECHANISMS}

    def get(self, mechanism: str, user: str) -> ScramCredential | None:
        return self._credentials.get(mechanism, {}).get(user)

    def update_user(self, user: str, config: dict[str, str]) -> None:
        """The user's SCRAM entries from its config (an unreadable one is dropped, with a warning)."""
        for mechanism, by_user in self._credentials.items():
            text = config.get(mechanism)
            by_user.pop(user, None)
            if text is None:
                continue
            try:
                by_user[user] = ScramCredential.from_config_value(text)
            except ValueError as exc:
                log.warning("ignoring the %s credential of user %r in /config/users: %s", mechanism, user, exc)

    def load(self, zk_client: KafkaZkClient) -> None:
        for stored in zk_client.get_entity_names(USERS):
            self.refresh(zk_client, stored)

    def refresh(self, zk_client: KafkaZkClient, stored_name: str) -> None:
        """Re-read one /config/users child (a user/client-id quota path is not a user's credentials)."""
        if "/" in stored_name:
            return
        self.update_user(desanitize_entity_name(stored_name), zk_client.get_entity_config(USERS, stored_name))


@dataclass
class CredentialError:
    error_code: int
    message: str


class ScramCredentialManager:
    """Describe/AlterUserScramCredentials over the store; the cache follows through notifications
    (and at once on this broker, so a client can log in right after its admin call returns)."""

    def __init__(self, zk_client: KafkaZkClient, cache: CredentialCache) -> None:
        self.zk_client = zk_client
        self.cache = cache

    def _config(self, user: str) -> dict[str, str]:
        return self.zk_client.get_entity_config(USERS, sanitize_entity_name(user))

    def describe(self, users: list[str] | None) -> list[dict]:
        """One result per user: its mechanisms and iterations, or Kafka's per-user error."""
        if not users:
            names = [desanitize_entity_name(n) for n in self.zk_client.get_entity_names(USERS) if "/" not in n]
            described = [(name, _infos(self._config(name))) for name in sorted(names)]
            return [_described(name, infos) for name, infos in described if infos]
        results = []
        counts = {u: users.count(u) for u in users}
        for user in dict.fromkeys(users):
            if counts[user] > 1:
                results.append(_result(user, Errors.DUPLICATE_RESOURCE,
                                       "Cannot describe SCRAM credentials for the same user twice in a single request"))
                continue
            infos = _infos(self._config(user))
            if not infos:
                results.append(_result(user, Errors.RESOURCE_NOT_FOUND,
                                       "Attempt to describe a user credential that does not exist"))
            else:
                results.append(_described(user, infos))
        return results

    def alter(self, deletions: list[dict], upsertions: list[dict]) -> list[dict]:
        """Applies each user's changes all or nothing; one result per user, in request order."""
        changes: dict[str, list[dict]] = {}
        for change in (*deletions, *upsertions):
            changes.setdefault(change["name"], []).append(change)
        results = []
        for user, user_changes in changes.items():
            error = self._alter_user(user, user_changes)
            results.append(_result(user, error.error_code, error.message) if error else _result(user, Errors.NONE, None))
        return results

    def _alter_user(self, user: str, user_changes: list[dict]) -> CredentialError | None:
        mechanisms = [c["mechanism"] for c in user_changes]
        if len(set(mechanisms)) != len(mechanisms):
            return CredentialError(Errors.DUPLICATE_RESOURCE,
                                   "A user credential cannot be altered twice in the same request")
        for change in user_changes:
            error = _validate(change)
            if error is not None:
                return error
        config = self._config(user)
        for change in user_changes:
            name = SCRAM_BY_TYPE[change["mechanism"]].mechanism_name
            if "iterations" not in change and name not in config:
                return CredentialError(Errors.RESOURCE_NOT_FOUND,
                                       "Attempt to delete a user credential that does not exist")
        for change in user_changes:
            mechanism = SCRAM_BY_TYPE[change["mechanism"]]
            if "iterations" in change:
                credential = credential_from_salted_password(mechanism, bytes(change["salt"]),
                                                             bytes(change["salted_password"]), change["iterations"])
                config[mechanism.mechanism_name] = credential.to_config_value()
            else:
                config.pop(mechanism.mechanism_name, None)
        self.zk_client.set_entity_config(USERS, sanitize_entity_name(user), config)
        self.cache.update_user(user, config)
        return None


def _validate(change: dict) -> CredentialError | None:
    if not change["name"]:
        return CredentialError(Errors.UNACCEPTABLE_CREDENTIAL, "Username must not be empty")
    if change["mechanism"] not in SCRAM_BY_TYPE:
        return CredentialError(Errors.UNSUPPORTED_SASL_MECHANISM, "Unknown SCRAM mechanism")
    if "iterations" not in change:
        return None
    if change["iterations"] < MIN_ITERATIONS:
        return CredentialError(Errors.UNACCEPTABLE_CREDENTIAL, "Too few iterations")
    if change["iterations"] > MAX_ITERATIONS:
        return CredentialError(Errors.UNACCEPTABLE_CREDENTIAL, "Too many iterations")
    if not change["salt"]:
        return CredentialError(Errors.UNACCEPTABLE_CREDENTIAL, "Salt must not be empty")
    if not change["salted_password"]:
        return CredentialError(Errors.UNACCEPTABLE_CREDENTIAL, "Salted password must not be empty")
    return None


def _infos(config: dict[str, str]) -> list[dict]:
    infos = []
    for mechanism in SCRAM_MECHANISMS.values():
        text = config.get(mechanism.mechanism_name)
        if text is None:
            continue
        try:
            iterations = ScramCredential.from_config_value(text).iterations
        except ValueError:
            continue
        infos.append({"mechanism": mechanism.type_code, "iterations": iterations})
    return infos


def _result(user: str, error_code: int, message: str | None) -> dict:
    return {"user": user, "error_code": error_code, "error_message": message}


def _described(user: str, infos: list[dict]) -> dict:
    return {"user": user, "error_code": Errors.NONE, "error_message": None, "credential_infos": infos}
