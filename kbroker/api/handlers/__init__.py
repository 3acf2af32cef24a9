"""The handler registry: one module per API, each declaring API_KEY, VERSIONS and `handle`.

A handler module opens with a docstring in bullets, so that it can be scanned like franz-go's
kfake files: a first line "Produce (0): appends record batches to partition leaders." (the
API, its key, what it does), then

    - Versions: the range served, and the range advertised when it differs
    - Behaviour: what it does and which error codes it answers with (short bullets)
    - Gaps: what Kafka does that we don't, or "none known"

and then declares (see api_versions.py):

    API_KEY = ApiKey.METADATA        # the API it serves
    VERSIONS = (0, 13)               # the versions it serves, advertised as-is in ApiVersions
    ADVERTISED_VERSIONS = (0, 13)    # optional: a wider range to advertise (no handler needs it today)
    async def handle(ctx: RequestContext, request: MetadataRequest) -> MetadataResponse

`handle` takes and returns the API's TypedDicts from kbroker/protocol/message_types.py (imported
under TYPE_CHECKING; helpers that build response parts return the nested ones). It reaches the
broker through `ctx.services` (kbroker/api/broker_services.py) and returns the response body
(missing fields take the schema defaults), or None where Kafka sends no response (Produce with
acks=0); it raises CloseConnection where Kafka closes the connection instead of answering.
Adding an API is adding its module to HANDLERS (with its key and versions, and any
ADVERTISED_VERSIONS to the dict of that name): ApiVersions then advertises it, and nothing else
advertises anything.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from kbroker.protocol.api_keys import ApiKey

# Each module's API key and versions served (what it declares as API_KEY and VERSIONS), so that
# ApiVersions and the version check need no import: a module is imported with its API's first
# request (load_handlers), and a broker starts without the ~55 handlers it may never be asked for.
# tests/test_handler_headers.py keeps this table equal to the modules' own declarations.
HANDLERS: dict[str, tuple[ApiKey, tuple[int, int]]] = {
    "produce": (ApiKey.PRODUCE, (0, 13)),
    "fetch": (ApiKey.FETCH, (0, 18)),
    "list_offsets": (ApiKey.LIST_OFFSETS, (0, 11)),
    "metadata": (ApiKey.METADATA, (0, 13)),
    "api_versions": (ApiKey.API_VERSIONS, (0, 4)),
    "create_topics": (ApiKey.CREATE_TOPICS, (0, 7)),
    "delete_topics": (ApiKey.DELETE_TOPICS, (0, 6)),
    "delete_records": (ApiKey.DELETE_RECORDS, (0, 2)),
    "init_producer_id": (ApiKey.INIT_PRODUCER_ID, (0, 5)),
    "create_partitions": (ApiKey.CREATE_PARTITIONS, (0, 3)),
    "describe_cluster": (ApiKey.DESCRIBE_CLUSTER, (0, 2)),
    "describe_topic_partitions": (ApiKey.DESCRIBE_TOPIC_PARTITIONS, (0, 0)),
    "leader_and_isr": (ApiKey.LEADER_AND_ISR, (2, 7)),
    "update_metadata": (ApiKey.UPDATE_METADATA, (5, 8)),
    "stop_replica": (ApiKey.STOP_REPLICA, (3, 4)),
    "alter_partition": (ApiKey.ALTER_PARTITION, (0, 3)),
    "offset_for_leader_epoch": (ApiKey.OFFSET_FOR_LEADER_EPOCH, (0, 4)),
    "controlled_shutdown": (ApiKey.CONTROLLED_SHUTDOWN, (0, 3)),
    "elect_leaders": (ApiKey.ELECT_LEADERS, (0, 2)),
    "alter_partition_reassignments": (ApiKey.ALTER_PARTITION_REASSIGNMENTS, (0, 1)),
    "list_partition_reassignments": (ApiKey.LIST_PARTITION_REASSIGNMENTS, (0, 0)),
    "describe_configs": (ApiKey.DESCRIBE_CONFIGS, (0, 4)),
    "alter_configs": (ApiKey.ALTER_CONFIGS, (0, 2)),
    "incremental_alter_configs": (ApiKey.INCREMENTAL_ALTER_CONFIGS, (0, 1)),
    "describe_log_dirs": (ApiKey.DESCRIBE_LOG_DIRS, (1, 5)),
    "alter_replica_log_dirs": (ApiKey.ALTER_REPLICA_LOG_DIRS, (1, 2)),
    "update_features": (ApiKey.UPDATE_FEATURES, (0, 2)),
    # ACLs: SECURITY_DISABLED until kbroker has an authorizer
    "describe_acls": (ApiKey.DESCRIBE_ACLS, (0, 3)),
    "create_acls": (ApiKey.CREATE_ACLS, (0, 3)),
    "delete_acls": (ApiKey.DELETE_ACLS, (0, 3)),
    # consumer groups (kbroker/group/)
    "find_coordinator": (ApiKey.FIND_COORDINATOR, (0, 6)),
    "join_group": (ApiKey.JOIN_GROUP, (0, 9)),
    "sync_group": (ApiKey.SYNC_GROUP, (0, 5)),
    "heartbeat": (ApiKey.HEARTBEAT, (0, 4)),
    "leave_group": (ApiKey.LEAVE_GROUP, (0, 5)),
    "offset_commit": (ApiKey.OFFSET_COMMIT, (0, 10)),
    "offset_fetch": (ApiKey.OFFSET_FETCH, (0, 10)),
    "describe_groups": (ApiKey.DESCRIBE_GROUPS, (0, 6)),
    "list_groups": (ApiKey.LIST_GROUPS, (0, 5)),
    "delete_groups": (ApiKey.DELETE_GROUPS, (0, 2)),
    "offset_delete": (ApiKey.OFFSET_DELETE, (0, 0)),
    "consumer_group_heartbeat": (ApiKey.CONSUMER_GROUP_HEARTBEAT, (0, 1)),
    "consumer_group_describe": (ApiKey.CONSUMER_GROUP_DESCRIBE, (0, 1)),
    # transactions: the log side (kbroker/log/, kbroker/replica/)
    "write_txn_markers": (ApiKey.WRITE_TXN_MARKERS, (0, 2)),
    # transactions: the coordinator (kbroker/txn/)
    "add_partitions_to_txn": (ApiKey.ADD_PARTITIONS_TO_TXN, (0, 5)),
    "add_offsets_to_txn": (ApiKey.ADD_OFFSETS_TO_TXN, (0, 4)),
    "end_txn": (ApiKey.END_TXN, (0, 5)),
    "txn_offset_commit": (ApiKey.TXN_OFFSET_COMMIT, (0, 6)),
    "describe_transactions": (ApiKey.DESCRIBE_TRANSACTIONS, (0, 0)),
    "list_transactions": (ApiKey.LIST_TRANSACTIONS, (0, 2)),
    "describe_producers": (ApiKey.DESCRIBE_PRODUCERS, (0, 0)),
    # SASL (kbroker/security/): the exchange, and the SCRAM credentials in /config/users
    "sasl_handshake": (ApiKey.SASL_HANDSHAKE, (0, 1)),
    "sasl_authenticate": (ApiKey.SASL_AUTHENTICATE, (0, 2)),
    "describe_client_quotas": (ApiKey.DESCRIBE_CLIENT_QUOTAS, (0, 1)),
    "alter_client_quotas": (ApiKey.ALTER_CLIENT_QUOTAS, (0, 1)),
    "describe_user_scram_credentials": (ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS, (0, 0)),
    "alter_user_scram_credentials": (ApiKey.ALTER_USER_SCRAM_CREDENTIALS, (0, 0)),
}
HANDLER_MODULES = tuple(HANDLERS)
# A module's ADVERTISED_VERSIONS, where it declares a range wider than the one it serves (none today).
ADVERTISED_VERSIONS: dict[str, tuple[int, int]] = {}


class CloseConnection(Exception):
    """Raised by a handler where Kafka closes the connection instead of answering (e.g. a failed
    acks=0 produce); kafka_apis.py passes it on to the network layer."""


class Handler(NamedTuple):
    api_key: int
    min_version: int
    max_version: int
    handle: Callable[[Any, dict], Awaitable[dict | None]]
    name: str
    advertised_min: int
    advertised_max: int


def load_handlers() -> dict[int, Handler]:
    """The registry by API key. Each handler's module is imported by its API's first request: the
    entry's `handle` is a stand-in that imports the module, puts the module's own `handle` in its
    place in this dict (later requests call it directly, at no extra cost) and serves the request."""
    handlers: dict[int, Handler] = {}
    for module_name, (api_key, (low, high)) in HANDLERS.items():
        ad_low, ad_high = ADVERTISED_VERSIONS.get(module_name, (low, high))
        handlers[int(api_key)] = Handler(int(api_key), low, high, _import_on_first_call(handlers, int(api_key)),
                                         module_name, ad_low, ad_high)
    return handlers


def resolved(handlers: dict[int, Handler], api_key: int) -> Handler:
    """The registry's entry for `api_key` with its module's own `handle`, the module imported now
    if no request has imported it yet. The request pipeline keeps what this returns (a request
    then costs no stand-in coroutine in front of its handler)."""
    handler = handlers[api_key]
    if getattr(handler.handle, "imports_module", False):  # still the stand-in
        module = importlib.import_module(f"{__name__}.{handler.name}")
        handler = handlers[api_key] = handler._replace(handle=module.handle)
    return handler


def _import_on_first_call(handlers: dict[int, Handler], api_key: int) -> Callable[[Any, dict], Awaitable[dict | None]]:
    async def handle(ctx: Any, request: dict) -> dict | None:
        return await resolved(handlers, api_key).handle(ctx, request)

    handle.imports_module = True  # type: ignore[attr-defined]
    return handle
