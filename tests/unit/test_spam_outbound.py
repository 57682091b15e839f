"""spam.scan_outbound: outbound (authenticated) mail is scanned only when asked, with the login given to the
scanners — rspamd's User header and spamd's User line as built for the request; no gateway action applies to it."""
from __future__ import annotations

import dataclasses

from mailgate.core import topics
from processors.spam.scorers import SmtpContext, rspamd_headers, spamd_request
from tests.unit.test_spam_policy import BODY, config, names, policy, received


class ContextScorer:
    name, weight = "ctx", 1.0

    def __init__(self) -> None:
        self.contexts: list[SmtpContext | None] = []

    async def score(self, message: bytes, client_address: str, context=None) -> float | None:
        self.contexts.append(context)
        return 20.0


def _outbound():
    return dataclasses.replace(received("outbound"), client_auth="relay2")


async def test_outbound_mail_is_not_scanned_by_default():
    scorer = ContextScorer()
    out = await policy(config({}), scorer)(_outbound(), ["b@far.test"])
    assert (out.outputs, out.body, out.disposition, scorer.contexts) == ([], BODY, "deliver", [])


async def test_scan_outbound_gives_the_login_to_the_scanners_and_applies_no_gateway_action():
    scorer = ContextScorer()
    cfg = config({"high": [{"action": "quarantine"}]}, scan_outbound=True)
    out = await policy(cfg, scorer)(_outbound(), ["b@far.test"])
    [ctx] = scorer.contexts
    assert ctx.user == "relay2" and ctx.mail_from == "a@sender.test"
    assert names(out.outputs) == [(topics.EVENTS, "MessageClassified")]
    assert out.outputs[0].record.level == "high" and out.disposition == "deliver"  # the inbound gateway's quarantine
    assert out.body.startswith(b"X-Spam-Level: ")                                   # is not applied to it


def test_the_login_is_rspamds_user_header_and_spamds_user_line():
    ctx = SmtpContext("192.0.2.1", user="relay2")
    assert (b"User", b"relay2") in rspamd_headers(ctx)
    assert spamd_request(b"x", "relay2") == b"SYMBOLS SPAMC/1.5\r\nContent-length: 1\r\nUser: relay2\r\n"
    assert b"User" not in spamd_request(b"x", "has space") and b"User" not in spamd_request(b"x", None)
