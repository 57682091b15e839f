"""SmarterMailDirectory against a real HTTP server speaking SmarterMail's web services (tests/support)."""
from __future__ import annotations

import asyncio

import httpx
import pytest

from mailgate.core.config import SmarterMailConfig
from mailgate.mail.directory import (DirectoryAnswerUnrecognised, DirectoryLoginFailed, DirectoryUnavailable,
                                     SmarterMailDirectory, UserDirectory)
from mailgate.mail.directory.smartermail import redact
from tests.support.secrets import DIRECTORY_UNIT_PASSWORD as PASSWORD
from tests.support.smartermail_api import SmarterMailAPI


def config(url: str, password: str = PASSWORD, **kw: object) -> SmarterMailConfig:
    return SmarterMailConfig.model_validate({"enabled": True, "url": url, "username": "admin",
                                             "password": password, "user_verification": "web_service",
                                             "timeout_s": 2, **kw})


@pytest.fixture
def api():
    with SmarterMailAPI(users={"alice@example.com", "Bob@example.org"}, domains=["example.com", "Example.org"],
                        password=PASSWORD) as server:
        yield server


@pytest.fixture
async def directory(api):
    async with SmarterMailDirectory(config(api.url + "/")) as d:
        yield d


async def test_is_a_user_directory(directory):
    assert isinstance(directory, UserDirectory)
    assert PASSWORD not in repr(directory)


async def test_known_user_exists(directory, api):
    assert await directory.user_exists("alice@example.com") is True
    assert await directory.user_exists("bob@EXAMPLE.ORG") is True
    assert api.calls["authenticate-user"] == 1
    assert api.calls["get-user"] == 2


async def test_unknown_user_does_not_exist(directory, api):
    assert await directory.user_exists("mallory@example.com") is False
    assert api.calls["get-user"] == 1


async def test_address_without_domain_is_not_asked(directory, api):
    assert await directory.user_exists("postmaster") is False
    assert api.calls["get-user"] == 0


async def test_domain_names(directory, api):
    assert await directory.domain_names() == {"example.com", "example.org"}
    assert api.calls["domain-names"] == 1


async def test_domain_the_server_does_not_host_is_an_unrecognised_answer(directory):
    with pytest.raises(DirectoryAnswerUnrecognised, match="HTTP 400"):
        await directory.user_exists("alice@elsewhere.net")


