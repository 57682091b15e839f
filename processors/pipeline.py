"""The processor pipeline, listed explicitly: verify → authenticate sender → classify → route.

Reads: one MessageReceived. Emits: the Outputs of each step in order. A step may end the message (every recipient
rejected, spam deleted or quarantined); the steps after it then do not run, and that step emitted the terminal event.
"""
from __future__ import annotations

import dataclasses

from mailgate.core.config import Config
from mailgate.core.ids import now_ms
from mailgate.mail.outputs import Output, audit
from processors.routing import RoutingPolicy
from processors.sender_auth import SenderAuthPolicy
from processors.spam_policy import SpamPolicy
from processors.verification import VerificationPolicy
from schemas import MessageDiscarded


class Pipeline:
    def __init__(self, cfg: Config, node: str) -> None:
        self.node = node
        self.verify = VerificationPolicy(cfg, node)
        self.route = RoutingPolicy(cfg, node)
        self.classify = SpamPolicy(cfg, node, route=self.route)
        self.sender_auth = SenderAuthPolicy(cfg, node)

    async def handle(self, received) -> list[Output]:
        outputs, recipients = await self.verify(received)
        if not recipients:
            return outputs + [audit(MessageDiscarded(
                message_id=received.message_id, occurred_at=now_ms(), node=self.node,
                reason="all_recipients_rejected", headers=""))]
        auth = await self.sender_auth(received)
        outputs += auth.outputs
        if auth.disposition != "deliver":
            return outputs
        if auth.score is not None:  # the body now carries Authentication-Results; the score joins the spam total
            received = dataclasses.replace(received, body=auth.body)
        spam = await self.classify(received, recipients, auth.extra_scorers)
        outputs += spam.outputs
        if spam.disposition != "deliver":
            return outputs
        return outputs + self.route(received, recipients=recipients, body=spam.body)

    def reconfigure(self, cfg: Config) -> None:
        """A configuration change from mail.config: routing follows it at once."""
        self.route.reconfigure(cfg)

    async def aclose(self) -> None:
        await self.verify.aclose()
        await self.classify.aclose()
