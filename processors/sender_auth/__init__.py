"""Sender authentication of inbound mail: SPF (pyspf), DKIM (dkimpy), DMARC (own, on dnspython) and the policy."""
from processors.sender_auth.policy import SenderAuthDecision, SenderAuthPolicy

__all__ = ["SenderAuthDecision", "SenderAuthPolicy"]