class Clock:
    """A monotonic clock the test moves: token renewal without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_token_is_reused_then_renewed_with_the_refresh_token_before_it_expires(api):
    clock = Clock()  # the server's tokens last 900 s; renewed 60 s early
    async with SmarterMailDirectory(config(api.url), clock=clock) as directory:
        assert await directory.user_exists("alice@example.com")
        assert await directory.user_exists("alice@example.com")
        assert (api.calls["authenticate-user"], api.calls["refresh-token"]) == (1, 0)
        clock.now += 900 - 55
        assert await directory.user_exists("alice@example.com")
        clock.now += 900 - 55  # the first refresh token was spent: the second comes from the refresh reply
        assert await directory.user_exists("alice@example.com")
    assert (api.calls["authenticate-user"], api.calls["refresh-token"]) == (1, 2)
    assert api.calls["unauthorized"] == 0  # renewed ahead of time, not after a 401


async def test_expiry_read_from_the_jwt_when_the_reply_has_no_expiration(api):
    api.send_expiration = False
    clock = Clock()
    async with SmarterMailDirectory(config(api.url), clock=clock) as directory:
        assert await directory.domain_names()
        clock.now += 800
        assert await directory.domain_names()
        assert api.calls["refresh-token"] == 0
        clock.now += 60
        assert await directory.domain_names()
    assert (api.calls["authenticate-user"], api.calls["refresh-token"], api.calls["unauthorized"]) == (1, 1, 0)


async def test_revoked_tokens_refresh_fails_then_logs_in_again_once(directory, api):
    assert await directory.user_exists("alice@example.com")
    api.revoke_tokens()  # as a server restart: access and refresh tokens forgotten
    assert await directory.user_exists("alice@example.com")
    assert (api.calls["authenticate-user"], api.calls["refresh-token"], api.calls["unauthorized"]) == (2, 1, 1)


async def test_token_rejected_even_after_renewal_is_unavailable(api):
    api.token_lifetime_s = 0  # every token is already expired when it is used
    async with SmarterMailDirectory(config(api.url)) as directory:
        with pytest.raises(DirectoryUnavailable, match="401"):
            await directory.user_exists("alice@example.com")
    assert (api.calls["authenticate-user"], api.calls["refresh-token"]) == (1, 1)  # one renewal, no loop


async def test_two_factor_account_is_a_login_failure(api):
    api.two_factor = True
    async with SmarterMailDirectory(config(api.url)) as directory:
        with pytest.raises(DirectoryLoginFailed, match="two-factor"):
            await directory.user_exists("alice@example.com")
    assert api.calls["get-user"] == 0


@pytest.mark.parametrize("status", [200, 400, 404])
async def test_unknown_user_at_any_status_smartermail_uses_is_unknown(directory, api, status):
    api.unknown_user_status = status
    assert await directory.user_exists("mallory@example.com") is False
    assert (api.calls["get-user"], api.calls["alias"], api.calls["domain-settings"]) == (1, 1, 1)


async def test_disabled_mailbox_alias_and_catch_all_exist(api):
    api.disabled, api.aliases = {"alice@example.com"}, {"sales@example.com": ["alice@example.com"]}
    async with SmarterMailDirectory(config(api.url)) as directory:
        assert await directory.user_exists("alice@example.com") is True
        assert await directory.user_exists("sales@example.com") is True
        assert await directory.user_exists("nobody@example.com") is False
        api.catch_all["example.com"] = "alice"
        assert await directory.user_exists("nobody@example.com") is True


@pytest.mark.parametrize("status,message", [(200, "User not found"), (403, "Access denied"), (200, "")])
async def test_an_unrecognised_answer_is_logged_with_its_body_without_secrets(api, caplog, status, message):
    api.unknown_user_status, api.unknown_user_message = status, message
    async with SmarterMailDirectory(config(api.url)) as directory:
        with pytest.raises(DirectoryAnswerUnrecognised) as caught:
            await directory.user_exists("mallory@example.com")
    assert isinstance(caught.value, DirectoryUnavailable) and caught.value.retriable
    [record] = [r for r in caplog.records if "unrecognised answer" in r.getMessage()]
    assert f"HTTP {status}" in record.getMessage() and f'"message": "{message}"' in record.getMessage()
    assert PASSWORD not in caplog.text and "Bearer" not in caplog.text
    assert api.calls["alias"] == 0  # never read as "not a mailbox"


def test_redact_hides_tokens_and_passwords():
    body = '{"accessToken": "eyJ.a.b", "refreshToken":"r1", "password": "p", "message": "x p-word"}'
    assert redact(body, "p-word") == ('{"accessToken": "********", "refreshToken":"********", '
                                      '"password": "********", "message": "x ********"}')


async def test_concurrent_calls_share_one_login(directory, api):
    answers = await asyncio.gather(*(directory.user_exists(f"u{i}@example.com") for i in range(20)))
    assert answers == [False] * 20
    assert api.calls["authenticate-user"] == 1


async def test_wrong_password_is_unavailable_without_leaking_it(api):
    wrong = "not-the-Password-42"
    async with SmarterMailDirectory(config(api.url, password=wrong)) as directory:
        with pytest.raises(DirectoryUnavailable) as caught:
            await directory.user_exists("alice@example.com")
    err = caught.value
    assert isinstance(err, DirectoryLoginFailed) and err.retriable
    assert "refused" in str(err) and "admin" in str(err)
    assert wrong not in str(err) and wrong not in repr(err) and PASSWORD not in str(err)
    assert err.__cause__ is None
    assert api.calls["get-user"] == 0


async def test_password_from_environment_is_read_at_login(api, monkeypatch):
    monkeypatch.setenv("SM_PASSWORD", PASSWORD)
    async with SmarterMailDirectory(config(api.url, password={"env": "SM_PASSWORD"})) as directory:
        assert await directory.user_exists("alice@example.com")
        monkeypatch.setenv("SM_PASSWORD", "rotated")
        api.revoke_tokens()
        with pytest.raises(DirectoryLoginFailed) as caught:
            await directory.user_exists("alice@example.com")
    assert "rotated" not in str(caught.value)


@pytest.mark.parametrize("mode", ["503", "close"])
async def test_server_down_is_unavailable(directory, api, mode):
    assert await directory.user_exists("alice@example.com")
    api.down, api.down_mode = True, mode
    with pytest.raises(DirectoryUnavailable) as caught:
        await directory.user_exists("alice@example.com")
    assert PASSWORD not in str(caught.value)
    with pytest.raises(DirectoryUnavailable):
        await directory.domain_names()
    api.down = False
    assert await directory.user_exists("alice@example.com")


@pytest.mark.parametrize("mode", ["503", "close"])
async def test_server_down_at_login_is_unavailable(directory, api, mode):
    api.down, api.down_mode = True, mode
    with pytest.raises(DirectoryUnavailable) as caught:
        await directory.user_exists("alice@example.com")
    assert PASSWORD not in str(caught.value)


async def test_nothing_listening_is_unavailable():
    with SmarterMailAPI(password=PASSWORD) as stopped:
        url = stopped.url
    async with SmarterMailDirectory(config(url)) as directory:
        with pytest.raises(DirectoryUnavailable, match="ConnectError"):
            await directory.user_exists("alice@example.com")


async def test_timeout_is_unavailable(api):
    async def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(slow)) as client:
        directory = SmarterMailDirectory(config(api.url), client)
        with pytest.raises(DirectoryUnavailable, match="no answer within 2 s"):
            await directory.domain_names()
        await directory.aclose()
        assert not client.is_closed  # a client passed in belongs to the caller


async def test_config_without_url_or_password_is_refused():
    with pytest.raises(ValueError, match="url"):
        SmarterMailDirectory(SmarterMailConfig())
    with pytest.raises(ValueError, match="password"):
        SmarterMailDirectory(SmarterMailConfig(url="http://127.0.0.1:1"))
