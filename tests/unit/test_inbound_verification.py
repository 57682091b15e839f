"""Unit tests of inbound verification policy: RCPT-time verdicts, the processor's authoritative re-check with its
DSN, purge requests, and the primary probe. Directories are fakes here; the scenario tests use the real HTTP API."""
from __future__ import annotations

import asyncio
import dataclasses
from types import SimpleNamespace

import pytest

from ingress.primary_probe import PrimaryProbe
from ingress.replies import Verdict
from ingress.recipient_lookup import VERIFIED, RecipientVerifier
from mailgate.core import topics
from mailgate.core.config import parse_config
from mailgate.mail.directory import CachedDirectory, DirectoryAnswerUnrecognised, DirectoryUnavailable
from mailgate.core.live_config import LiveConfig
from mailgate.core.topic_reader import Undecodable
from mailgate.mail.directory.purge import follow_purges
from processors.recipient_recheck import VerificationPolicy
from schemas import CachePurgeRequested, MessageReceived, decode, encode

BODY = b"From: alice@sender.test\r\nSubject: hi\r\nMessage-ID: <x@sender.test>\r\n\r\nHello.\r\n"


class FakeDirectory:
    def __init__(self, users: set[str]) -> None:
        self.users = users
        self.down = False
        self.garbled = False
        self.calls = 0

    async def user_exists(self, address: str) -> bool:
        self.calls += 1
        if self.garbled:
            raise DirectoryAnswerUnrecognised("unrecognised answer")
        if self.down:
            raise DirectoryUnavailable("down")
        return address.lower() in self.users

    async def aclose(self) -> None:
        pass


def config(mode: str = "domain_forward", **extra):
    return parse_config({"node_name": "t", "inbound_gateways": [{
        "name": "gw", "mode": mode, "primary_addresses": ["127.0.0.1"], "primary_port": 1,
        "domain_verification": {"domains": ["example.test"]},
        "smartermail": {"enabled": True, "url": "http://127.0.0.1:1", "username": "a", "password": "p",
                        "user_verification": "web_service"}, **extra}]})


def received(rcpts: list[str], mail_from: str = "alice@sender.test") -> MessageReceived:
    return MessageReceived(message_id="M1", occurred_at=1_700_000_000_000, node="t", direction="inbound",
                           inbound_gateway="gw", client_address="192.0.2.1", client_helo="c", client_auth=None,
                           tls=None, mail_from=mail_from, rcpt_to=rcpts, size_bytes=len(BODY),
                           body_sha256="", body=BODY)


@pytest.mark.parametrize("mode, verdict", [("domain_forward", Verdict.DIRECTORY_UNAVAILABLE),
                                           ("backup_mx", Verdict.OK)])
async def test_rcpt_verdicts(mode, verdict):
    cfg = config(mode)
    fake = FakeDirectory({"bob@example.test"})
    notes = []
    v = RecipientVerifier({"gw": CachedDirectory(fake)}, "t", notes.append)
    gw = cfg.inbound_gateways[0]
    assert (await v.check(gw, "bob@example.test", "M"))[0] is Verdict.OK
    assert await v.check(gw, "nobody@example.test", "M") == (Verdict.USER_UNKNOWN, "user_unknown")
    fake.down = True
    assert (await v.check(gw, "bob@example.test", "M"))[0] is Verdict.OK  # cached
    assert (await v.check(gw, "carol@example.test", "M"))[0] is verdict
    assert [n.recipient for n in notes] == ["bob@example.test", "bob@example.test"]
    await v.aclose()


@pytest.mark.parametrize("mode", ["domain_forward", "backup_mx"])
async def test_an_unrecognised_directory_answer_tempfails_in_every_mode(mode):
    """A Backup MX accepts while its directory is unreachable (the primary is down), but a directory that answers
    something unrecognised is up: accepting would take mail for every address."""
    fake = FakeDirectory({"bob@example.test"})
    fake.garbled = True
    v = RecipientVerifier({"gw": CachedDirectory(fake)}, "t")
    gw = config(mode).inbound_gateways[0]
    assert await v.check(gw, "carol@example.test", "M") == (Verdict.DIRECTORY_UNAVAILABLE, "directory_unavailable")
    await v.aclose()


async def test_processor_rejects_unknown_recipient_and_sends_one_dsn():
    cfg = config("backup_mx")
    policy = VerificationPolicy(cfg, "t", {"gw": CachedDirectory(FakeDirectory({"bob@example.test"}))})
    policy._started = True  # no purge follower (no broker in unit tests)
    outputs, passed = await policy(received(["bob@example.test", "ghost@example.test"]))
    assert passed == ["bob@example.test"]
    names = [(o.topic, type(o.record).__name__) for o in outputs]
    assert names == [(topics.EVENTS, "RecipientVerified"), (topics.EVENTS, "RecipientRejected"),
                     (topics.RECEIVED, "MessageReceived"), (topics.EVENTS, "MessageReceived")]
    rejected = outputs[1].record
    assert (rejected.recipient, rejected.stage, rejected.reply_code, rejected.enhanced_code) == (
        "ghost@example.test", "processor", 550, "5.1.1")
    dsn = outputs[2].record
    assert dsn.mail_from == "" and dsn.rcpt_to == ["alice@sender.test"] and dsn.direction == "outbound"
    assert b"Final-Recipient: rfc822; ghost@example.test" in dsn.body and outputs[3].record.body is None
    await policy.aclose()


