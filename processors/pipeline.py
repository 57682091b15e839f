"""The processor pipeline, listed explicitly: verify → authenticate sender → scan → classify → route.

Reads: one MessageReceived. Emits: the Outputs of each step in order. A step may end the message (every recipient
rejected, malware held or dropped, spam deleted or quarantined); the steps after it then do not run, and that step
emitted the terminal event.
Configuration: each version of the live configuration (mail.config) gets its own set of step policies; a message is
judged entirely by the version current when its handling began, and its events name that version
(`config_version`). Directory caches carry over between versions for gateways whose verification did not change.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass

from mailgate.core.config import Config, ConfigError
from mailgate.core.config_events import config_version
from mailgate.core.ids import now_ms
from mailgate.mail.directory import CachedDirectory
from mailgate.mail.directory.domains import CachedDomainList
from mailgate.mail.directory.live import LiveDirectories
from mailgate.mail.outputs import Output, audit
from processors.routing import RoutingPolicy
from processors.sender_auth import SenderAuthPolicy
from processors.spam.policy import SpamPolicy, check_gateway_actions
from processors.virus.policy import VirusPolicy
from processors.recipient_recheck import VerificationPolicy
from schemas import MessageDiscarded

log = logging.getLogger("mailgate.processor")

@dataclass(frozen=True)
class Steps:
    """The step policies of one configuration version."""
    version: str | None
    verify: VerificationPolicy
    scan: VirusPolicy
    classify: SpamPolicy
    route: RoutingPolicy


class Pipeline:
    def __init__(self, cfg: Config, node: str) -> None:
        self.node = node
        self.live = LiveDirectories(cfg.inbound_gateways)
        self.directories: dict[str, CachedDirectory] = self.live.mapping
        self.domain_lists: dict[str, CachedDomainList] = self.live.domain_lists
        self.config_following: asyncio.Event | None = None
        self.steps = self._steps(cfg, RoutingPolicy(cfg, node, config_version(cfg)))
        self.sender_auth = SenderAuthPolicy(cfg, node)  # its settings are not live: one for the process

    def _steps(self, cfg: Config, route: RoutingPolicy) -> Steps:
        directories = dict(self.directories)
        verify = VerificationPolicy(cfg, self.node, directories, version=route.version,
                                    domain_lists=dict(self.domain_lists))
        verify.config_following = self.config_following
        scan = VirusPolicy(cfg, self.node, route=route, version=route.version)
        classify = SpamPolicy(cfg, self.node, route=route, version=route.version)
        return Steps(route.version, verify, scan, classify, route)

    def follow(self, following: asyncio.Event) -> None:
        """The process's mail.config follower: verification waits (bounded) for it before its first lookup, so a
        cache purge sent from then on is applied."""
        self.config_following = following
        self.steps.verify.config_following = following

    @property
    def verify(self) -> VerificationPolicy:
        return self.steps.verify

    async def handle(self, received) -> list[Output]:
        steps = self.steps  # one version for the whole message, even if a change arrives while it is scanned
        outputs, recipients = await steps.verify(received)
        if not recipients:
            return outputs + [audit(MessageDiscarded(
                message_id=received.message_id, occurred_at=now_ms(), node=self.node,
                reason="all_recipients_rejected", headers=""))]
        auth = await self.sender_auth(received)
        outputs += auth.outputs
        if auth.disposition != "deliver":
            return outputs
        if auth.score is not None:  # the body now carries Authentication-Results; the score joins the spam total
            received = dataclasses.replace(received, body=auth.body, body_crlf_only=False)  # a header added: unknown
        virus = await steps.scan(received, recipients)
        outputs += virus.outputs
        if virus.disposition != "deliver":
            return outputs
        if virus.body is not received.body:  # tagged (deliver_and_tag)
            received = dataclasses.replace(received, body=virus.body, body_crlf_only=False)
        spam = await steps.classify(received, recipients, auth.extra_scorers)
        outputs += spam.outputs
        if spam.disposition != "deliver":
            return outputs
        return outputs + steps.route(received, recipients=recipients, body=spam.body)

    def reconfigure(self, cfg: Config) -> None:
        """A change from mail.config: messages whose handling starts from now on are judged by it."""
        version = config_version(cfg)
        if version == self.steps.version:
            return
        try:
            check_gateway_actions(cfg)
        except ConfigError as err:
            log.error("ignored configuration version %s: %s", version, err)
            return
        old = self.steps
        # the new version's directories first: its verification policy takes a copy of them
        self.live.reconfigure(cfg.inbound_gateways, also_close=[old.classify.aclose])
        self.steps = self._steps(cfg, old.route.for_version(cfg, version))

    async def aclose(self) -> None:
        await self.steps.classify.aclose()
        await self.sender_auth.aclose()
        await self.live.aclose()
