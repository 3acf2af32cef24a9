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
acks=0); it raises CloseConnection where Kafka closes the connection instead of answering. Adding an API is adding its module to HANDLER_MODULES:
ApiVersions then advertises it, and nothing else advertises anything.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

HANDLER_MODULES = (
    "produce",
    "fetch",
    "list_offsets",
    "metadata",
    "api_versions",
    "create_topics",
    "delete_topics",
    "delete_records",
    "init_producer_id",
    "create_partitions",
    "describe_cluster",
    "describe_topic_partitions",
    "leader_and_isr",
    "update_metadata",
    "stop_replica",
    "alter_partition",
    "offset_for_leader_epoch",
    "controlled_shutdown",
    "elect_leaders",
    "alter_partition_reassignments",
    "list_partition_reassignments",
    "describe_configs",
    "alter_configs",
    "incremental_alter_configs",
    "describe_log_dirs",
    "alter_replica_log_dirs",
    "update_features",
    # ACLs: SECURITY_DISABLED until kbroker has an authorizer
    "describe_acls",
    "create_acls",
    "delete_acls",
    # consumer groups (kbroker/group/)
    "find_coordinator",
    "join_group",
    "sync_group",
    "heartbeat",
    "leave_group",
    "offset_commit",
    "offset_fetch",
    "describe_groups",
    "list_groups",
    "delete_groups",
    "offset_delete",
    "consumer_group_heartbeat",
    "consumer_group_describe",
    # transactions: the log side (kbroker/log/, kbroker/replica/)
    "write_txn_markers",
    # transactions: the coordinator (kbroker/txn/)
    "add_partitions_to_txn",
    "add_offsets_to_txn",
    "end_txn",
    "txn_offset_commit",
    "describe_transactions",
    "list_transactions",
    "describe_producers",
    # SASL (kbroker/security/): the exchange, and the SCRAM credentials in /config/users
    "sasl_handshake",
    "sasl_authenticate",
    "describe_client_quotas",
    "alter_client_quotas",
    "describe_user_scram_credentials",
    "alter_user_scram_credentials",
)


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
    handlers: dict[int, Handler] = {}
    for module_name in HANDLER_MODULES:
        module = importlib.import_module(f"{__name__}.{module_name}")
        low, high = module.VERSIONS
        ad_low, ad_high = getattr(module, "ADVERTISED_VERSIONS", module.VERSIONS)
        handlers[int(module.API_KEY)] = Handler(int(module.API_KEY), low, high, module.handle, module_name,
                                                ad_low, ad_high)
    return handlers
