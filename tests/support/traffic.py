"""Load for fault tests: a steady trickle of messages on fresh connections, and a polling wait."""
from __future__ import annotations

import smtplib
import threading
import time
import uuid
from typing import Callable, NamedTuple


class Reply(NamedTuple):
    sender: str
    code: int  # 0: no SMTP reply (connection refused or dropped)
    text: str
    at: float  # time.monotonic() when the reply came


class Trickle(threading.Thread):
    """Sends one message every `gap_s`, each on a fresh connection from a unique sender, and records each reply."""

    def __init__(self, port: int, gap_s: float = 0.3, prefix: str = "trickle") -> None:
        super().__init__(daemon=True)
        self.port, self.gap_s, self.prefix = port, gap_s, prefix
        self._results: list[Reply] = []
        self.lock = threading.Lock()
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            sender = f"{self.prefix}-{uuid.uuid4().hex[:10]}@sender.test"
            try:
                with smtplib.SMTP("127.0.0.1", self.port, timeout=60) as s:
                    s.ehlo("client.test")
                    s.mail(sender)
                    s.rcpt("bob@example.test")
                    code, msg = s.data(f"Subject: {sender}\r\n\r\n{self.prefix}\r\n".encode())
                    reply = Reply(sender, code, msg.decode(), time.monotonic())
            except smtplib.SMTPResponseException as err:
                reply = Reply(sender, err.smtp_code, err.smtp_error.decode(errors="replace"), time.monotonic())
            except (OSError, smtplib.SMTPException) as err:
                reply = Reply(sender, 0, type(err).__name__, time.monotonic())
            with self.lock:
                self._results.append(reply)
            self.halt.wait(self.gap_s)

    def snapshot(self) -> list[Reply]:
        with self.lock:
            return list(self._results)

    def count(self, code: int) -> int:
        return sum(1 for r in self.snapshot() if r.code == code)


def wait_until(cond: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")
