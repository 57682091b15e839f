"""Every SMTP reply ingress gives for a policy decision, in one table: verdict → `code enhanced-code text`.

Hooks return a Verdict; only this module turns it into text. Nothing from an exception reaches the wire.
"""
from __future__ import annotations

import enum


class Verdict(enum.Enum):
    OK = (250, "2.1.5", "Ok")
    SENDER_OK = (250, "2.1.0", "Ok")
    QUEUED = (250, "2.0.0", "Ok: queued as {id}")
    RELAY_DENIED = (554, "5.7.1", "<{addr}>: Relay access denied")
    BAD_ADDRESS = (553, "5.1.3", "<{addr}>: Address rejected: {why}")
    BAD_SENDER = (553, "5.1.7", "<{addr}>: Sender address rejected: {why}")
    DOMAIN_NOT_ACCEPTED = (554, "5.7.1", "<{addr}>: Recipient address rejected: domain not accepted here")
    USER_UNKNOWN = (550, "5.1.1", "<{addr}>: Recipient address rejected: User unknown")
    DIRECTORY_UNAVAILABLE = (451, "4.4.3", "<{addr}>: Recipient address verification unavailable, try again later")
    PRIMARY_UP = (451, "4.7.1", "<{addr}>: Backup MX: please deliver to the primary server")
    TOO_MANY_RECIPIENTS = (452, "4.5.3", "Error: too many recipients")
    MIXED_DIRECTION = (452, "4.5.3", "<{addr}>: Recipients for different destinations: send them in another "
                                    "transaction")
    MESSAGE_TOO_BIG = (552, "5.3.4", "Error: message size exceeds fixed limit")
    BARE_LF = (550, "5.5.2", "Error: bare <LF> received; lines must end with <CR><LF>")
    QUEUE_UNAVAILABLE = (451, "4.3.0", "Error: queue file write error, try again later")

    def reply(self, **fields: str) -> str:
        code, enhanced, text = self.value
        return f"{code} {enhanced} {text.format(**fields)}"

    @property
    def code(self) -> int:
        return self.value[0]

    @property
    def enhanced(self) -> str:
        return self.value[1]
