"""The envelope of one SMTP transaction on ingress: aiosmtpd's `Envelope` plus what mailgate decided during it.

Reads: nothing. Emits: the fields the hooks fill in as MAIL, RCPT and DATA are answered — the message id (given at
MAIL), the direction and inbound gateway (decided at the first accepted RCPT), the recipients the directory
verified, the settings the transaction is judged by, the DSN parameters (RFC 3461) of MAIL and of each accepted
recipient, and whether DATA had bare CR or LF line endings.
`GatewaySMTP` makes one for each transaction (`_create_envelope`).
"""
from __future__ import annotations

from typing import Any

from aiosmtpd.smtp import Envelope

from mailgate.mail.dsn_params import MailDsn, RcptDsn


class GatewayEnvelope(Envelope):
    def __init__(self) -> None:
        super().__init__()
        self.mg_id: str = ""
        """The message id, given at MAIL FROM."""
        self.mg_direction: str | None = None
        """inbound or outbound, from the first accepted recipient."""
        self.mg_gateway: str | None = None
        """The inbound gateway of the recipients (inbound mail)."""
        self.mg_verified: list[str] = []
        """Recipients the gateway's directory said exist."""
        self.mg_domain: Any = None
        """How the recipients' domains were decided (a `DomainDecision` merged over the accepted recipients)."""
        self.mg_settings: Any = None
        """The ingress settings (configuration version) this transaction is judged by, from MAIL FROM on."""
        self.mg_bare_line_ending: bool | None = None
        """DATA had a bare CR or LF (None: not looked at)."""
        self.mg_bdat: bytearray | None = None
        """The chunks of a BDAT transaction so far (ingress.bdat); None: no BDAT in this transaction."""
        self.mg_bdat_too_big = False
        """The BDAT chunks passed the size limit: the rest are drained and answered 552."""
        self.mg_dsn: MailDsn = MailDsn()
        """MAIL's DSN parameters (RET, ENVID)."""
        self.mg_dsn_rcpts: list[tuple[str, RcptDsn]] = []
        """The accepted recipients that gave DSN parameters (NOTIFY, ORCPT), with them."""
