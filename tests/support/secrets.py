"""Every password the tests give mailgate, in one place, so the session-end sweep can prove none leaked.

Tests import their password from here. At the end of a test session `tests/conftest.py` searches every stage log
and every Kafka log segment the session's brokers wrote for each of these: any hit fails the run.
"""
from __future__ import annotations


def _dkim_key() -> bytes:
    from mailgate.mail.authres.dkim_keys import generate_private_key
    return generate_private_key(2048)


SMARTERMAIL_PASSWORD = "Zq9-web-service-PASSWORD-xyz"
OUTBOUND_AUTH_PASSWORD = "s3cret-Pa55-do-not-leak"
CONFIG_EVENTS_PASSWORD = "relay-pass-7f3k"
ADMIN_BROWSER_PASSWORD = "browser-pw"
ADMIN_API_PASSWORD = "correct horse"
ADMIN_API_RELAY_PASSWORD = "relay-s3cret-pw"

SMTP_AUTH_PASSWORD = "mailserver-login-Pw-93kq"
SMTP_AUTH_WRONG_PASSWORD = "guess-Pw-not-it-51zx"

DKIM_PRIVATE_KEY = _dkim_key()
"""A DKIM signing key made for this test session (PEM); the sweep looks for a line of its base64 body."""
DKIM_KEY_BODY_LINE = DKIM_PRIVATE_KEY.decode().splitlines()[5]

ALL = (DKIM_KEY_BODY_LINE, SMTP_AUTH_PASSWORD, SMTP_AUTH_WRONG_PASSWORD, SMARTERMAIL_PASSWORD, OUTBOUND_AUTH_PASSWORD, CONFIG_EVENTS_PASSWORD, ADMIN_BROWSER_PASSWORD,
       ADMIN_API_PASSWORD, ADMIN_API_RELAY_PASSWORD)
