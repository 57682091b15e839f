"""Gateways as the admin page sees them: documents in, documents out, secrets write-only.

Reads: `mail.config` through `config_events.read_state` (the running gateways; the YAML file's until the topic has
any). Emits: GatewayConfigured / GatewayRemoved built by `config_writer.diff`, so the admin page changes gateways
exactly as `mailgate config apply` does, and every stage picks them up from the topic. A password is accepted on
create or update and stored sealed (or as an {env} reference); it is never returned — documents carry
`{"configured": true}` in its place, and an update that leaves it out keeps the stored one.
"""
from __future__ import annotations

from dataclasses import asdict
from typing import Any

from pydantic import BaseModel, ValidationError

from mailgate.core.config import Config, ConfigError, DeliveryConfig, OutboundGateway, Secret
from mailgate.core.config_events import KINDS, config_version, effective_config, read_state
from mailgate.ops.settings.config_writer import append, diff, stored_settings
from processors.spam.policy import check_gateway_actions

SECRET_PATHS = {"outbound": [("auth_password",)], "inbound": [("smartermail", "password")]}
"""Where each kind of gateway holds a secret (write-only in the API)."""


class GatewayInvalid(Exception):
    """The document does not validate; `fields` maps a dotted field path ('' for the whole form) to a message."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k or 'gateway'}: {v}" for k, v in fields.items()))
        self.fields = fields


class GatewayNotFound(Exception):
    """No gateway of that kind and name."""


class GatewayExists(Exception):
    """Create of a name that is taken."""


class GatewayKindMismatch(Exception):
    """The body says one kind of gateway, the path another (an outbound body PUT at /api/gateways/inbound/...)."""


class VerifyFailed(Exception):
    """"Verify connection before save" failed; `result` says at which step."""

    def __init__(self, result: dict) -> None:
        super().__init__(result.get("message", "verification failed"))
        self.result = result


def public(kind: str, gw: BaseModel) -> dict:
    """The gateway as JSON for the page: every secret replaced by {"configured": true} (and an env name)."""
    def conv(m: BaseModel) -> dict:
        out: dict[str, Any] = {}
        for name in type(m).model_fields:
            v = getattr(m, name)
            if isinstance(v, Secret):
                out[name] = {"configured": True, **({"env": v.env} if v.env else {})}
            elif isinstance(v, BaseModel):
                out[name] = conv(v)
            elif isinstance(v, list):
                out[name] = [conv(x) if isinstance(x, BaseModel) else x for x in v]
            else:
                out[name] = str(v) if v is not None and not isinstance(v, (str, int, float, bool)) else v
        return out
    return {"kind": kind, **conv(gw)}


def field_errors(err: ValidationError) -> dict[str, str]:
    out: dict[str, str] = {}
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"])
        msg = "unknown field" if e["type"] == "extra_forbidden" else e["msg"].removeprefix("Value error, ")
        out.setdefault(path, msg)
    return out


async def _live(cfg: Config):
    state, _ = await read_state(cfg)
    return state, effective_config(cfg, state)


def _find(live: Config, kind: str, name: str) -> BaseModel | None:
    field, _ = KINDS[kind]
    return next((g for g in getattr(live, field) if g.name == name), None)


async def find(cfg: Config, kind: str, name: str) -> BaseModel | None:
    """The running gateway, secrets and all (for server-side use only), or None."""
    _, live = await _live(cfg)
    return _find(live, kind, name) if kind in KINDS else None


async def list_gateways(cfg: Config) -> list[dict]:
    _, live = await _live(cfg)
    return [public(kind, g) for kind, (field, _) in KINDS.items() for g in getattr(live, field)]


async def get_gateway(cfg: Config, kind: str, name: str) -> dict:
    _, live = await _live(cfg)
    gw = _find(live, kind, name) if kind in KINDS else None
    if gw is None:
        raise GatewayNotFound(f"no {kind} gateway named {name!r}")
    return public(kind, gw)


def _keep_secrets(kind: str, doc: dict, old: BaseModel | None) -> dict:
    """Fill each secret left out (absent, empty, or the {"configured": true} placeholder) from the stored gateway."""
    doc = dict(doc)
    for path in SECRET_PATHS[kind]:
        parent, have = doc, old
        for part in path[:-1]:
            sub = parent.get(part)
            if not isinstance(sub, dict):
                break
            parent[part] = dict(sub)
            parent = parent[part]
            have = getattr(have, part, None) if have is not None else None
        else:
            key = path[-1]
            given = parent.get(key)  # an explicit null clears the secret
            placeholder = key not in parent or given == "" or (isinstance(given, dict) and given.get("configured"))
            if placeholder:
                stored = getattr(have, key, None) if have is not None else None
                if stored is not None and not (kind == "outbound" and not doc.get("auth_username")):
                    parent[key] = stored
                else:
                    parent.pop(key, None)
    if kind == "outbound" and not doc.get("auth_username"):
        doc["auth_username"] = None
        doc.pop("auth_password", None)
    return doc


def validate(kind: str, doc: dict, old: BaseModel | None = None) -> BaseModel:
    if kind not in KINDS:
        raise GatewayNotFound(f"unknown gateway kind {kind!r}")
    _, model = KINDS[kind]
    body = {k: v for k, v in _keep_secrets(kind, doc, old).items() if k != "kind"}
    try:
        gw = model.model_validate(body)
    except ValidationError as err:
        raise GatewayInvalid(field_errors(err)) from None
    try:
        stored = stored_settings(gw, "")  # an inline secret needs MAILGATE_SECRET_KEY to be sealed
    except ConfigError as err:
        path = ".".join(p for p in SECRET_PATHS[kind][0])
        raise GatewayInvalid({path: str(err).split(": ", 1)[-1]}) from None
    try:  # what goes to mail.config must read back, or every stage would fail to load the topic
        model.model_validate(stored)
    except ValidationError as err:
        raise GatewayInvalid({k: f"cannot be stored in mail.config: {v}"
                              for k, v in field_errors(err).items()}) from None
    return gw


async def verify(gw: OutboundGateway, delivery: DeliveryConfig) -> dict:
    from egress.gateway_probe import verify_gateway
    try:
        return asdict(await verify_gateway(gw, delivery))
    except ConfigError as err:  # e.g. the password names an environment variable this process does not have
        raise GatewayInvalid({"auth_password": f"cannot be used to verify the connection: {err}"}) from None


async def live_version(cfg: Config) -> str:
    """The version of the configuration mail.config holds now (config_events.config_version)."""
    _, live = await _live(cfg)
    return config_version(live)


async def save(cfg: Config, kind: str, doc: dict, operator: str, *, create: bool, name: str | None = None) -> dict:
    """Create (`create`) or replace the gateway; verify first when it asks for that; the stored document back."""
    if kind in KINDS and doc.get("kind", kind) != kind:  # before "no such gateway": the request contradicts itself
        raise GatewayKindMismatch(f"the body is an {doc.get('kind')!r} gateway, the path names {kind!r}")
    state, live = await _live(cfg)
    if name is not None:
        doc = {**doc, "name": name}
    old = _find(live, kind, str(doc.get("name", ""))) if kind in KINDS else None
    if create and old is not None:
        raise GatewayExists(f"a {kind} gateway named {doc['name']!r} exists")
    if not create and old is None:
        raise GatewayNotFound(f"no {kind} gateway named {name!r}")
    gw = validate(kind, doc, old)
    if kind == "outbound" and gw.verify_before_save and gw.status == "enabled":
        result = await verify(gw, cfg.delivery)
        if not result["ok"]:
            raise VerifyFailed(result)
    await _replace(cfg, state, live, kind, gw.name, gw, operator)
    return public(kind, gw)


async def set_status(cfg: Config, kind: str, name: str, status: str, operator: str) -> dict:
    state, live = await _live(cfg)
    old = _find(live, kind, name) if kind in KINDS else None
    if old is None:
        raise GatewayNotFound(f"no {kind} gateway named {name!r}")
    gw = old.model_copy(update={"status": status})
    await _replace(cfg, state, live, kind, name, gw, operator)
    return public(kind, gw)


async def remove(cfg: Config, kind: str, name: str, operator: str) -> None:
    state, live = await _live(cfg)
    if kind not in KINDS or _find(live, kind, name) is None:
        raise GatewayNotFound(f"no {kind} gateway named {name!r}")
    await _replace(cfg, state, live, kind, name, None, operator)


async def _replace(cfg: Config, state: dict, live: Config, kind: str, name: str, gw: BaseModel | None,
                   operator: str) -> None:
    field, _ = KINDS[kind]
    others = [g for g in getattr(live, field) if g.name != name]
    desired = live.model_copy(update={field: others + ([gw] if gw is not None else [])})
    try:
        check_gateway_actions(desired)  # a spam action no processor could apply is refused, with its path
        events = diff(state, desired, operator, node=cfg.node_name)
    except ConfigError as err:
        raise GatewayInvalid({"": str(err)}) from None
    if events:
        await append(cfg, events)
