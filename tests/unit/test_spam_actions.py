"""processors.spam.actions: standard headers, combined actions, and which disposition wins."""
import pytest

from mailgate.core.config import SpamAction, SpamActions
from processors.spam.actions import ActionOutcome, actions_for, apply_actions, check_actions, spam_level_stars
from mailgate.mail.headers import header_values
from processors.spam.levels import Classification, ScorerResult

MSG = b"From: a@example.com\r\nSubject: Offer\r\n\r\nBuy now\r\n"


def verdict(total: float | None, level: str = "high") -> Classification:
    return Classification(level if total is not None else "none", total or 0.0,
                          (ScorerResult("spamd", total, 1.0),))


def act(action: str, **kw) -> SpamAction:
    return SpamAction(action=action, **kw)


def test_standard_headers_on_scored_mail():
    out = apply_actions(MSG, verdict(12.34), [], standard_headers=True)
    assert out == ActionOutcome(b"X-Spam-Level: ************\r\nX-Spam-Score: 12.3\r\n" + MSG, "deliver",
                                ["standard_headers"])


def test_ham_that_was_scored_gets_standard_headers_too():
    out = apply_actions(MSG, verdict(-1.25, "none"), [], standard_headers=True)
    assert header_values(out.body, "X-Spam-Score") == ["-1.2"]
    assert header_values(out.body, "X-Spam-Level") == [""]


def test_unscored_mail_gets_no_standard_headers():
    out = apply_actions(MSG, verdict(None), [], standard_headers=True)
    assert out == ActionOutcome(MSG, "deliver", [])


def test_standard_headers_off():
    assert apply_actions(MSG, verdict(12.0), [], standard_headers=False).body == MSG


def test_forged_standard_headers_are_replaced():
    forged = b"X-Spam-Score: -100\r\nX-Spam-Level: \r\n" + MSG
    out = apply_actions(forged, verdict(7.0), [], standard_headers=True)
    assert header_values(out.body, "X-Spam-Score") == ["7.0"]
    assert header_values(out.body, "X-Spam-Level") == ["*******"]


@pytest.mark.parametrize("total,stars", [(-3, ""), (0.9, ""), (1.0, "*"), (5.99, "*****"), (1005.2, "*" * 50)])
def test_level_stars(total, stars):
    assert spam_level_stars(total) == stars


def test_add_header_and_prefix_subject_combine():
    actions = [act("add_header", header_name="X-Spam-Flag", header_value="YES"), act("prefix_subject", text="[SPAM]")]
    out = apply_actions(MSG, verdict(8.0), actions, standard_headers=False)
    assert out.body == b"X-Spam-Flag: YES\r\nFrom: a@example.com\r\nSubject: [SPAM] Offer\r\n\r\nBuy now\r\n"
    assert out.disposition == "deliver"
    assert out.applied == ["add_header:X-Spam-Flag", "prefix_subject"]


def test_quarantine_keeps_the_edits():
    actions = [act("prefix_subject", text="[SPAM]"), act("quarantine")]
    out = apply_actions(MSG, verdict(8.0), actions, standard_headers=False)
    assert out.disposition == "quarantine" and b"Subject: [SPAM] Offer" in out.body
    assert out.applied == ["prefix_subject", "quarantine"]


@pytest.mark.parametrize("names,disposition", [
    ([], "deliver"), (["none"], "deliver"), (["quarantine"], "quarantine"), (["delete"], "delete"),
    (["quarantine", "delete"], "delete"), (["delete", "quarantine"], "delete"), (["none", "quarantine"], "quarantine"),
])
def test_delete_wins_over_quarantine_wins_over_deliver(names, disposition):
    out = apply_actions(MSG, verdict(20.0), [act(n) for n in names], standard_headers=False)
    assert out.disposition == disposition
    assert out.applied == [n for n in names if n != "none"]


def test_actions_for_picks_the_level():
    cfg = SpamActions(high=[act("delete")], low=[act("add_header", header_name="X-Spam", header_value="low")])
    assert actions_for("high", cfg) == [act("delete")]
    assert actions_for("medium", cfg) == []
    assert actions_for("low", cfg)[0].header_value == "low"


def test_check_actions_names_the_bad_one():
    check_actions(SpamActions(high=[act("add_header", header_name="X-Spam", header_value="yes"), act("delete")]))
    with pytest.raises(ValueError, match=r"spam_actions\.medium\.1"):
        check_actions(SpamActions(medium=[act("none"), act("add_header", header_name="", header_value="x")]))
    with pytest.raises(ValueError, match=r"spam_actions\.low\.0"):
        check_actions(SpamActions(low=[act("add_header", header_name="X-A", header_value="a\r\nBcc: x")]))
    with pytest.raises(ValueError, match=r"spam_actions\.high\.0"):
        check_actions(SpamActions(high=[act("prefix_subject")]))


def test_injection_through_an_action_is_refused():
    with pytest.raises(ValueError):
        apply_actions(MSG, verdict(8.0), [act("prefix_subject", text="x\r\nBcc: victim@example.com")], False)
