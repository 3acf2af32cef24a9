"""BrokerServices: the services a request handler may use, built once by the server at start-up.

Handlers reach the broker through `ctx.services` only, never through KafkaServer: the replica
manager, the metadata cache, the admin manager, the controller, the producer id manager, the v0
consumer offsets kept in ZooKeeper, the configuration and this broker's id, plus the fence
that refuses stale controller requests (api/controller_fence.py), the SCRAM credentials
(cache and Describe/AlterUserScramCredentials), the client quotas (ClientQuotaManagers and
Describe/AlterClientQuotas' ClientQuotaAdmin), the fetch sessions (FetchManager, built with the first Fetch), the SASL listeners' settings and the authorizer (None
without `authorizer.class.name`; handlers ask it through api/auth_helper.py). The admin manager and the group and transaction
coordinators are built the first time something needs them (a broker that never sees a group
or a transaction starts faster and idles in less memory), behind the non-optional
`group_coordinator` and `transaction_coordinator` accessors.
It holds no sockets and not the server: nothing here may reach past the services.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the group coordinator is imported only when it is first built
    from kbroker.api.controller_fence import ControllerFence
    from kbroker.config import KafkaConfig
    from kbroker.controller.kafka_controller import KafkaController
    from kbroker.controller.producer_id_manager import ZkProducerIdManager
    from kbroker.group.group_coordinator import GroupCoordinator
    from kbroker.group.zk_consumer_offsets import ZkConsumerOffsets
    from kbroker.log.append_offload import AppendOffloader
    from kbroker.metadata.admin_manager import AdminManager
    from kbroker.metadata.metadata_cache import MetadataCache
    from kbroker.replica.fetch_session import FetchManager
    from kbroker.replica.replica_manager import ReplicaManager
    from kbroker.security.acl_authorizer import AclAuthorizer
    from kbroker.security.client_quota_admin import ClientQuotaAdmin
    from kbroker.security.client_quota_manager import ClientQuotaManagers
    from kbroker.security.credential_cache import CredentialCache, ScramCredentialManager
    from kbroker.security.sasl_config import ListenerSaslConfig
    from kbroker.txn.transaction_coordinator import TransactionCoordinator


@dataclass(slots=True, eq=False)
class BrokerServices:
    """What handlers reach through `ctx.services`: the broker's services, built once at start-up."""

    broker_id: int
    config: KafkaConfig
    metadata_cache: MetadataCache
    replica_manager: ReplicaManager
    # CreateTopics, DeleteTopics, CreatePartitions, topic configs and auto-creation: built with
    # the first request that needs it, so a start does not import it.
    build_admin_manager: Callable[[], AdminManager]
    controller: KafkaController
    producer_id_manager: ZkProducerIdManager
    zk_consumer_offsets: ZkConsumerOffsets
    controller_fence: ControllerFence
    build_group_coordinator: Callable[[], GroupCoordinator]
    build_transaction_coordinator: Callable[[], TransactionCoordinator]
    # The SCRAM credentials (their cache and Describe/AlterUserScramCredentials), built the first
    # time a SASL login or a SCRAM request needs them: a broker without SASL never imports them.
    build_scram_credentials: Callable[[], tuple[CredentialCache, ScramCredentialManager]]
    # Client quotas: the throttling side, always there (`enabled` False while no quota exists),
    # and Describe/AlterClientQuotas' side, built with the first such request.
    client_quotas: ClientQuotaManagers
    build_client_quota_admin: Callable[[], ClientQuotaAdmin]
    authorizer: AclAuthorizer | None = None  # `authorizer.class.name`; None: everyone may do anything
    # The SASL listeners' settings by listener name; a listener missing here is not SASL.
    sasl_listeners: dict[str, ListenerSaslConfig] = field(default_factory=dict)
    # `kbroker.append.offload.threads`: large appends validated in worker threads; None: off.
    append_offloader: AppendOffloader | None = None
    _admin_manager: AdminManager | None = field(default=None, init=False, repr=False)
    _group_coordinator: GroupCoordinator | None = field(default=None, init=False, repr=False)
    _transaction_coordinator: TransactionCoordinator | None = field(default=None, init=False, repr=False)
    _scram: tuple[CredentialCache, ScramCredentialManager] | None = field(default=None, init=False, repr=False)
    _client_quota_admin: ClientQuotaAdmin | None = field(default=None, init=False, repr=False)
    _fetch_manager: FetchManager | None = field(default=None, init=False, repr=False)

    @property
    def fetch_manager(self) -> FetchManager:
        """The fetch sessions (KIP-227), built with the first Fetch."""
        manager = self._fetch_manager
        if manager is None:
            from kbroker.replica.fetch_session import FetchManager, FetchSessionCache

            slots = self.config.get("max.incremental.fetch.session.cache.slots")
            manager = self._fetch_manager = FetchManager(FetchSessionCache(slots))
        return manager

    @property
    def started_fetch_manager(self) -> FetchManager | None:
        """The fetch sessions if any Fetch was served."""
        return self._fetch_manager

    @property
    def admin_manager(self) -> AdminManager:
        admin = self._admin_manager
        if admin is None:
            admin = self._admin_manager = self.build_admin_manager()
        return admin

    @property
    def client_quota_admin(self) -> ClientQuotaAdmin:
        admin = self._client_quota_admin
        if admin is None:
            admin = self._client_quota_admin = self.build_client_quota_admin()
        return admin

    @property
    def credential_cache(self) -> CredentialCache:
        return self._scram_parts()[0]

    @property
    def scram_credentials(self) -> ScramCredentialManager:
        return self._scram_parts()[1]

    @property
    def started_credential_cache(self) -> CredentialCache | None:
        """The credential cache if it was built: without one, no change notification has anything to refresh."""
        return None if self._scram is None else self._scram[0]

    def _scram_parts(self) -> tuple[CredentialCache, ScramCredentialManager]:
        parts = self._scram
        if parts is None:
            parts = self._scram = self.build_scram_credentials()
        return parts

    @property
    def group_coordinator(self) -> GroupCoordinator:
        """The group coordinator, built and started the first time anything needs it."""
        coordinator = self._group_coordinator
        if coordinator is None:
            coordinator = self._group_coordinator = self.build_group_coordinator()
        return coordinator

    @property
    def started_group_coordinator(self) -> GroupCoordinator | None:
        """The group coordinator if it was built: without one, no group has state to update."""
        return self._group_coordinator

    @property
    def transaction_coordinator(self) -> TransactionCoordinator:
        """The transaction coordinator, built and started the first time anything needs it."""
        coordinator = self._transaction_coordinator
        if coordinator is None:
            coordinator = self._transaction_coordinator = self.build_transaction_coordinator()
        return coordinator

    @property
    def started_transaction_coordinator(self) -> TransactionCoordinator | None:
        """The transaction coordinator if it was built."""
        return self._transaction_coordinator
