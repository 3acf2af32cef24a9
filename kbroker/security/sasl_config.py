"""The SASL settings of each listener and of the broker's own connections, read as Kafka reads them.

Per listener (Kafka's ListenerName.configPrefix and saslMechanismConfigPrefix):
- `listener.name.<l>.sasl.enabled.mechanisms`, else `sasl.enabled.mechanisms`;
- `listener.name.<l>.<mechanism>.sasl.jaas.config`, else `sasl.jaas.config` (kbroker's stand-in
  for the static JAAS file's KafkaServer section, which it does not read);
- `connections.max.reauth.ms` (also per listener and mechanism).
PLAIN takes its users from PlainLoginModule's `user_<name>` options; SCRAM from the credential
store (/config/users). The inter-broker client logs in with the `username`/`password` options of
the inter-broker listener's entry for `sasl.mechanism.inter.broker.protocol`.
Only PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 are served: GSSAPI and OAUTHBEARER are refused at start.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kbroker.config.kafka_config import KafkaConfig
from kbroker.config.value_types import ConfigError, split_list
from kbroker.security.jaas import (
    PLAIN_LOGIN_MODULE,
    SCRAM_LOGIN_MODULE,
    JaasConfigError,
    LoginModuleEntry,
    parse_jaas_config,
    plain_users,
)
from kbroker.security.scram import SCRAM_MECHANISMS

PLAIN = "PLAIN"
SERVED_MECHANISMS = (PLAIN, *SCRAM_MECHANISMS)
SASL_PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL")
_LOGIN_MODULES = {PLAIN: PLAIN_LOGIN_MODULE, **{m: SCRAM_LOGIN_MODULE for m in SCRAM_MECHANISMS}}


@dataclass(frozen=True)
class ListenerSaslConfig:
    listener_name: str
    enabled_mechanisms: tuple[str, ...]
    plain_users: dict[str, str] = field(default_factory=dict)
    reauth_ms: dict[str, int] = field(default_factory=dict)  # connections.max.reauth.ms by mechanism
    failed_authentication_delay_ms: int = 100
    max_receive_size: int = 524288


@dataclass(frozen=True)
class SaslClientLogin:
    """How this broker authenticates to the others: mechanism, username, password."""
    mechanism: str
    username: str
    password: str


def _listener_value(config: KafkaConfig, listener: str, name: str, mechanism: str | None = None) -> str | None:
    prefix = f"listener.name.{listener.lower()}."
    keys = [f"{prefix}{mechanism.lower()}.{name}"] if mechanism else []
    keys.append(prefix + name)
    for key in keys:
        if key in config.listener_settings:
            return config.listener_settings[key]
    return None


def enabled_mechanisms(config: KafkaConfig, listener: str) -> tuple[str, ...]:
    text = _listener_value(config, listener, "sasl.enabled.mechanisms")
    names = split_list(text) if text is not None else config.get("sasl.enabled.mechanisms")
    return tuple(dict.fromkeys(n.strip() for n in names if n.strip()))


def jaas_entry(config: KafkaConfig, listener: str, mechanism: str) -> LoginModuleEntry:
    """The listener's login module entry for `mechanism`; ConfigError with Kafka's message if none."""
    key = f"listener.name.{listener.lower()}.{mechanism.lower()}.sasl.jaas.config"
    text = config.listener_settings.get(key)
    if text is None:
        secret = config.get("sasl.jaas.config")  # a Password, or None
        text = secret.value if secret is not None else None
        key = "sasl.jaas.config"
    if not text:
        raise ConfigError(f"Could not find a 'KafkaServer' or '{listener.lower()}.KafkaServer' entry in the JAAS "
                          f"configuration: set {key} (listener {listener}, SASL mechanism {mechanism})")
    try:
        entries = parse_jaas_config(str(text))
    except JaasConfigError as exc:
        raise ConfigError(f"Invalid value for configuration {key}: {exc}") from None
    module = _LOGIN_MODULES[mechanism]
    if key == "sasl.jaas.config":  # like the JAAS file's KafkaServer section: one entry per login module
        entries = [e for e in entries if e.login_module == module] or entries
    if len(entries) != 1:
        raise ConfigError(f"Invalid value for configuration {key}: JAAS config property contains "
                          f"{len(entries)} login modules, should be 1 module")
    entry = entries[0]
    if entry.login_module != module:
        raise ConfigError(f"Invalid value for configuration {key}: SASL mechanism {mechanism} needs "
                          f"{module}, not {entry.login_module}")
    return entry


def _reauth_ms(config: KafkaConfig, listener: str, mechanism: str) -> int:
    text = _listener_value(config, listener, "connections.max.reauth.ms", mechanism)
    try:
        return int(text) if text is not None else config.get("connections.max.reauth.ms")
    except ValueError:
        raise ConfigError(f"Invalid value {text!r} for configuration connections.max.reauth.ms: "
                          "not a number") from None


def listener_sasl_configs(config: KafkaConfig) -> dict[str, ListenerSaslConfig]:
    """The SASL listeners' settings; ConfigError for what Kafka would refuse or kbroker lacks."""
    configs: dict[str, ListenerSaslConfig] = {}
    for endpoint in config.listeners:
        if endpoint.security_protocol not in SASL_PROTOCOLS:
            continue
        listener = endpoint.listener_name
        mechanisms = enabled_mechanisms(config, listener)
        if not mechanisms:
            raise ConfigError(f"No SASL mechanisms are enabled for listener {listener}: set sasl.enabled.mechanisms")
        unserved = [m for m in mechanisms if m not in SERVED_MECHANISMS]
        if unserved:
            raise ConfigError(
                f"Invalid value {','.join(mechanisms)!r} for configuration sasl.enabled.mechanisms (listener "
                f"{listener}): kbroker does not serve {', '.join(unserved)}; use PLAIN, SCRAM-SHA-256, SCRAM-SHA-512")
        users: dict[str, str] = {}
        for mechanism in mechanisms:
            entry = jaas_entry(config, listener, mechanism)
            if mechanism == PLAIN:
                users = plain_users(entry)
        configs[listener] = ListenerSaslConfig(
            listener, mechanisms, users, {m: _reauth_ms(config, listener, m) for m in mechanisms},
            config.get("connection.failed.authentication.delay.ms"), config.get("sasl.server.max.receive.size"))
    return configs


