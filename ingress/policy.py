"""Recipient policy at RCPT time: may this client send to this address through us, and where will it go?

Reads: the configuration (relay networks, inbound gateways). Emits: a RecipientDecision — accepted with its
direction (outbound via gateways, or inbound to a primary) or refused with a Verdict and a reason for the audit log.
No open relay: an address is accepted only for a client in `relay_networks` or logged in by SMTP AUTH (outbound) or for a domain an enabled
inbound gateway accepts (inbound). User verification is a separate, later check (ingress.verification).
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
