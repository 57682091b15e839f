"""SMTP user verification: the primary is asked with RCPT (no DATA) whether a recipient exists."""
from __future__ import annotations

import pytest

from mailgate.mail.directory.base import DirectoryUnavailable
from mailgate.mail.directory.build import build_directories, verification_method
from mailgate.mail.directory.smtp_callout import SmtpCalloutDirectory
from mailgate.core.config import parse_config
from tests.support.harness import SmtpPrimary, free_port


class Mailboxes:
    """A primary that knows two mailboxes and refuses the rest at RCPT, like a real one."""

    def __init__(self, code: int = 550) -> None:
        self.code = code
        self.data_calls = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in {"bob@example.test", "carol@example.test"}:
            envelope.rcpt_tos.append(address)
            return "250 2.1.5 Ok"
        return f"{self.code} 5.1.1 <{address}>: Recipient address rejected: User unknown" if self.code >= 500 \
            else f"{self.code} 4.3.0 try later"

    async def handle_DATA(self, server, session, envelope):
        self.data_calls += 1
        return "250 2.0.0 Ok"


@pytest.fixture
def primary():
    p = SmtpPrimary()
    p.controller.handler = p.handler = Mailboxes()
    p.start()
    yield p
    p.stop()


async def test_existing_and_unknown_users_without_sending_any_mail(primary):
    d = SmtpCalloutDirectory(["127.0.0.1"], primary.port, helo_name="gw.test")
    assert await d.user_exists("bob@example.test") is True
    assert await d.user_exists("nobody@example.test") is False
    assert primary.handler.data_calls == 0


async def test_tempfail_and_unreachable_primary_are_unavailable_not_unknown(primary):
    primary.handler.code = 450
    d = SmtpCalloutDirectory(["127.0.0.1"], primary.port, helo_name="gw.test")
    with pytest.raises(DirectoryUnavailable):
        await d.user_exists("nobody@example.test")
    with pytest.raises(DirectoryUnavailable):
        await SmtpCalloutDirectory(["127.0.0.1"], free_port(), helo_name="gw.test", timeout_s=2).user_exists("x@y.test")


async def test_second_primary_address_answers_when_the_first_is_down(primary):
    d = SmtpCalloutDirectory(["127.0.0.2", "127.0.0.1"], primary.port, helo_name="gw.test", timeout_s=3)
    assert await d.user_exists("carol@example.test") is True


def test_smtp_user_verification_builds_a_cached_callout_directory():
    cfg = parse_config({"inbound_gateways": [{"name": "fwd", "mode": "domain_forward", "primary_addresses": ["10.0.0.1"],
                                              "smtp_user_verification": True}]})
    dirs = build_directories(cfg.inbound_gateways)
    assert isinstance(dirs["fwd"].directory, SmtpCalloutDirectory)
    assert verification_method(cfg.inbound_gateways[0]) == "smtp_callout"
