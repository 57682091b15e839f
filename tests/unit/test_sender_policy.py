"""MAIL FROM follows Postfix's defaults: `user@host` without a dot is accepted (swaks's default sender on a host
whose name has no dot); `ingress.reject_non_fqdn_sender` makes it strict, as Postfix's restriction does."""
from __future__ import annotations

import pytest

from ingress.policy import RecipientPolicy
from ingress.replies import Verdict
from mailgate.core.config import parse_config


def policy(strict: bool = False) -> RecipientPolicy:
    return RecipientPolicy(parse_config({"ingress": {"reject_non_fqdn_sender": strict}}))


@pytest.mark.parametrize("sender", ["root@vm", "<root@vm>", "alice@example.test", "<>", ""])
def test_default_accepts_non_fqdn_and_null_senders(sender):
    assert policy().sender_verdict(sender) == (Verdict.SENDER_OK, "")


def test_strict_option_rejects_non_fqdn_sender_with_553_5_1_7():
    verdict, why = policy(strict=True).sender_verdict("root@vm")
    assert verdict is Verdict.BAD_SENDER and why == "not a fully qualified domain"
    assert verdict.reply(addr="root@vm", why=why).startswith("553 5.1.7 <root@vm>: Sender address rejected")
    assert policy(strict=True).sender_verdict("alice@example.test")[0] is Verdict.SENDER_OK


@pytest.mark.parametrize("sender", ["a@-bad-", "a@[1.2.3.4]", "a%b@vm", "no-at-sign", "a@b@c"])
def test_malformed_senders_are_rejected_even_by_default(sender):
    assert policy().sender_verdict(sender)[0] is Verdict.BAD_SENDER


def test_recipients_still_need_a_fully_qualified_domain():
    cfg = parse_config({"ingress": {"relay_networks": ["10.0.0.1"]}})
    d = RecipientPolicy(cfg).decide("10.0.0.1", "user@localhost")
    assert d.verdict is Verdict.BAD_ADDRESS
