"""Which of Kafka's settings kbroker does not act on, and what it does when one is given.

No accepted setting is silently ignored (issue 16, bug 1):
- `UNSUPPORTED`: Kafka settings whose feature kbroker lacks yet (GSSAPI and OAUTHBEARER, authorization,
  delegation tokens, replication and connection quotas, pluggable Java classes...). Given with a value other than Kafka's
  default, they make the broker refuse to start (`refused_settings`): ignoring them would serve
  plaintext, unauthenticated or unlimited while the operator believes otherwise. Left at Kafka's
  default they ask for nothing kbroker lacks. `authorizer.class.name` is served for Kafka's
  AclAuthorizer (and its old name SimpleAclAuthorizer) and refused for any other class; its
  undeclared companions `super.users` and `allow.everyone.if.no.acl.found` are read by it.
  Unknown names under `ssl.`, `sasl.` and the like, the static quotas Kafka 3.0 removed
  (`quota.producer.default`) and per-listener copies of any of these
  (`listener.name.<l>.ssl.keystore.location`, `listener.name.<l>.gssapi.sasl.jaas.config`) are
  refused the same way. SASL with PLAIN and SCRAM is implemented (SASL_IMPLEMENTED, also per
  listener and mechanism: `listener.name.<l>.scram-sha-512.sasl.jaas.config`).
- `NO_EFFECT`: settings that tune something kbroker does not have (thread pools of a JVM
  broker, JMX metrics): accepted, and named
  in one INFO line at start (`ignored_settings`) when the user gives them.
Every other setting is read by the broker; tests/test_config_support.py checks that each key of
the table is read somewhere or listed here.

Must not touch: files, sockets or any other kbroker package.
"""

from __future__ import annotations

import re

from kbroker.config.kafka_config import STATIC_BROKER_CONFIG, KafkaConfig
from kbroker.config.settings import BROKER_CONFIG_BY_NAME

# Unknown names under these prefixes belong to features kbroker lacks (TLS, SASL, tokens, ACLs).
UNSUPPORTED_PREFIXES = ("ssl.", "sasl.", "zookeeper.ssl.", "delegation.token.", "authorizer.")

# Not declared by KafkaConfig: the static default quotas went in Kafka 3.0, and a broker
# ignoring them would run unlimited.
UNDECLARED_UNSUPPORTED = frozenset({"quota.producer.default", "quota.consumer.default"})

# authorizer.class.name values kbroker serves (kbroker/security/acl_authorizer.py): Kafka's
# ZooKeeper-mode AclAuthorizer under its current and its old name. Any other class is refused.
ACL_AUTHORIZER_CLASSES = frozenset({"kafka.security.authorizer.AclAuthorizer",
                                    "kafka.security.auth.SimpleAclAuthorizer"})
# Not declared by KafkaConfig either: Kafka hands them to the authorizer, which reads them.
AUTHORIZER_SETTINGS = frozenset({"super.users", "allow.everyone.if.no.acl.found"})

_SSL_SASL = re.compile(r"(ssl|sasl)\..+")
# The TLS settings kbroker acts on (kbroker/security/ssl_factory.py), also per listener as
# listener.name.<listener>.<setting>.
SSL_IMPLEMENTED = frozenset({
    "ssl.protocol", "ssl.enabled.protocols", "ssl.cipher.suites", "ssl.client.auth",
    "ssl.endpoint.identification.algorithm", "ssl.principal.mapping.rules",
    "ssl.keystore.type", "ssl.keystore.location", "ssl.keystore.password", "ssl.key.password",
    "ssl.keystore.key", "ssl.keystore.certificate.chain",
    "ssl.truststore.type", "ssl.truststore.location", "ssl.truststore.password", "ssl.truststore.certificates",
})  # fmt: skip
# Kafka re-reads key stores on a dynamic update (with these checks); kbroker reads them at start only.
_SSL_NO_EFFECT = ("ssl.allow.dn.changes", "ssl.allow.san.changes")
# The SASL settings kbroker implements (kbroker/security/sasl_config.py), also per listener and
# per listener and mechanism (listener.name.<l>.scram-sha-256.sasl.jaas.config).
SASL_IMPLEMENTED = frozenset({"sasl.enabled.mechanisms", "sasl.mechanism.inter.broker.protocol", "sasl.jaas.config",
                              "sasl.server.max.receive.size", "connections.max.reauth.ms"})
