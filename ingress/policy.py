"""Sender and recipient policy: is this MAIL FROM acceptable, and may this client send to this address through us?

Reads: the configuration (relay networks, inbound gateways, `ingress.reject_non_fqdn_sender`). Emits: a Verdict for
MAIL FROM (Postfix's defaults: a syntactically valid sender is accepted, `user@host` without a dot too, unless the
strict `reject_non_fqdn_sender` is set), and a RecipientDecision — accepted with its
direction (outbound via gateways, or inbound to a primary) or refused with a Verdict and a reason for the audit log.
No open relay: an address is accepted only for a client in `relay_networks` or logged in by SMTP AUTH (outbound) or for
a domain an enabled
inbound gateway accepts (inbound). User verification is a separate, later check (ingress.recipient_lookup).
"""
from __future__ import annotations

from dataclasses import dataclass

from ingress.replies import Verdict
from mailgate.mail.addresses import BadAddress, Mailbox, parse_mailbox
from mailgate.core.config import Config, InboundGateway
from mailgate.core.netaddr import AddressSet


@dataclass(frozen=True)
class RecipientDecision:
    verdict: Verdict
    reason: str = ""
    mailbox: Mailbox | None = None
    direction: str = ""
    gateway: InboundGateway | None = None

    @property
    def accepted(self) -> bool:
        return self.verdict is Verdict.OK


class RecipientPolicy:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.relay_networks = AddressSet.parse(cfg.ingress.relay_networks)

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

    def decide(self, client_address: str, address: str, authenticated: bool = False) -> RecipientDecision:
        """`authenticated`: the client logged in with SMTP AUTH, which allows relaying like `relay_networks`."""
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
        gateway = self.cfg.inbound_gateway_for(mailbox.domain)
        if gateway is None:
            return RecipientDecision(Verdict.RELAY_DENIED, "relay_denied", mailbox)
        return RecipientDecision(Verdict.OK, mailbox=mailbox, direction="inbound", gateway=gateway)
