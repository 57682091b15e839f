"""Configuration as events: gateways live in the compacted `mail.config` topic as GatewayConfigured/GatewayRemoved,
and the live settings sections (spam scoring, relay networks) as SettingsConfigured.

Reads: `mail.config` (the latest record per `<kind>/<name>` key is the gateway's state; compaction keeps history for
the events' retention period). Emits: the events that turn the current state into a desired file's gateways
(`diff`), and the effective Config (the YAML file with its gateways replaced by those in the topic, once any exist).
Secrets are stored only as references ({env}, {file}) or sealed with MAILGATE_SECRET_KEY, never in clear.
"""
from __future__ import annotations

import getpass
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from mailgate.core import kafka, topics
from mailgate.core.config import Config, ConfigError, InboundGateway, OutboundGateway, Secret, parse_config
from mailgate.core.ids import now_ms
from mailgate.core.topic_reader import Offsets, TopicReader
from schemas import GatewayConfigured, GatewayRemoved, SettingsConfigured, encode

GATEWAY_EVENTS = (GatewayConfigured, GatewayRemoved)
"""The records of `mail.config` that configure gateways (isinstance-ready)."""
KINDS = {"inbound": ("inbound_gateways", InboundGateway), "outbound": ("outbound_gateways", OutboundGateway)}
SETTINGS_SECTIONS: dict[str, tuple[str, ...]] = {"spam": ("spam",), "relay_networks": ("ingress", "relay_networks"),
                                                  "auth_users": ("ingress", "auth", "users"),
                                                  "dkim_keys": ("dkim_signing", "keys")}
"""Settings outside the gateways that every running stage applies live: section name -> its path in the file.
auth_users holds only password hashes; dkim_keys' private keys are stored as references or sealed."""
CONFIG_EVENTS = (GatewayConfigured, GatewayRemoved, SettingsConfigured)
"""The records of mail.config that make up the configuration (other control records share the topic)."""
NOT_COMPARED = frozenset({"node_name", "inbound_gateways", "outbound_gateways"})
"""Top-level keys `non_live_changes` does not compare: per replica (node_name) or live (the gateways)."""


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
    """A short hash of everything that can change live (gateways, spam, relay networks): replicas that apply the
    same configuration report the same version, so an operator can see when every replica has applied a change."""
    live = cfg.model_dump(mode="json", include={"inbound_gateways", "outbound_gateways", "spam"})
    live["relay_networks"] = list(cfg.ingress.relay_networks)
    live["auth_users"] = _section_value(cfg, "auth_users")
    live["dkim_keys"] = _section_value(cfg, "dkim_keys")
    return hashlib.sha256(json.dumps(live, sort_keys=True, default=str).encode()).hexdigest()[:12]


def non_live_changes(running: Config, desired: Config) -> list[str]:
    """The key paths that differ between the running file and `desired` although no stage applies them live
    (listen addresses, Kafka, delivery timers...): `config apply` refuses such a file instead of ignoring them."""
    a = running.model_dump(mode="json", exclude=set(NOT_COMPARED))
    b = desired.model_dump(mode="json", exclude=set(NOT_COMPARED))
    for path in SETTINGS_SECTIONS.values():
        for d in (a, b):
            _pop(d, path)
    return sorted(_differences(a, b, ""))


def _pop(data: dict, path: tuple[str, ...]) -> None:
    for key in path[:-1]:
        data = data.get(key, {})
    data.pop(path[-1], None)


def _differences(a: Any, b: Any, path: str) -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(a.keys() | b.keys()):
            out += _differences(a.get(k), b.get(k), f"{path}.{k}" if path else k)
        return out
    return [] if a == b else [path]


def _section_value(cfg: Config, section: str) -> Any:
    data: Any = cfg.model_dump(mode="json")
    for key in SETTINGS_SECTIONS[section]:
        data = data[key]
    return data


def stored_section(cfg: Config, section: str) -> Any:
    """A live settings section as JSON-ready data for the topic, every secret in it a reference or sealed."""
    node: Any = cfg
    for key in SETTINGS_SECTIONS[section]:
        node = getattr(node, key)
    return _stored_value(node, section)


