"""ingress.auth: failed-login counting per client, sender restrictions, password hashes, and SmarterMail logins."""
from __future__ import annotations

import pytest

from ingress.auth import Credentials, LoginThrottle
from ingress.policy import RecipientPolicy
from mailgate.core.config import ConfigError, LoginLimits, parse_config
from mailgate.core.passwords import check_password, hash_password
from mailgate.mail.directory import DirectoryUnavailable
from tests.support.secrets import SMARTERMAIL_PASSWORD, SMTP_AUTH_PASSWORD as PASSWORD
from tests.support.smartermail_api import SmarterMailAPI

HASH = hash_password(PASSWORD, n=2 ** 10)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_failures_slow_down_then_block_one_address_only_and_expire():
    clock = Clock()
    t = LoginThrottle(LoginLimits(max_failures=3, window_s=60, delay_s=0.5, max_delay_s=1.2), clock)
    assert [t.failed("192.0.2.1") for _ in range(3)] == [0.5, 1.0, 1.2]
    assert t.blocked("192.0.2.1") and not t.blocked("192.0.2.2")
    clock.now += 61
    assert not t.blocked("192.0.2.1")
    t.failed("192.0.2.2")
    t.succeeded("192.0.2.2")
    assert t.failed("192.0.2.2") == 0.5  # a good login starts the count again


def test_password_hash_round_trip_and_malformed_hashes_let_nobody_in():
    assert check_password(PASSWORD, HASH) and check_password(PASSWORD.encode(), HASH)
    assert not check_password("x" + PASSWORD, HASH)
    assert not check_password(PASSWORD, "") and not check_password(PASSWORD, "scrypt$1$2$3$!!$!!")
    assert PASSWORD not in HASH


def _cfg(**auth) -> dict:
    return {"ingress": {"auth": auth}}


def test_config_refuses_clear_passwords_and_unknown_directories():
    with pytest.raises(ConfigError, match="ingress.auth.users.0.password_hash"):
        parse_config(_cfg(users=[{"username": "u", "password_hash": PASSWORD}]))
    with pytest.raises(ConfigError, match="smartermail_gateway"):
        parse_config(_cfg(smartermail_gateway="nope"))
    with pytest.raises(ConfigError, match="needs ingress.tls"):
        parse_config({"ingress": {"listeners": [{"name": "smtps", "port": 465, "tls_mode": "implicit"}]}})


async def test_configured_user_and_sender_restrictions():
    creds = Credentials(parse_config(_cfg(users=[
        {"username": "mx", "password_hash": HASH, "allowed_senders": ["@sender.test", "boss@other.test"]},
        {"username": "any", "password_hash": HASH}])))
    assert await creds.check("mx", PASSWORD.encode()) and not await creds.check("mx", b"nope")
    assert not await creds.check("nobody", PASSWORD.encode())
    assert creds.sender_allowed("mx", "Alice@Sender.test") and creds.sender_allowed("mx", "boss@other.test")
    assert not creds.sender_allowed("mx", "eve@other.test") and creds.sender_allowed("any", "eve@other.test")


def test_authenticated_clients_relay_like_relay_networks():
    policy = RecipientPolicy(parse_config({}))
    assert policy.decide("192.0.2.9", "bob@far.test").reason == "relay_denied"
    decision = policy.decide("192.0.2.9", "bob@far.test", authenticated=True)
    assert decision.accepted and decision.direction == "outbound"


async def test_logins_checked_by_smartermail_are_cached_and_an_outage_is_not_a_yes():
    with SmarterMailAPI(users=set(), domains=["example.com"], username="user@example.com",
                        password=SMARTERMAIL_PASSWORD) as api:
        cfg = parse_config({"inbound_gateways": [{
            "name": "sm", "mode": "domain_forward", "primary_addresses": ["127.0.0.1"],
            "smartermail": {"enabled": True, "url": api.url, "username": "user@example.com",
                            "password": SMARTERMAIL_PASSWORD}}], **_cfg(smartermail_gateway="sm")})
        creds = Credentials(cfg)
        try:
            assert await creds.check("user@example.com", SMARTERMAIL_PASSWORD.encode())
            assert await creds.check("user@example.com", SMARTERMAIL_PASSWORD.encode())
            assert api.calls["authenticate-user"] == 1  # the second answer came from the cache
            assert not await creds.check("user@example.com", b"wrong")
            api.down = True
            with pytest.raises(DirectoryUnavailable) as err:
                await creds.check("user@example.com", b"other-guess")
            assert "other-guess" not in str(err.value)
        finally:
            await creds.aclose()


class _Server:
    """What SmtpAuth.handle uses of aiosmtpd's SMTP: the listener flag, push and the transport."""

    mg_auth = True
    transport = None

    def __init__(self) -> None:
        self.pushed: list[str] = []

    async def push(self, line: str) -> None:
        self.pushed.append(line)


class _Session:
    peer = ("192.0.2.7", 1234)
    authenticated = None
    auth_data = login_data = None


class _Down(Credentials):
    async def check(self, username: str, password: bytes) -> bool:
        raise DirectoryUnavailable("SmarterMail http://sm.test/api/v1/auth/authenticate-user: HTTP 503")


async def test_directory_outage_answers_454_and_a_blocked_address_gets_421():
    from ingress.auth import SmtpAuth
    import base64
    cfg = parse_config(_cfg(users=[{"username": "mx", "password_hash": HASH}], limits={"max_failures": 1}))
    plain = base64.b64encode(b"\0mx\0" + PASSWORD.encode()).decode()
    down = SmtpAuth(cfg, credentials=_Down(cfg))
    assert await down.handle(_Server(), _Session(), ["PLAIN", plain]) == "454 4.7.0 Temporary authentication " \
                                                                        "failure, try again later"
    pauses: list[float] = []

    async def sleep(s: float) -> None:
        pauses.append(s)

    auth = SmtpAuth(cfg, sleep=sleep)
    wrong = base64.b64encode(b"\0mx\0nope").decode()
    assert (await auth.handle(_Server(), _Session(), ["PLAIN", wrong])).startswith("535 5.7.8 ")
    server = _Server()
    assert await auth.handle(server, _Session(), ["PLAIN", plain]) is None
    assert server.pushed[0].startswith("421 4.7.0 ") and pauses == [1.0]
