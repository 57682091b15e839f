"""Every password the tests give mailgate, in one place, and the forms in which a leak of one would show.

Tests import their password from here. At the end of a test session `tests/conftest.py` searches every stage log,
broker log and Kafka log segment the session wrote for each form of each of these (`needles()`): any hit fails the
run. The forms: the password as written; URL-encoded (`quote`, `quote_plus`, upper- and lower-case hex escapes);
base64 of the password at each of the three byte alignments it can have inside a longer base64 text (so it is found
in an `AUTH PLAIN` blob or a `Basic` header whatever precedes it; only the characters that do not depend on the
neighbouring bytes are searched); and the whole `AUTH PLAIN` blob, base64 of "\\0user\\0password", for the user
names the tests pair with a password.
"""
from __future__ import annotations

import base64
import re
from urllib.parse import quote, quote_plus


def _dkim_key() -> bytes:
    from mailgate.mail.authres.dkim_keys import generate_private_key
    return generate_private_key(2048)


SMARTERMAIL_PASSWORD = "Zq9-web-service-PASSWORD-xyz"
OUTBOUND_AUTH_PASSWORD = "s3cret-Pa55-do-not-leak"
CONFIG_EVENTS_PASSWORD = "relay-pass-7f3k"
ADMIN_BROWSER_PASSWORD = "browser-pw"
ADMIN_API_PASSWORD = "correct horse"
ADMIN_API_RELAY_PASSWORD = "relay-s3cret-pw"
BROWSER_RELAY_PASSWORD = "Relay-Pa55-browser-k2"
BROWSER_SMARTERMAIL_PASSWORD = "Sm-Pa55-browser-w7"
DIRECTORY_UNIT_PASSWORD = "Tr0ub4dor&3-horse"
KAFKA_SASL_PASSWORD = "kafka-scram-Pw-4q8z"

SMTP_AUTH_PASSWORD = "mailserver-login-Pw-93kq"
SMTP_AUTH_WRONG_PASSWORD = "guess-Pw-not-it-51zx"
MANAGED_AUTH_PASSWORD = "admin-made-login-Pw-6t2m"
"""An SMTP AUTH user's password given to the admin API / CLI (user `relay2`)."""
MANAGED_AUTH_NEW_PASSWORD = "admin-changed-login-Pw-8j4w"

DKIM_PRIVATE_KEY = _dkim_key()
"""A DKIM signing key made for this test session (PEM); the sweep looks for a line of its base64 body."""
DKIM_KEY_BODY_LINE = DKIM_PRIVATE_KEY.decode().splitlines()[5]

ALL = (SMARTERMAIL_PASSWORD, OUTBOUND_AUTH_PASSWORD, CONFIG_EVENTS_PASSWORD, ADMIN_BROWSER_PASSWORD,
       ADMIN_API_PASSWORD, ADMIN_API_RELAY_PASSWORD, BROWSER_RELAY_PASSWORD, BROWSER_SMARTERMAIL_PASSWORD,
       DIRECTORY_UNIT_PASSWORD, KAFKA_SASL_PASSWORD, DKIM_KEY_BODY_LINE, SMTP_AUTH_PASSWORD,
       SMTP_AUTH_WRONG_PASSWORD, MANAGED_AUTH_PASSWORD, MANAGED_AUTH_NEW_PASSWORD)

AUTH_PLAIN_USERS = {OUTBOUND_AUTH_PASSWORD: ("relayuser",), CONFIG_EVENTS_PASSWORD: ("mg",),
                    ADMIN_API_RELAY_PASSWORD: ("u1",), SMARTERMAIL_PASSWORD: ("admin",),
                    BROWSER_RELAY_PASSWORD: ("relayuser",), SMTP_AUTH_PASSWORD: ("mailserver",),
                    SMTP_AUTH_WRONG_PASSWORD: ("mailserver",), MANAGED_AUTH_PASSWORD: ("relay2",),
                    MANAGED_AUTH_NEW_PASSWORD: ("relay2",)}
"""User names the tests pair with a password (SMTP AUTH, web-service logins): their AUTH PLAIN blobs are searched."""

MIN_BASE64_CORE = 8
"""Shorter alignment cores would match unrelated text; a password that short is searched in its other forms only."""


def base64_cores(secret: bytes) -> list[bytes]:
    """The base64 characters that encode only `secret`'s bits, for each of the 3 offsets it can start at."""
    cores = []
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + secret).rstrip(b"=")
        start = (offset * 8 + 5) // 6  # skip characters holding any of the prefix's bits
        end = (offset + len(secret)) * 8 // 6  # characters fully inside the secret's bits
        core = encoded[start:end]
        if len(core) >= MIN_BASE64_CORE:
            cores.append(core)
    return cores


def auth_plain(user: str, password: str) -> bytes:
    """The SASL PLAIN initial response as sent after `AUTH PLAIN`: base64 of "\\0user\\0password"."""
    return base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode())


def needles(secrets: tuple[str, ...] = ALL) -> list[tuple[str, bytes]]:
    """(label, bytes) for every form of every secret; the label names the form, never the secret's text."""
    names = {value: name for name, value in globals().items() if name.isupper() and isinstance(value, str)}
    found: list[tuple[str, bytes]] = []
    for secret in secrets:
        label = names.get(secret, "secret")
        forms = {"plain": secret.encode()}
        for kind, text in (("url", quote(secret, safe="")), ("url+", quote_plus(secret, safe=""))):
            forms[kind] = text.encode()
            forms[kind + "-lower-hex"] = re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), text).encode()
        for offset, core in enumerate(base64_cores(secret.encode())):
            forms[f"base64@{offset}"] = core
        for user in AUTH_PLAIN_USERS.get(secret, ()):
            forms[f"auth-plain({user})"] = auth_plain(user, secret)
        seen: set[bytes] = set()
        for kind, needle in forms.items():
            if needle not in seen:
                seen.add(needle)
                found.append((f"{label} {kind}", needle))
    return found
