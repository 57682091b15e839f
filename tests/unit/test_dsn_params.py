"""RFC 3461 parameters: xtext, RET/ENVID on MAIL and NOTIFY/ORCPT on RCPT as ingress checks them (on the wire, with
the replies of ingress/replies.py), and the words egress sends on; and the notices the request asks for."""
from __future__ import annotations

import asyncio

import pytest

from ingress.replies import ehlo_lines
from ingress.smtp_server import GatewaySMTP
from mailgate.mail.dsn_params import (DsnParamError, DsnRequest, MailDsn, Problem, RcptDsn, mail_words, rcpt_words,
                                      take_mail_params, take_rcpt_params, xtext_decode, xtext_encode)
from schemas import DsnRecipient, MessageReceived


@pytest.mark.parametrize("text, decoded", [("abc", "abc"), ("a+2Bb", "a+b"), ("+3D+20", "= "),
                                           ("Joe+2BSmith@example.test", "Joe+Smith@example.test")])
def test_xtext_round_trip(text, decoded):
    assert xtext_decode(text) == decoded and xtext_encode(decoded) == text


@pytest.mark.parametrize("bad", ["a+2", "a+zz", "a=b", "a+2b", "a\x01"])
def test_bad_xtext_is_refused(bad):
    with pytest.raises(ValueError):
        xtext_decode(bad)


def test_mail_parameters_keep_their_case_and_leave_the_rest():
    dsn, rest = take_mail_params(["ret=hdrs", "SIZE=10", "ENVID=Abc+2Bdef", "BODY=8BITMIME"])
    assert dsn == MailDsn("HDRS", "Abc+def") and rest == ["SIZE=10", "BODY=8BITMIME"]


@pytest.mark.parametrize("words, problem", [
    (["RET=ALL"], Problem.BAD_RET), (["RET"], Problem.BAD_RET), (["ENVID=a+zz"], Problem.BAD_ENVID),
    (["ENVID="], Problem.BAD_ENVID), (["ENVID=" + "x" * 101], Problem.ENVID_TOO_LONG),
    (["RET=FULL", "RET=HDRS"], Problem.DUPLICATE)])
def test_bad_mail_parameters(words, problem):
    with pytest.raises(DsnParamError) as err:
        take_mail_params(words)
    assert err.value.problem is problem


def test_rcpt_parameters():
    dsn, rest = take_rcpt_params(["NOTIFY=success,failure", "ORCPT=rfc822;Joe+2BX@Example.test"])
    assert dsn == RcptDsn(("SUCCESS", "FAILURE"), "rfc822;Joe+X@Example.test") and rest == []
    assert rcpt_words(dsn.notify, dsn.orcpt) == ["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;Joe+2BX@Example.test"]
    assert mail_words("HDRS", "a b") == ["RET=HDRS", "ENVID=a+20b"]


@pytest.mark.parametrize("words, problem", [
    (["NOTIFY=NEVER,SUCCESS"], Problem.NOTIFY_NEVER_COMBINED), (["NOTIFY=SOMETIMES"], Problem.BAD_NOTIFY),
    (["NOTIFY="], Problem.BAD_NOTIFY), (["NOTIFY=SUCCESS,SUCCESS"], Problem.BAD_NOTIFY),
    (["ORCPT=joe@example.test"], Problem.BAD_ORCPT), (["ORCPT=rfc822;"], Problem.BAD_ORCPT),
    (["ORCPT=rfc822;" + "x" * 494], Problem.ORCPT_TOO_LONG), (["NOTIFY=NEVER", "NOTIFY=NEVER"], Problem.DUPLICATE)])
def test_bad_rcpt_parameters(words, problem):
    with pytest.raises(DsnParamError) as err:
        take_rcpt_params(words)
    assert err.value.problem is problem


def test_a_request_says_which_notices_each_recipient_wants():
    record = MessageReceived(
        message_id="m", occurred_at=0, node="n", direction="inbound", client_address="1.2.3.4", client_helo="h",
        mail_from="a@b.test", rcpt_to=["x@y.test", "z@y.test", "d@y.test"], size_bytes=1, body_sha256="0",
        dsn_recipients=[DsnRecipient(recipient="x@y.test", notify=["NEVER"], orcpt=None),
                        DsnRecipient(recipient="z@y.test", notify=["SUCCESS"], orcpt="rfc822;Z@y.test")])
    request = DsnRequest.of(record)
    assert not request.wants("x@y.test", "FAILURE") and not request.wants("x@y.test", "SUCCESS")
    assert request.wants("z@y.test", "SUCCESS") and not request.wants("z@y.test", "FAILURE")
    assert request.wants("d@y.test", "FAILURE") and not request.wants("d@y.test", "SUCCESS")  # no NOTIFY given


