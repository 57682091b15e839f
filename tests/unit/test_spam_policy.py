"""processors.spam.policy: which events each level's actions produce, retry vs pass on a scanner failure, and the
start-up check of the gateways' spam actions. Scorers are fakes here; tests/scenario/test_spam_*.py use spamd."""
from __future__ import annotations

import pytest

from mailgate.core import topics
from mailgate.core.config import ConfigError, parse_config
from processors.spam import ScannerUnavailable
from processors.spam.policy import RETRY_MAX_S, SpamPolicy
from schemas import MessageReceived, decode

BODY = b"From: a@sender.test\r\nSubject: Offer\r\n\r\nBuy now\r\n"


class FakeScorer:
    def __init__(self, *answers, name: str = "fake", weight: float = 1.0) -> None:
        self.answers = list(answers)
        self.name, self.weight = name, weight
        self.calls = 0

    async def score(self, message: bytes, client_address: str, context=None) -> float | None:
        self.calls += 1
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def config(actions: dict, **spam) -> object:
    return parse_config({
        "node_name": "t", "spam": {"enabled": True, **spam},
        "inbound_gateways": [{"name": "in", "mode": "domain_forward", "primary_addresses": ["127.0.0.1"],
                              "primary_port": 2525, "spam_actions": actions}]})


def received(direction: str = "inbound") -> MessageReceived:
    return MessageReceived(message_id="M1", occurred_at=1_000, node="t", direction=direction,
                           inbound_gateway="in" if direction == "inbound" else None, client_address="192.0.2.1",
                           client_helo="c", client_auth=None, tls=None, mail_from="a@sender.test",
                           rcpt_to=["b@example.test"], size_bytes=len(BODY), body_sha256="", body=BODY)


def policy(cfg, *scorers, delays: list | None = None) -> SpamPolicy:
    async def sleep(s: float) -> None:
        delays.append(s)
    if delays is None:
        return SpamPolicy(cfg, "t", scorers=list(scorers))
    return SpamPolicy(cfg, "t", scorers=list(scorers), sleep=sleep)


def names(outputs) -> list[tuple[str, str]]:
    return [(o.topic, type(o.record).__name__) for o in outputs]


async def test_not_marked_mail_gets_its_action_and_standard_headers():
    cfg = config({"none": [{"action": "add_header", "header_name": "X-Clean", "header_value": "yes"}]})
    out = await policy(cfg, FakeScorer(0.4))(received(), ["b@example.test"])
    assert out.disposition == "deliver"
    assert out.body == b"X-Clean: yes\r\nX-Spam-Level: \r\nX-Spam-Score: 0.4\r\n" + BODY
    assert names(out.outputs) == [(topics.EVENTS, "MessageClassified")]
    ev = out.outputs[0].record
    assert (ev.level, ev.total_score, ev.actions) == ("none", 0.4, ["standard_headers", "add_header:X-Clean"])
    assert [(s.scorer, s.score, s.weight, s.error) for s in ev.scores] == [("fake", 0.4, 1.0, None)]


async def test_high_quarantine_holds_body_and_the_route_to_deliver_on_release():
    cfg = config({"high": [{"action": "prefix_subject", "text": "[SPAM]"}, {"action": "quarantine"}]})
    out = await policy(cfg, FakeScorer(1000.0))(received(), ["b@example.test"])
    assert out.disposition == "quarantine"
    assert names(out.outputs) == [(topics.EVENTS, "MessageClassified"), (topics.QUARANTINE, "MessageQuarantined"),
                                  (topics.EVENTS, "MessageQuarantined")]
    held, copy = out.outputs[1].record, out.outputs[2].record
    assert out.outputs[1].key == "M1" and copy.routed is None
    assert held.level == "high" and held.total_score == 1000.0 and "Subject: [SPAM] Offer" in held.headers
    routed = decode(held.routed)
    assert type(routed).__name__ == "MessageRouted" and routed.body == out.body
    assert routed.route.hosts == ["127.0.0.1:2525"] and routed.recipients == ["b@example.test"]


async def test_high_delete_discards_with_the_header_block():
    cfg = config({"high": [{"action": "delete"}]})
    out = await policy(cfg, FakeScorer(12.0))(received(), ["b@example.test"])
    assert out.disposition == "delete"
    assert names(out.outputs) == [(topics.EVENTS, "MessageClassified"), (topics.EVENTS, "MessageDiscarded")]
    gone = out.outputs[1].record
    assert gone.reason == "spam_delete" and gone.headers.endswith("Subject: Offer\r\n")
    assert "Buy now" not in gone.headers


@pytest.mark.parametrize("direction,enabled", [("outbound", True), ("inbound", False)])
async def test_outbound_or_disabled_passes_unscored(direction, enabled):
    cfg = config({"none": [{"action": "delete"}]})
    cfg = cfg.model_copy(update={"spam": cfg.spam.model_copy(update={"enabled": enabled})})
    scorer = FakeScorer(1000.0)
    out = await policy(cfg, scorer)(received(direction), ["b@example.test"])
    assert (out.outputs, out.body, out.disposition, scorer.calls) == ([], BODY, "deliver", 0)


async def test_retry_mode_waits_with_doubling_backoff_until_the_scanner_answers():
    down = ScannerUnavailable("spamd at 127.0.0.1:1: refused")
    scorer = FakeScorer(*[down] * 7, 2.0)
    delays: list[float] = []
    out = await policy(config({}), scorer, delays=delays)(received(), ["b@example.test"])
    assert delays == [1, 2, 4, 8, 16, RETRY_MAX_S, RETRY_MAX_S] and scorer.calls == 8
    assert out.disposition == "deliver" and out.outputs[0].record.total_score == 2.0


async def test_pass_mode_delivers_unscored_and_records_the_error():
    scorer = FakeScorer(ScannerUnavailable("spamd at 127.0.0.1:1: refused"))
    out = await policy(config({"none": [{"action": "add_header", "header_name": "X-Clean", "header_value": "yes"}]},
                              on_scanner_failure="pass"), scorer)(received(), ["b@example.test"])
    ev = out.outputs[0].record
    assert ev.level == "none" and ev.scores[0].score is None and "refused" in ev.scores[0].error
    assert out.disposition == "deliver" and out.body == b"X-Clean: yes\r\n" + BODY  # no X-Spam-Score: not scored


def test_bad_action_stops_start_up_naming_gateway_and_action():
    cfg = config({"low": [{"action": "add_header", "header_name": "Bad Name", "header_value": "x"}]})
    with pytest.raises(ConfigError, match=r"inbound_gateways\.in\.spam_actions\.low\.0: .*Bad Name"):
        SpamPolicy(cfg, "t", scorers=[])


def test_processor_with_a_bad_action_exits_3_with_the_path_of_the_action(tmp_path):
    import subprocess
    import sys

    import yaml
    cfg = {"node_name": "t", "local_broker": {"home": str(tmp_path)}, "spam": {"enabled": True},
           "inbound_gateways": [{"name": "in", "mode": "domain_forward", "primary_addresses": ["127.0.0.1"],
                                 "spam_actions": {"high": [{"action": "prefix_subject", "text": ""}]}}]}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    done = subprocess.run([sys.executable, "-m", "mailgate.ops.cli", "processor", "--config", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 3  # configuration (mailgate.ops.cli.exits.CONFIG)
    assert "inbound_gateways.in.spam_actions.high.0: prefix_subject needs text" in done.stderr
    assert "Traceback" not in done.stderr
