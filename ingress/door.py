"""The checks at the SMTP door, one object per ingress process: the pre-greet test, the DNS lists, and the audit
record of every connection they (or a limit) refuse.

Reads: `ingress.pregreet`, `ingress.dnsbl`, the live relay networks (exempt from both, as postscreen exempts
$mynetworks). Emits: per connection, a DNS-list lookup started at connect (`start_lookup`); a `ConnectionRefused`
event for each refused connection, appended to mail.events without the reply waiting for Kafka (`refused`), with a
log line and `mailgate_ingress_door_checks{check,result}`. The session (ingress.smtp_server) runs the tests; the
handler asks `GatewaySMTP.door_refusal` at RCPT.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Callable

from ingress.dnsbl import NOT_LISTED, DnsblScore, DnsLists
from ingress.pregreet import Pregreet
from mailgate.core import metrics
from mailgate.core.config import Config
from mailgate.core.ids import new_message_id, now_ms
from schemas import ConnectionRefused

log = logging.getLogger("mailgate.ingress")


class Door:
    def __init__(self, cfg: Config, exempt: Callable[[str], bool], note: Callable[[object], None]) -> None:
        self.node = cfg.node_name
        self.threshold = cfg.ingress.dnsbl.threshold
        self.dnsbl_action = cfg.ingress.dnsbl.action
        self.pregreet = Pregreet(cfg.ingress.pregreet)
        self.lists = DnsLists(cfg.ingress.dnsbl)
        self.exempt = exempt
        """A relay-network client (live: mail.config's relay_networks): no pre-greet test, no DNS lists."""
        self.note = note

    def start_lookup(self, client: str) -> asyncio.Task[DnsblScore] | None:
        """The DNS lists' answer for `client`, asked now (in parallel with the greeting); None when none is asked."""
        if not self.lists.enabled:
            return None
        task = asyncio.ensure_future(self.lists.lookup(client))
        task.add_done_callback(self._count_lookup)
        return task

    def _count_lookup(self, task: asyncio.Task[DnsblScore]) -> None:
        if task.cancelled() or task.exception() is not None:
            return
        found = task.result()
        self.count("dnsbl", "over" if found.over(self.threshold) else "listed" if found.listings else "pass")

    def count(self, check: str, result: str) -> None:
        metrics.INGRESS_CHECKS.labels(check, result).inc()

    def refused(self, *, client: str, listener: str, check: str, reason: str, reply: str,
                score: DnsblScore = NOT_LISTED) -> None:
        """A connection refused by `check`: logged, counted, audited (ConnectionRefused; the reply does not wait)."""
        log.warning("refuse connection client=%s listener=%s check=%s reason=%s reply=%r", client, listener, check,
                    reason, reply)
        self.count(check, "refused")
        self.note(ConnectionRefused(
            message_id=new_message_id(), occurred_at=now_ms(), node=self.node, client_address=client,
            listener=listener, check=check, reason=reason, reply=reply, dnsbl_score=score.score,
            dnsbl_listings=list(score.listings)))