class Handler:
    def __init__(self) -> None:
        self.seen: list[object] = []

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802
        session.host_name = hostname
        return ehlo_lines(responses)  # as ingress.handler's

    async def handle_MAIL(self, server, session, envelope, address, options):  # noqa: N802 - aiosmtpd's name
        self.seen.append(server.mg_mail_dsn)
        envelope.mail_from = address
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server, session, envelope, address, options):  # noqa: N802
        self.seen.append(server.mg_rcpt_dsn)
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"


async def test_ingress_answers_dsn_parameters_on_the_wire():
    handler = Handler()
    loop = asyncio.get_running_loop()
    template = GatewaySMTP(handler, max_errors=100, data_size_limit=1000, hostname="gw.test", ident="mailgate",
                           timeout=60, enable_SMTPUTF8=True, decode_data=False)
    server = await loop.create_server(template.spawn, host="127.0.0.1", port=0)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])

    async def cmd(line: str) -> str:
        if line:
            writer.write(line.encode() + b"\r\n")
        lines = []
        while not lines or lines[-1][3:4] == "-":
            lines.append((await asyncio.wait_for(reader.readline(), 10)).decode().rstrip())
        return lines[-1] if len(lines) == 1 else "\n".join(lines)

    try:
        await cmd("")
        assert "250-DSN" in await cmd("EHLO client.test")
        assert await cmd("MAIL FROM:<a@b.test> RET=ALL") == \
            "501 5.5.4 Error: bad RET parameter syntax (RET=FULL or RET=HDRS)"
        assert (await cmd("MAIL FROM:<a@b.test> NOTIFY=NEVER")).startswith("555 5.5.4 ")  # an RCPT parameter
        assert await cmd("MAIL FROM:<a@b.test> RET=HDRS ENVID=My+2BId SIZE=10") == "250 2.1.0 Ok"
        assert await cmd("RCPT TO:<x@y.test> NOTIFY=NEVER,DELAY") == \
            "501 5.5.4 Error: NOTIFY=NEVER cannot be combined with SUCCESS, FAILURE or DELAY"
        assert await cmd("RCPT TO:<x@y.test> ORCPT=rfc822;x@y.test ORCPT=rfc822;x@y.test") == \
            "501 5.5.4 Error: duplicate ORCPT parameter"
        assert (await cmd("RCPT TO:<x@y.test> RET=FULL")).startswith("555 5.5.4 ")  # a MAIL parameter
        assert await cmd("RCPT TO:<x@y.test> ORCPT=rfc822;" + "x" * 494) == \
            "501 5.5.4 Error: ORCPT parameter too long (at most 500 characters)"
        assert await cmd("RCPT TO:<x@y.test> NOTIFY=SUCCESS ORCPT=rfc822;X@Y.test") == "250 2.1.5 Ok"
        assert handler.seen == [MailDsn("HDRS", "My+Id"), RcptDsn(("SUCCESS",), "rfc822;X@Y.test")]
        assert (await cmd("RSET")).startswith("250")
        assert (await cmd("HELO client.test")).startswith("250")
        assert (await cmd("MAIL FROM:<a@b.test> RET=HDRS")).startswith("501 5.5.4 ")  # no parameters after HELO
    finally:
        writer.close()
        server.close()
        await server.wait_closed()


def test_the_admin_pages_trace_shows_the_dsn_request():
    from mailgate.ops.tracking.readable import readable
    record = MessageReceived(
        message_id="m", occurred_at=0, node="n", direction="inbound", client_address="1.2.3.4", client_helo="h",
        mail_from="a@b.test", rcpt_to=["x@y.test"], size_bytes=1, body_sha256="0", dsn_ret="HDRS", dsn_envid="e1",
        dsn_recipients=[DsnRecipient(recipient="x@y.test", notify=["SUCCESS", "FAILURE"], orcpt="rfc822;X@y.test")])
    assert "DSN request: RET=HDRS ENVID=e1; x@y.test NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;X@y.test" in \
        readable(record)["details"]