def _stored_secret(secret: Secret, path: str) -> dict:
    if secret.env is not None:
        return {"env": secret.env}
    if secret.file is not None:
        return {"file": str(secret.file)}
    if secret.sealed is not None:
        return {"sealed": secret.sealed}
    from mailgate.core.secrets import SecretKeyError, seal
    try:
        return {"sealed": seal(secret.reveal())}
    except SecretKeyError as err:
        raise ConfigError(f"{path}: an inline secret can be stored only sealed: {err}; "
                          f"or give it as {{env: NAME}}") from None


def stored_settings(gw: BaseModel, path: str) -> dict:
    """The gateway as JSON-ready data for the topic, every secret a reference or sealed."""
    out: dict[str, Any] = {}
    for name in type(gw).model_fields:
        out[name] = _stored_value(getattr(gw, name), f"{path}.{name}")
    return out


def _stored_value(value: Any, path: str) -> Any:
    if isinstance(value, Secret):
        return _stored_secret(value, path)
    if isinstance(value, BaseModel):
        return stored_settings(value, path)
    if isinstance(value, (list, tuple)):
        return [_stored_value(v, f"{path}.{i}") for i, v in enumerate(value)]
    return json.loads(json.dumps(value, default=str))


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


def diff(current: dict[str, GatewayState], desired: Config, operator: str | None = None,
         node: str = "cli", running: Config | None = None) -> list:
    """The events that make the topic's gateways and live settings equal to `desired`'s. A settings section the
    topic does not hold yet is written only when it differs from `running` (the configuration in effect; without
    it, only sections the topic holds are compared)."""
    who = operator or getpass.getuser()
    events: list = []
    wanted: set[str] = set()
    for section in SETTINGS_SECTIONS:
        want = _section_value(desired, section)
        have = current.get(config_key("settings", section))
        was = have.settings if have is not None else (_section_value(running, section) if running else want)
        if _without_nulls(want) != _without_nulls(was):
            events.append(SettingsConfigured(occurred_at=now_ms(), node=node, section=section,
                                             settings_json=json.dumps(stored_section(desired, section),
                                                                      sort_keys=True), operator=who))
    for kind, (field, _) in KINDS.items():
        for i, gw in enumerate(getattr(desired, field)):
            key = config_key(kind, gw.name)
            wanted.add(key)
            settings = stored_settings(gw, f"{field}.{i}")
            have = current.get(key)
            if have is None or have.settings is None or not _same(have.settings, settings):
                events.append(GatewayConfigured(occurred_at=now_ms(), node=node, kind=kind, name=gw.name,
                                                settings_json=json.dumps(settings, sort_keys=True), operator=who))
    for key, have in current.items():
        if have.kind in KINDS and key not in wanted and have.settings is not None:
            events.append(GatewayRemoved(occurred_at=now_ms(), node=node, kind=have.kind, name=have.name,
                                         operator=who))
    return events


def _without_nulls(value: Any) -> Any:
    """`value` without null members of objects: a stored secret holds only its one reference, a dumped one all four."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _same(a: dict, b: dict) -> bool:
    """Equal settings; sealed secrets compare by what they unseal to (each sealing differs)."""
    if a.keys() != b.keys():
        return False
    for k in a:
        x, y = a[k], b[k]
        if isinstance(x, dict) and isinstance(y, dict):
            if "sealed" in x and "sealed" in y:
                from mailgate.core.secrets import unseal
                try:
                    if unseal(x["sealed"]) != unseal(y["sealed"]):
                        return False
                except Exception:
                    return False
            elif not _same(x, y):
                return False
        elif x != y:
            return False
    return True


async def append(cfg: Config, events: list) -> None:
    p = kafka.producer(cfg, "mailgate-config")
    await p.start()
    try:
        futures = [await p.send(topics.CONFIG, encode(e), key=state_key(e).encode()) for e in events]
        for f in futures:
            await f
    finally:
        await p.stop()