# A pattern string, not a compiled pattern: re compiles it (once, in its cache) on first use, not at every start.
_SASL_MECHANISM_PREFIXED = r"(plain|scram-sha-256|scram-sha-512)\.(sasl\.jaas\.config|connections\.max\.reauth\.ms)"
# listener.name.<listener>.<setting> and listener.name.<listener>.<mechanism>.sasl.jaas.config
_LISTENER_PREFIXED = r"listener\.name\.[^.]+\.(?P<setting>.+)"

UNSUPPORTED: frozenset[str] = frozenset({
    # Authentication, TLS
    "principal.builder.class", "security.providers",
    *(name for name in BROKER_CONFIG_BY_NAME
      if _SSL_SASL.fullmatch(name) and name not in SSL_IMPLEMENTED and name not in _SSL_NO_EFFECT
      and name not in SASL_IMPLEMENTED),
    # ZooKeeper security and migration
    "zookeeper.set.acl", "zookeeper.metadata.migration.enable", "zookeeper.clientCnxnSocket",
    *(name for name in BROKER_CONFIG_BY_NAME if name.startswith("zookeeper.ssl.")),
    # Delegation tokens and encoded dynamic passwords
    "delegation.token.master.key", "delegation.token.secret.key", "delegation.token.max.lifetime.ms",
    "delegation.token.expiry.time.ms", "delegation.token.expiry.check.interval.ms",
    "password.encoder.secret", "password.encoder.old.secret", "password.encoder.keyfactory.algorithm",
    "password.encoder.cipher.algorithm", "password.encoder.key.length", "password.encoder.iterations",
    # Quotas
    "client.quota.callback.class",
    "replication.quota.window.num", "replication.quota.window.size.seconds",
    "alter.log.dirs.replication.quota.window.num", "alter.log.dirs.replication.quota.window.size.seconds",
    # Java classes kbroker cannot load
    "create.topic.policy.class.name", "alter.config.policy.class.name", "replica.selector.class",
    "metric.reporters", "kafka.metrics.reporters",
    # Features not there yet
    "process.roles", "remote.log.storage.system.enable",
    "request.timeout.ms", "replica.socket.receive.buffer.bytes",
})  # fmt: skip

_THREADS = "one event loop, no thread pools"
_METRICS = "no JMX metrics"
_KIP_848_BOUNDS = ("only checked at start against the broker's default (per-group configurations, which they "
                   "bound in Kafka, are not served)")
