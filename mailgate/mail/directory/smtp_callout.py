"""SMTP user verification ("callout"): ask the primary server itself whether a recipient exists.

Reads: the inbound gateway's primary addresses and port. Emits: yes/no per address, or DirectoryUnavailable.
Like Postfix's reject_unverified_recipient: connect, EHLO, `MAIL FROM:<>`, `RCPT TO:<address>`, QUIT — no DATA,
so nothing is ever delivered. 2xx means the mailbox exists, 5xx that it does not, 4xx or no answer that the primary
cannot tell now. Addresses are tried in order (failover). Answers are cached by CachedDirectory (10 minutes).
"""
from __future__ import annotations

import asyncio

import aiosmtplib

from mailgate.mail.directory.base import DirectoryUnavailable


class SmtpCalloutDirectory:
    def __init__(self, hosts: list[str], port: int, helo_name: str, timeout_s: float = 10) -> None:
        self.hosts = hosts
        self.port = port
        self.helo_name = helo_name
        self.timeout_s = timeout_s

    async def user_exists(self, address: str) -> bool:
        last = "no primary address"
        for host in self.hosts:
            try:
                return await asyncio.wait_for(self._ask(host, address), self.timeout_s)
            except DirectoryUnavailable as err:
                last = str(err)
            except (asyncio.TimeoutError, aiosmtplib.SMTPException, OSError) as err:
                last = f"{host}:{self.port}: {type(err).__name__}"
        raise DirectoryUnavailable(f"SMTP verification unavailable ({last})")

    async def _ask(self, host: str, address: str) -> bool:
        smtp = aiosmtplib.SMTP(hostname=host, port=self.port, start_tls=False, local_hostname=self.helo_name,
                               timeout=self.timeout_s)
        await smtp.connect()
        try:
            await smtp.ehlo()
            await smtp.mail("")
            try:
                await smtp.rcpt(address)
                return True
            except aiosmtplib.SMTPRecipientRefused as err:
                if 500 <= err.code < 600:
                    return False
                raise DirectoryUnavailable(f"{host}:{self.port} answered {err.code} for RCPT") from None
        finally:
            try:
                await smtp.quit()
            except aiosmtplib.SMTPException:
                smtp.close()

    async def domain_names(self) -> set[str]:
        """A callout cannot list domains: the gateway's domain verification decides which domains are accepted."""
        return set()

    async def aclose(self) -> None:
        pass
