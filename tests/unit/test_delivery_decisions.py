"""Delivery decisions read the error types (egress/errors.py): a permanent failure bounces with the server's reply,
a transient one defers, "may have been delivered" waits for the retry without trying another gateway."""
from __future__ import annotations

import asyncio

from egress.errors import AuthFailed, ConnectFailed, ConnectionLostAfterData, ServerReplied
from egress.outcome import failure_replies, next_target
from mailgate.mail.smtp_reply import Reply
from tests.support.harness import SmtpPrimary
from tests.unit.test_egress_delivery import engine, names, routed
from tests.unit.test_egress_outcome import NOW, kinds, policy
from tests.unit.test_egress_outcome import routed as routed_at

REFUSED = Reply(554, "5.7.1", "no mail from you")


def test_a_permanent_refusal_bounces_with_the_servers_reply():
    err = ServerReplied(REFUSED, step="greeting")
    assert not next_target(err)
    out = policy().outcome(routed_at(), failure_replies(err, ["x@far.test"]), gateway="", host="", attempt=1,
                           now=NOW, error=str(err))
    bounced = [o.record for o in out if type(o.record).__name__ == "MessageBounced"]
    assert len(bounced) == 1 and bounced[0].reason == "554 5.7.1 no mail from you"


def test_a_transient_failure_defers_and_tries_the_next_gateway():
    err = ConnectFailed("127.0.0.1:1: refused")
    assert next_target(err)
    out = policy().outcome(routed_at(), failure_replies(err, ["x@far.test"]), gateway="", host="", attempt=1,
                           now=NOW, error=str(err))
    assert [k for _, k in kinds(out)][0] == "DeliveryDeferred"


def test_a_refused_password_waits_for_the_operator_instead_of_bouncing():
    err = AuthFailed(reply=Reply(535, "5.7.8", "bad credentials"))
    assert err.transient and [r.code for _, r in failure_replies(err, ["x@far.test"])] == [451]


def test_may_have_been_delivered_waits_for_the_retry_and_tries_no_other_gateway():
    err = ConnectionLostAfterData("lost after the final dot")
    assert err.may_have_been_delivered and not next_target(err)
    assert failure_replies(err, ["x@far.test"])[0][1].is_transient()


async def test_a_gateway_refusing_at_ehlo_bounces_with_its_reply_and_the_next_one_is_not_tried():
    async def refuse_ehlo(reader, writer):
        writer.write(b"220 refusing.test ESMTP\r\n")
        while (line := await reader.readline()) and not line.upper().startswith(b"QUIT"):
            writer.write(b"554 5.7.1 no mail from you\r\n")
            await writer.drain()
        writer.close()

    refusing = await asyncio.start_server(refuse_ehlo, "127.0.0.1", 0)
    other = SmtpPrimary().start()
    e = engine([{"name": "refusing", "address": "127.0.0.1", "port": refusing.sockets[0].getsockname()[1]},
                {"name": "other", "address": "127.0.0.1", "port": other.port}])
    try:
        out = await e.deliver(routed(["refusing", "other"]))
    finally:
        await e.pool.close()
        refusing.close()
        other.stop()
    assert names(out)[0] == "DeliveryAttempted" and "DeliveryDeferred" not in names(out) and other.messages == []
    bounced = [o.record for o in out if type(o.record).__name__ == "MessageBounced"]
    assert [b.reason for b in bounced] == ["554 5.7.1 no mail from you"]
