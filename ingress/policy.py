"""Sender and recipient policy: is this MAIL FROM acceptable, and may this client send to this address through us?

Reads: the configuration (relay networks, inbound gateways, `ingress.reject_non_fqdn_sender`). Emits: a Verdict for
MAIL FROM (Postfix's defaults: a syntactically valid sender is accepted, `user@host` without a dot too, unless the
strict `reject_non_fqdn_sender` is set), and a RecipientDecision — accepted with its
direction (outbound via gateways, or inbound to a primary) or refused with a Verdict and a reason for the audit log.
No open relay: an address is accepted only for a client in `relay_networks` or logged in by SMTP AUTH (outbound) or for
a domain an enabled
inbound gateway accepts (inbound): by its configured lists, or (domain verification `web_service`) by the domain list
its SmarterMail server reports, through the process's cached lists (`mailgate.mail.directory.domains`; `decide_async`).
No list could be had: 451 4.4.3 (or the lists alone, as `when_never_fetched` says). User verification is a separate,
later check (ingress.recipient_lookup).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from ingress.replies import Verdict
from mailgate.mail.addresses import BadAddress, Mailbox, parse_mailbox
from mailgate.core.config import Config, InboundGateway
from mailgate.core.netaddr import AddressSet
from mailgate.mail.directory.domains import CachedDomainList, DomainDecision, find_inbound_gateway


@dataclass(frozen=True)
class RecipientDecision:
    verdict: Verdict
    reason: str = ""
    mailbox: Mailbox | None = None
    direction: str = ""
    gateway: InboundGateway | None = None
    domain: DomainDecision | None = None
    """How the inbound domain was decided (None: no inbound domain check, e.g. a relay client's mail)."""

    @property
    def accepted(self) -> bool:
        return self.verdict is Verdict.OK


class RecipientPolicy:
    def __init__(self, cfg: Config, domain_lists: Mapping[str, CachedDomainList] | None = None) -> None:
        self.cfg = cfg
        self.relay_networks = AddressSet.parse(cfg.ingress.relay_networks)
        self.domain_lists: Mapping[str, CachedDomainList] = domain_lists or {}

    def sender_verdict(self, address: str) -> tuple[Verdict, str]:
        """MAIL FROM: (SENDER_OK, "") or (BAD_SENDER, why). The null sender `<>` is always accepted."""
        if address in ("", "<>"):
            return Verdict.SENDER_OK, ""
        try:
            parse_mailbox(address, require_fqdn=self.cfg.ingress.reject_non_fqdn_sender)
        except BadAddress as err:
            return Verdict.BAD_SENDER, str(err)
        return Verdict.SENDER_OK, ""

    def may_relay(self, client_address: str) -> bool:
        return client_address in self.relay_networks

    def _before_domain(self, client_address: str, address: str, authenticated: bool) -> RecipientDecision:
        """Everything decided before the inbound domain: a decision with a verdict, or OK with only a mailbox."""
        relay_client = authenticated or self.may_relay(client_address)
        try:
            mailbox = parse_mailbox(address)
        except BadAddress as err:
            # A relay trick from an outsider is a relay attempt; from a relay client, a bad address.
            if relay_client:
                return RecipientDecision(Verdict.BAD_ADDRESS, f"bad_address:{err}")
            return RecipientDecision(Verdict.RELAY_DENIED, "relay_denied")
        if relay_client:
            return RecipientDecision(Verdict.OK, mailbox=mailbox, direction="outbound")
        return RecipientDecision(Verdict.OK, mailbox=mailbox)

    def decide(self, client_address: str, address: str, authenticated: bool = False) -> RecipientDecision:
        """`authenticated`: the client logged in with SMTP AUTH, which allows relaying like `relay_networks`. By the
        configured domain lists alone (for web_service gateways, their listed additions); see `decide_async`."""
        first = self._before_domain(client_address, address, authenticated)
        if not first.accepted or first.direction or first.mailbox is None:
            return first
        gateway = self.cfg.inbound_gateway_for(first.mailbox.domain)
        if gateway is None:
            return RecipientDecision(Verdict.RELAY_DENIED, "relay_denied", first.mailbox)
        return RecipientDecision(Verdict.OK, mailbox=first.mailbox, direction="inbound", gateway=gateway)

    async def decide_async(self, client_address: str, address: str, authenticated: bool = False) -> RecipientDecision:
        """As `decide`, with web_service domain verification asking the gateways' cached SmarterMail domain lists."""
        first = self._before_domain(client_address, address, authenticated)
        if not first.accepted or first.direction or first.mailbox is None:
            return first
        mailbox = first.mailbox
        gateway, domain = await find_inbound_gateway(self.cfg.inbound_gateways, mailbox.domain, self.domain_lists)
        if gateway is not None:
            return RecipientDecision(Verdict.OK, mailbox=mailbox, direction="inbound", gateway=gateway, domain=domain)
        if domain is not None and domain.accepted is None:
            return RecipientDecision(Verdict.DOMAIN_LIST_UNAVAILABLE, "domain_list_unavailable", mailbox, domain=domain)
        return RecipientDecision(Verdict.RELAY_DENIED, "relay_denied", mailbox, domain=domain)