def inter_broker_login(config: KafkaConfig) -> SaslClientLogin | None:
    """The broker's own SASL login when the inter-broker listener uses SASL, else None; ConfigError
    with Kafka's message when its mechanism is not enabled there."""
    listener = config.inter_broker_listener_name
    protocols = config.listener_security_protocol_map
    control = config.control_plane_listener_name
    if control is not None and (protocols.get(control) in SASL_PROTOCOLS) != (protocols.get(listener) in SASL_PROTOCOLS):
        raise ConfigError(f"control.plane.listener.name {control} ({protocols.get(control)}) and the inter-broker "
                          f"listener {listener} ({protocols.get(listener)}) must both use SASL or neither: kbroker's "
                          "own connections log in one way")
    if protocols.get(listener) not in SASL_PROTOCOLS:
        return None
    mechanism = config.get("sasl.mechanism.inter.broker.protocol")
    if mechanism not in enabled_mechanisms(config, listener):
        raise ConfigError("sasl.mechanism.inter.broker.protocol must be included in sasl.enabled.mechanisms "
                          "when SASL is used for inter-broker communication")
    options = jaas_entry(config, listener, mechanism).options
    if "username" not in options or "password" not in options:
        raise ConfigError(f"the JAAS configuration of listener {listener} for {mechanism} needs username and "
                          "password options: the broker logs in with them to the other brokers")
    return SaslClientLogin(mechanism, options["username"], options["password"])
