"""Configuration as events, the stages' side: the fold of `mail.config` into the configuration in effect. Gateways
live in the compacted topic as GatewayConfigured/GatewayRemoved (key `<kind>/<name>`), the live settings sections
`spam` (thresholds, scorers, weights), `antivirus` (clamd hosts, limits, outbound actions), `relay_networks`,
`auth_users` (SMTP AUTH logins, password hashes only) and `dkim_keys` (DKIM signing keys, private keys as references
or sealed) as SettingsConfigured (key `settings/<section>`).

Reads: `mail.config` (the latest record per key is its state; compaction keeps history for the events' retention
period). Emits: that state (`read_state`, `read_state_to`), the effective Config (the YAML file with its gateways
replaced by those in the topic, once any exist, and each section the topic holds replaced by the topic's) and its
version (`config_version`). The operator's side — the events that write a desired file, with secrets sealed — is
`mailgate/ops/settings/config_writer.py`.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from mailgate.core import topics
from mailgate.core.config import Config, InboundGateway, OutboundGateway, parse_config
from mailgate.core.topic_reader import Offsets, TopicReader
from schemas import GatewayConfigured, GatewayRemoved, SettingsConfigured

GATEWAY_EVENTS = (GatewayConfigured, GatewayRemoved)
"""The records of `mail.config` that configure gateways (isinstance-ready)."""
KINDS: dict[str, tuple[str, type[InboundGateway] | type[OutboundGateway]]] = {
    "inbound": ("inbound_gateways", InboundGateway), "outbound": ("outbound_gateways", OutboundGateway)}
SETTINGS_SECTIONS: dict[str, tuple[str, ...]] = {"spam": ("spam",), "antivirus": ("antivirus",),
                                                  "relay_networks": ("ingress", "relay_networks"),
                                                  "auth_users": ("ingress", "auth", "users"),
                                                  "dkim_keys": ("dkim_signing", "keys")}
"""Settings outside the gateways that every running stage applies live: section name -> its path in the file.
auth_users holds only password hashes; dkim_keys' private keys are stored as references or sealed."""
CONFIG_EVENTS = (GatewayConfigured, GatewayRemoved, SettingsConfigured)
"""The records of mail.config that make up the configuration (other control records share the topic)."""


def config_key(kind: str, name: str) -> str:
    return f"{kind}/{name}"


def state_key(event) -> str:
    """The compacted key of a configuration event: `<kind>/<name>` for a gateway, `settings/<section>` else."""
    if isinstance(event, SettingsConfigured):
        return config_key("settings", event.section)
    return config_key(event.kind, event.name)


def state_entry(event) -> "GatewayState":
    """What a configuration event says the state of its key is now."""
    if isinstance(event, SettingsConfigured):
        return GatewayState("settings", event.section, json.loads(event.settings_json), event)
    settings = json.loads(event.settings_json) if isinstance(event, GatewayConfigured) else None
    return GatewayState(event.kind, event.name, settings, event)


def config_version(cfg: Config) -> str:
    """A short hash of everything that can change live (the gateways and every settings section): replicas that
    apply the same configuration report the same version, so an operator can see when every replica applied it."""
    live = cfg.model_dump(mode="json", include={"inbound_gateways", "outbound_gateways", "spam", "antivirus"})
    live["relay_networks"] = list(cfg.ingress.relay_networks)
    live["auth_users"] = section_value(cfg, "auth_users")
    live["dkim_keys"] = section_value(cfg, "dkim_keys")
    return hashlib.sha256(json.dumps(live, sort_keys=True, default=str).encode()).hexdigest()[:12]


def section_value(cfg: Config, section: str) -> Any:
    """A live settings section of `cfg` as JSON-ready data (secrets dumped as they are: for comparing only)."""
    data: Any = cfg.model_dump(mode="json")
    for key in SETTINGS_SECTIONS[section]:
        data = data[key]
    return data


@dataclass(frozen=True)
class GatewayState:
    kind: str
    name: str
    settings: Any  # a gateway's settings (None: removed), or a settings section's value
    event: Any


async def read_state_to(reader: TopicReader, ends: Offsets) -> tuple[dict[str, GatewayState], list]:
    """(latest state per key, every config event in log order) from `reader`'s position up to `ends`."""
    history, state = [], {}
    async for _, e in reader.read_to(ends):
        if isinstance(e, CONFIG_EVENTS):  # other control records share the topic (e.g. CachePurgeRequested)
            history.append(e)
            state[state_key(e)] = state_entry(e)
    return state, history


async def read_state(cfg: Config) -> tuple[dict[str, GatewayState], list]:
    """(latest state per key, every config event in log order) from mail.config, as it is now."""
    async with TopicReader(cfg, topics.CONFIG, "mailgate-config-reader") as reader:
        await reader.seek("beginning")
        return await read_state_to(reader, await reader.end_offsets())


def effective_config(base: Config, state: dict[str, GatewayState]) -> Config:
    """The file's configuration with its gateways replaced by the topic's, once the topic has any, and each live
    settings section the topic holds replaced by the topic's."""
    if not state:
        return base
    data = base.model_dump(mode="python", round_trip=True)
    if any(s.kind in KINDS for s in state.values()):
        for kind, (field, _) in KINDS.items():
            data[field] = [s.settings for s in sorted(state.values(), key=lambda s: s.name)
                           if s.kind == kind and s.settings is not None]
    for s in state.values():
        if s.kind == "settings" and s.name in SETTINGS_SECTIONS:
            *parents, last = SETTINGS_SECTIONS[s.name]
            node = data
            for key in parents:
                node = node[key]
            node[last] = s.settings
    return parse_config(data, "mail.config", stored=True)
