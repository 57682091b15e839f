"""SMTP AUTH users and DKIM signing keys as live configuration: list, add, change, remove — for the admin API and CLI.

Reads: `mail.config` through `config_events.read_state` (the running `ingress.auth.users` and `dkim_signing.keys`:
the YAML file's until the topic holds the section). Emits: one SettingsConfigured per change (section `auth_users`
or `dkim_keys`), which every running ingress and egress applies without restart, like the admin's gateway edits.
Secrets are write-only: a password is hashed with scrypt here and only the hash is stored; a DKIM private key is
generated here and stored sealed with MAILGATE_SECRET_KEY. Neither is ever returned: documents carry
`{"configured": true}` in their place, and a key's document carries the DNS TXT record to publish instead.
"""
from __future__ import annotations

import json
import re
from typing import Any

from pydantic import ValidationError

from mailgate.core.config import AuthUser, Config, ConfigError, DkimKey, Secret
from mailgate.core.config_events import (append, config_version, effective_config, read_state, stored_section)
from mailgate.core.ids import now_ms
from mailgate.core.passwords import hash_password
from mailgate.core.secrets import SecretKeyError, seal
from mailgate.ops.cli.exits import OperatorError, UsageError
from mailgate.mail.authres.dkim_keys import generate_ed25519_key, generate_private_key, public_record, record_name
from schemas import SettingsConfigured

DOMAIN = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$")
"""A signing domain: a fully qualified host name (at least two labels)."""
SELECTOR = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_-]{0,62})$")
"""A selector: one DNS label (RFC 6376 3.1 allows dotted selectors; one label keeps the TXT name simple)."""
USERNAME = re.compile(r"^[\x21-\x7e]{1,254}$")
"""A login name: printable ASCII without spaces (what AUTH PLAIN/LOGIN clients send)."""
SENDER = re.compile(r"^[^@\s]{0,64}@(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$")
"""An allowed sender: `user@domain` or `@domain` (any user of the domain)."""
KEY_BITS = (1024, 2048, 3072)
ALGORITHMS = ("rsa", "ed25519")
"""rsa (rsa-sha256, what every verifier checks) or ed25519 (ed25519-sha256, RFC 8463; not every verifier knows it)."""
MAX_PASSWORD_CHARS = 1024
MAX_SENDERS = 1000


class SettingInvalid(UsageError):
    """The input does not validate; `fields` maps a field name ('' for the whole input) to a message."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k or 'input'}: {v}" for k, v in fields.items()))
        self.fields = fields


class SettingNotFound(OperatorError):
    """No AUTH user of that name, or no DKIM key for that domain and selector."""


class SettingExists(UsageError):
    """Add of a user name, or of a domain's key, that is already configured."""


async def _live(cfg: Config) -> Config:
    state, _ = await read_state(cfg)
    return effective_config(cfg, state)


async def _write(cfg: Config, desired: Config, section: str, operator: str) -> str:
    """Write `section` of `desired` to mail.config; the configuration version it makes."""
    try:
        settings = stored_section(desired, section)
    except ConfigError as err:
        raise SettingInvalid({"": str(err)}) from None
    await append(cfg, [SettingsConfigured(occurred_at=now_ms(), node=cfg.node_name, section=section,
                                          settings_json=json.dumps(settings, sort_keys=True), operator=operator)])
    return config_version(desired)


def _with_auth_users(live: Config, users: list[AuthUser]) -> Config:
    auth = live.ingress.auth.model_copy(update={"users": users})
    return live.model_copy(update={"ingress": live.ingress.model_copy(update={"auth": auth})})


def _with_dkim_keys(live: Config, keys: list[DkimKey]) -> Config:
    return live.model_copy(update={"dkim_signing": live.dkim_signing.model_copy(update={"keys": keys})})


# --- SMTP AUTH users ----------------------------------------------------------------------------------------------

def user_doc(user: AuthUser) -> dict:
    """A user as the API shows it: the password only as configured."""
    return {"username": user.username, "allowed_senders": list(user.allowed_senders),
            "password": {"configured": True}}