async def test_processor_sends_no_dsn_for_a_rejected_recipient_that_asked_for_none():
    import dataclasses
    from schemas import DsnRecipient
    cfg = config("backup_mx")
    policy = VerificationPolicy(cfg, "t", {"gw": CachedDirectory(FakeDirectory({"bob@example.test"}))})
    policy._started = True
    never = dataclasses.replace(received(["ghost@example.test"]), dsn_recipients=[
        DsnRecipient(recipient="ghost@example.test", notify=["NEVER"], orcpt=None)])
    outputs, passed = await policy(never)
    assert passed == [] and [type(o.record).__name__ for o in outputs] == ["RecipientRejected"]
    await policy.aclose()


async def test_processor_sends_no_dsn_to_null_sender_and_fails_open_when_directory_down():
    cfg = config("backup_mx")
    fake = FakeDirectory(set())
    policy = VerificationPolicy(cfg, "t", {"gw": CachedDirectory(fake)})
    policy._started = True
    outputs, passed = await policy(received(["ghost@example.test"], mail_from=""))
    assert passed == [] and [type(o.record).__name__ for o in outputs] == ["RecipientRejected"]
    fake.down = True
    outputs, passed = await policy(received(["carol@example.test"]))
    assert passed == ["carol@example.test"]
    [v] = [o.record for o in outputs]
    assert (v.method, v.stale, v.stage) == ("fail_open", True, "processor")
    await policy.aclose()


async def test_outbound_mail_is_not_verified():
    fake = FakeDirectory(set())
    policy = VerificationPolicy(config(), "t", {"gw": CachedDirectory(fake)})
    msg = dataclasses.replace(received(["x@elsewhere.test"]), direction="outbound", inbound_gateway=None)
    assert await policy(msg) == ([], ["x@elsewhere.test"]) and fake.calls == 0
    await policy.aclose()


async def test_purge_request_applied_by_follower():
    fake = FakeDirectory({"bob@example.test", "eve@other.test"})
    cache = CachedDirectory(fake)
    live = LiveConfig(config(), "ingress")  # not started: records are handed to it as its follower would
    follow_purges(live, lambda: {"gw": cache}, "ingress")
    await cache.verify("bob@example.test")
    await cache.verify("eve@other.test")
    record = CachePurgeRequested(occurred_at=1, node="t", operator="op", target="example.test", request_id="r")
    at = SimpleNamespace(partition=0, offset=0)
    live._dispatch([(at, Undecodable("mail.config", 0, 0, 0, "not avro"))])  # logged, ignored
    live._dispatch([(at, record)])
    await cache.verify("bob@example.test")
    await cache.verify("eve@other.test")
    assert fake.calls == 3  # bob asked again, eve still cached
    assert decode(encode(record)) == record
    await cache.aclose()


async def test_primary_probe_caches_its_answer_and_sees_the_primary_go_down():
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    gw = config("backup_mx", primary_port=port, defer_while_primary_up=True).inbound_gateways[0]
    now = [0.0]
    probe = PrimaryProbe(cache_s=5, clock=lambda: now[0])
    v = RecipientVerifier({}, "t", probe=probe)
    assert await v.check(gw, "bob@example.test", "M") == (Verdict.PRIMARY_UP, "primary_up")
    server.close()
    await server.wait_closed()
    assert await probe.is_up(gw) and probe.probes == 1  # cached answer
    now[0] = 6
    assert not await probe.is_up(gw) and probe.probes == 2
    assert (await v.check(gw, "bob@example.test", "M"))[0] is Verdict.OK
    await v.aclose()


async def test_processor_takes_ingress_fresh_answer_and_asks_again_when_it_is_older_than_the_ttl():
    import dataclasses

    from mailgate.core.ids import now_ms
    fake = FakeDirectory({"bob@example.test"})
    policy = VerificationPolicy(config(), "t", {"gw": CachedDirectory(fake)})
    policy._started = True
    fresh = dataclasses.replace(received(["bob@example.test"]), occurred_at=now_ms(),
                                verified_recipients=["bob@example.test"])
    _, passed = await policy(fresh)
    assert passed == ["bob@example.test"] and fake.calls == 0
    replayed = dataclasses.replace(fresh, occurred_at=now_ms() - 601_000)  # older than the 10-minute TTL
    _, passed = await policy(replayed)
    assert passed == ["bob@example.test"] and fake.calls == 1
    await policy.aclose()


async def test_ingress_marks_only_fresh_confirmations_as_verified():
    fake = FakeDirectory({"bob@example.test"})
    now = [0.0]
    v = RecipientVerifier({"gw": CachedDirectory(fake, clock=lambda: now[0])}, "t", lambda record: None)
    gw = config().inbound_gateways[0]
    assert await v.check(gw, "bob@example.test", "M") == (Verdict.OK, VERIFIED)
    fake.down = True
    now[0] += 601  # past the TTL: only the stale "last known" answer is left
    assert await v.check(gw, "bob@example.test", "M") == (Verdict.OK, "")
    await v.aclose()
