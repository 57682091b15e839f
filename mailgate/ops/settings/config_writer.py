"""The operator's writing of the configuration to `mail.config`: the events that turn the topic's state into a
desired file's (`diff`), each setting stored with every secret a reference or sealed, and their append.

Reads: the state folded from `mail.config` (`mailgate.core.config_events`, the stages' side), the desired and the
running Config, `MAILGATE_SECRET_KEY` to seal an inline secret. Emits: GatewayConfigured / GatewayRemoved /
SettingsConfigured events (their operator the given name or the login's), appended by `append`; and
`non_live_changes`, the key paths a desired file changes although no stage applies them live, for `config apply` to
refuse. Used by `mailgate config apply|gateway`, `mailgate auth|dkim` and the admin page.
"""
from __future__ import annotations

import getpass
import json
from typing import Any

from pydantic import BaseModel

from mailgate.core import topics
from mailgate.core.config import Config, ConfigError, Secret
from mailgate.core.config_events import (KINDS, SETTINGS_SECTIONS, GatewayState, config_key, section_value,
                                         state_key)
from mailgate.core.ids import now_ms
from mailgate.core.secrets import SecretKeyError, seal, unseal
from mailgate.mail.outputs import Output, append_once
from schemas import GatewayConfigured, GatewayRemoved, SettingsConfigured

NOT_COMPARED = frozenset({"node_name", "inbound_gateways", "outbound_gateways"})
"""Top-level keys `non_live_changes` does not compare: per replica (node_name) or live (the gateways)."""


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


def diff(current: dict[str, GatewayState], desired: Config, operator: str | None = None,
         node: str = "cli", running: Config | None = None) -> list:
    """The events that make the topic's gateways and live settings equal to `desired`'s. A settings section the
    topic does not hold yet is written only when it differs from `running` (the configuration in effect; without
    it, only sections the topic holds are compared)."""
    who = operator or getpass.getuser()
    events: list = []
    wanted: set[str] = set()
    for section in SETTINGS_SECTIONS:
        want = section_value(desired, section)
        have = current.get(config_key("settings", section))
        was = have.settings if have is not None else (section_value(running, section) if running else want)
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
    """Append `events` to mail.config, each under its compacted key, and wait until Kafka acknowledged them all."""
    await append_once(cfg, "mailgate-config", [Output(topics.CONFIG, state_key(e), e) for e in events])
