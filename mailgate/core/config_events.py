"""Configuration as events: gateways live in the compacted `mail.config` topic as GatewayConfigured/GatewayRemoved.

Reads: `mail.config` (the latest record per `<kind>/<name>` key is the gateway's state; compaction keeps history for
the events' retention period). Emits: the events that turn the current state into a desired file's gateways
(`diff`), and the effective Config (the YAML file with its gateways replaced by those in the topic, once any exist).
Secrets are stored only as references ({env}, {file}) or sealed with MAILGATE_SECRET_KEY, never in clear.
"""
from __future__ import annotations

import getpass
import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from mailgate.core import kafka, topics
from mailgate.core.config import Config, ConfigError, InboundGateway, OutboundGateway, Secret, parse_config
from mailgate.core.ids import now_ms
from mailgate.core.topic_reader import Offsets, TopicReader
from schemas import GatewayConfigured, GatewayRemoved, encode

GATEWAY_EVENTS = (GatewayConfigured, GatewayRemoved)
"""The records of `mail.config` that configure gateways (isinstance-ready)."""
KINDS = {"inbound": ("inbound_gateways", InboundGateway), "outbound": ("outbound_gateways", OutboundGateway)}


def config_key(kind: str, name: str) -> str:
    return f"{kind}/{name}"


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
    settings: dict | None  # None: removed
    event: Any


def gateway_state(e) -> GatewayState:
    """The state a GatewayConfigured / GatewayRemoved leaves its gateway in."""
    settings = json.loads(e.settings_json) if isinstance(e, GatewayConfigured) else None
    return GatewayState(e.kind, e.name, settings, e)


async def read_state_to(reader: TopicReader, ends: Offsets) -> tuple[dict[str, GatewayState], list]:
    """(latest state per key, every config event in log order) from `reader`'s position up to `ends`."""
    history, state = [], {}
    async for _, e in reader.read_to(ends):
        if isinstance(e, GATEWAY_EVENTS):  # other control records share the topic (e.g. CachePurgeRequested)
            history.append(e)
            state[config_key(e.kind, e.name)] = gateway_state(e)
    return state, history


async def read_state(cfg: Config) -> tuple[dict[str, GatewayState], list]:
    """(latest state per key, every config event in log order) from mail.config, as it is now."""
    async with TopicReader(cfg, topics.CONFIG, "mailgate-config-reader") as reader:
        await reader.seek("beginning")
        return await read_state_to(reader, await reader.end_offsets())


def effective_config(base: Config, state: dict[str, GatewayState]) -> Config:
    """The file's configuration with its gateways replaced by the topic's, once the topic has any."""
    if not state:
        return base
    data = base.model_dump(mode="python", round_trip=True)
    for kind, (field, _) in KINDS.items():
        data[field] = [s.settings for s in sorted(state.values(), key=lambda s: s.name)
                       if s.kind == kind and s.settings is not None]
    return parse_config(data, "mail.config")


def diff(current: dict[str, GatewayState], desired: Config, operator: str | None = None,
         node: str = "cli") -> list:
    """The events that make the topic's gateways equal to `desired`'s."""
    who = operator or getpass.getuser()
    events, wanted = [], set()
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
        if key not in wanted and have.settings is not None:
            events.append(GatewayRemoved(occurred_at=now_ms(), node=node, kind=have.kind, name=have.name,
                                         operator=who))
    return events


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
        futures = [await p.send(topics.CONFIG, encode(e), key=config_key(e.kind, e.name).encode()) for e in events]
        for f in futures:
            await f
    finally:
        await p.stop()