NO_EFFECT: dict[str, str] = {
    "num.network.threads": _THREADS, "num.io.threads": _THREADS, "background.threads": _THREADS,
    "num.replica.alter.log.dirs.threads": _THREADS, "num.recovery.threads.per.data.dir": _THREADS,
    "group.coordinator.threads": _THREADS,
    "zookeeper.sync.time.ms": "unused since Kafka 3, as in Kafka",
    "zookeeper.max.in.flight.requests": "the ZooKeeper client (kazoo) has no such limit",
    "socket.connection.setup.timeout.ms": "the broker's own connections use controller.socket.timeout.ms",
    "socket.connection.setup.timeout.max.ms": "the broker's own connections use controller.socket.timeout.ms",
    "early.start.listeners": "the authorizer loads before any listener starts",
    "telemetry.max.bytes": "client telemetry is not served",
    "log.dir.failure.timeout.ms": "KRaft only, as in Kafka",
    "log.message.format.version": "ignored at inter.broker.protocol.version 3.0 and later, as in Kafka "
                                  "(below 3.0 a version before 0.11.0 is refused)",
    "log.local.retention.ms": "no tiered storage", "log.local.retention.bytes": "no tiered storage",
    "fetch.purgatory.purge.interval.requests": "the purgatory drops completed operations at once",
    "producer.purgatory.purge.interval.requests": "the purgatory drops completed operations at once",
    "delete.records.purgatory.purge.interval.requests": "the purgatory drops completed operations at once",
    "producer.id.expiration.check.interval.ms": "idle producer ids are dropped when their log is next written",
    **{name: "key stores are read once, at start" for name in _SSL_NO_EFFECT},
    "metrics.num.samples": _METRICS, "metrics.sample.window.ms": _METRICS, "metrics.recording.level": _METRICS,
    **{name: _KIP_848_BOUNDS for name in ("group.consumer.min.session.timeout.ms",
                                          "group.consumer.max.session.timeout.ms",
                                          "group.consumer.min.heartbeat.interval.ms",
                                          "group.consumer.max.heartbeat.interval.ms")},
    "auto.include.jmx.reporter": _METRICS, "kafka.metrics.polling.interval.secs": _METRICS,
}  # fmt: skip


def _given(config: KafkaConfig, name: str) -> bool:
    """Set by the user (file, env or --override) to something other than Kafka's default."""
    return config.source(name) == STATIC_BROKER_CONFIG and config.get(name) != BROKER_CONFIG_BY_NAME[name].default


def _unsupported_name(name: str) -> bool:
    """An undeclared name that belongs to a feature kbroker lacks (see the module docstring)."""
    prefixed = re.fullmatch(_LISTENER_PREFIXED, name)
    if prefixed:
        setting = prefixed["setting"]
        if setting in SSL_IMPLEMENTED or setting in SASL_IMPLEMENTED or re.fullmatch(_SASL_MECHANISM_PREFIXED, setting):
            return False
        return setting in UNSUPPORTED or _unsupported_name(setting) or ".sasl." in f".{setting}"
    return name in UNDECLARED_UNSUPPORTED or name.startswith(UNSUPPORTED_PREFIXES)


def refused_settings(config: KafkaConfig) -> list[str]:
    """The settings given that ask for something kbroker does not do yet, sorted."""
    refused = {name for name in UNSUPPORTED if _given(config, name)}
    if config.get("authorizer.class.name") not in ("", *ACL_AUTHORIZER_CLASSES):
        refused.add("authorizer.class.name")
    refused.update(name for name in (*config.unknown_keys, *config.listener_settings) if _unsupported_name(name))
    return sorted(refused)


def unknown_settings(config: KafkaConfig) -> list[str]:
    """The undeclared settings given that nothing reads: the authorizer's own count as read
    when an authorizer is configured."""
    if config.get("authorizer.class.name"):
        return [name for name in config.unknown_keys if name not in AUTHORIZER_SETTINGS]
    return list(config.unknown_keys)


def ignored_settings(config: KafkaConfig) -> dict[str, list[str]]:
    """The settings given that have no effect in kbroker, grouped by why."""
    ignored: dict[str, list[str]] = {}
    for name, reason in NO_EFFECT.items():
        if config.source(name) == STATIC_BROKER_CONFIG:
            ignored.setdefault(reason, []).append(name)
    return {reason: sorted(names) for reason, names in ignored.items()}


def refusal_message(refused: list[str]) -> str:
    return (f"not supported by kbroker yet: {', '.join(refused)} (kbroker would run without them; "
            "remove them, or leave them at Kafka's default)")


def ignored_message(ignored: dict[str, list[str]]) -> str:
    return "settings with no effect in kbroker: " + "; ".join(
        f"{', '.join(names)} ({reason})" for reason, names in ignored.items())