def _password(value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_PASSWORD_CHARS:
        raise SettingInvalid({"password": f"a non-empty string of at most {MAX_PASSWORD_CHARS} characters"})
    return value


def _senders(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_SENDERS or not all(
            isinstance(v, str) and SENDER.match(v) for v in value):
        raise SettingInvalid({"allowed_senders": f"a list of at most {MAX_SENDERS} user@domain or @domain"})
    return value


def _user(username: str, password_hash: str, senders: list[str]) -> AuthUser:
    try:
        return AuthUser(username=username, password_hash=password_hash, allowed_senders=senders)
    except ValidationError as err:
        raise SettingInvalid({".".join(map(str, e["loc"])): e["msg"] for e in err.errors()}) from None


async def list_users(cfg: Config) -> list[dict]:
    return [user_doc(u) for u in (await _live(cfg)).ingress.auth.users]


async def add_user(cfg: Config, username: Any, password: Any, allowed_senders: Any, operator: str,
                   *, scrypt_n: int | None = None) -> tuple[dict, str]:
    """Add a login (its password hashed); (its document, the new configuration version)."""
    if not isinstance(username, str) or not USERNAME.match(username):
        raise SettingInvalid({"username": "1 to 254 printable ASCII characters, no spaces"})
    password, senders = _password(password), _senders(allowed_senders)
    live = await _live(cfg)
    users = list(live.ingress.auth.users)
    if any(u.username == username for u in users):
        raise SettingExists(f"an AUTH user named {username!r} exists")
    user = _user(username, _hash(password, scrypt_n), senders)
    version = await _write(cfg, _with_auth_users(live, users + [user]), "auth_users", operator)
    return user_doc(user), version


async def update_user(cfg: Config, username: str, changes: dict, operator: str,
                      *, scrypt_n: int | None = None) -> tuple[dict, str]:
    """Change a login's password (`password`) and/or its `allowed_senders`; what is left out stays."""
    unknown = set(changes) - {"password", "allowed_senders"}
    if unknown:
        raise SettingInvalid({k: "unknown field" for k in sorted(unknown)})
    live = await _live(cfg)
    users = list(live.ingress.auth.users)
    i = next((i for i, u in enumerate(users) if u.username == username), None)
    if i is None:
        raise SettingNotFound(f"no AUTH user named {username!r}")
    old = users[i]
    pw_hash = _hash(_password(changes["password"]), scrypt_n) if "password" in changes else old.password_hash
    senders = _senders(changes["allowed_senders"]) if "allowed_senders" in changes else list(old.allowed_senders)
    users[i] = _user(username, pw_hash, senders)
    version = await _write(cfg, _with_auth_users(live, users), "auth_users", operator)
    return user_doc(users[i]), version


async def remove_user(cfg: Config, username: str, operator: str) -> str:
    live = await _live(cfg)
    users = [u for u in live.ingress.auth.users if u.username != username]
    if len(users) == len(live.ingress.auth.users):
        raise SettingNotFound(f"no AUTH user named {username!r}")
    return await _write(cfg, _with_auth_users(live, users), "auth_users", operator)


def _hash(password: str, scrypt_n: int | None) -> str:
    return hash_password(password) if scrypt_n is None else hash_password(password, n=scrypt_n)


# --- DKIM keys ----------------------------------------------------------------------------------------------------

def _pem(key: DkimKey) -> bytes:
    secret: Secret = key.private_key
    return secret.file.read_bytes() if secret.file is not None else secret.reveal().encode()


def key_doc(key: DkimKey) -> dict:
    """A key as the API shows it: the DNS record to publish; the private key only as configured."""
    doc: dict[str, Any] = {"domain": key.domain, "selector": key.selector,
                           "record_name": record_name(key.domain, key.selector),
                           "private_key": {"configured": True}}
    try:
        doc["record"] = public_record(_pem(key))
    except Exception as err:  # a key file gone or a key sealed with another MAILGATE_SECRET_KEY: say so, go on
        doc["record"] = None
        doc["error"] = f"the private key cannot be read: {type(err).__name__}"
    return doc


def _find_key(live: Config, domain: str, selector: str) -> DkimKey | None:
    return next((k for k in live.dkim_signing.keys
                 if k.domain.lower().rstrip(".") == domain.lower().rstrip(".") and k.selector == selector), None)


async def list_keys(cfg: Config) -> list[dict]:
    return [key_doc(k) for k in (await _live(cfg)).dkim_signing.keys]


async def get_key(cfg: Config, domain: str, selector: str) -> dict:
    key = _find_key(await _live(cfg), domain, selector)
    if key is None:
        raise SettingNotFound(f"no DKIM key for {domain} with selector {selector}")
    return key_doc(key)


async def generate_key(cfg: Config, domain: Any, selector: Any, bits: Any, operator: str,
                       algorithm: Any = "rsa") -> tuple[dict, str]:
    """Make an RSA (`bits`) or Ed25519 key for `domain` (replacing none: one key per domain signs), stored sealed; (its
    document with
    the TXT record to publish, the new configuration version)."""
    fields = {}
    if not isinstance(domain, str) or not DOMAIN.match(domain):
        fields["domain"] = "a fully qualified domain name"
    if not isinstance(selector, str) or not SELECTOR.match(selector):
        fields["selector"] = "one DNS label: letters, digits, - and _"
    if bits not in KEY_BITS or isinstance(bits, bool):
        fields["bits"] = f"one of {', '.join(map(str, KEY_BITS))}"
    if algorithm not in ALGORITHMS:
        fields["algorithm"] = "rsa or ed25519"
    if fields:
        raise SettingInvalid(fields)
    live = await _live(cfg)
    keys = list(live.dkim_signing.keys)
    if any(k.domain.lower().rstrip(".") == domain.lower().rstrip(".") for k in keys):
        raise SettingExists(f"{domain} has a DKIM key; remove it first (one key per signing domain)")
    pem = generate_ed25519_key() if algorithm == "ed25519" else generate_private_key(bits)
    try:
        sealed = seal(pem.decode())
    except SecretKeyError as err:
        raise SettingInvalid({"": f"the private key cannot be stored sealed: {err}"}) from None
    key = DkimKey(domain=domain.lower().rstrip("."), selector=selector, private_key=Secret(sealed=sealed))
    version = await _write(cfg, _with_dkim_keys(live, keys + [key]), "dkim_keys", operator)
    return key_doc(key), version


async def remove_key(cfg: Config, domain: str, selector: str, operator: str) -> str:
    live = await _live(cfg)
    key = _find_key(live, domain, selector)
    if key is None:
        raise SettingNotFound(f"no DKIM key for {domain} with selector {selector}")
    keys = [k for k in live.dkim_signing.keys if k is not key]
    return await _write(cfg, _with_dkim_keys(live, keys), "dkim_keys", operator)
