"""The virus-scanning workloads' pieces: the messages they send, mailgate's `antivirus` settings, and the peers that
scan for Postfix — one clamd for both systems (tests/support/clamd.py: Debian's clamd with the tests' own signature
database, on loopback) and Debian's clamav-milter between Postfix's smtpd and that clamd.

The messages (written once into the work directory and sent with `smtp-source -F`, which adds the CRLFs and
dot-stuffing): `5k`, a plain-text message of 5,000 bytes; `1m`, a multipart message of about 1,000,000 bytes whose
text part fills it up and which carries a 100 KB zip attachment (`report.zip`: a text file and pseudo-random bytes,
stored) that both scanners open. Both are clean, so every message must be delivered.
"""
from __future__ import annotations

import base64
import io
import random
import socket
import subprocess
import time
import zipfile
from pathlib import Path

from bench.peers import RCPT, SENDER, free_port
from tests.support.clamd import Clamd

ATTACHMENT_BYTES = 100_000
BOUNDARY = "=_bench_scan_boundary"


def _headers(subject: str, extra: str = "") -> str:
    return (f"From: <{SENDER}>\nTo: <{RCPT}>\nSubject: {subject}\nDate: Tue, 08 Dec 2026 04:00:00 +0000\n"
            f"Message-ID: <bench-{subject}@src.test>\nMIME-Version: 1.0\n{extra}")


def _text(n: int, seed: int) -> str:
    """About n bytes of plain-text lines (72 characters and LF), deterministic."""
    rnd = random.Random(seed)
    words = ["mail", "gateway", "quarterly", "report", "numbers", "attached", "please", "find", "the", "of"]
    lines, size = [], 0
    while size < n:
        line = " ".join(rnd.choice(words) for _ in range(12))[:72]
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines)[:n].rstrip() + "\n"


def _zip(size: int) -> bytes:
    rnd = random.Random(27)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("report.txt", _text(20_000, 1))
        z.writestr("figures.bin", rnd.randbytes(size - 20_000 - 300))
    return buf.getvalue()


def message_text(kind: str, size: int) -> str:
    """The message (LF line ends) of a scanning workload: `size` bytes of text, or with the 100 KB zip attached."""
    if size < ATTACHMENT_BYTES * 2:
        head = _headers("scan-5k", "Content-Type: text/plain; charset=us-ascii\n\n")
        return head + _text(size - len(head), 5)
    att = base64.encodebytes(_zip(ATTACHMENT_BYTES)).decode()
    head = _headers("scan-1m", f'Content-Type: multipart/mixed; boundary="{BOUNDARY}"\n\n')
    part_text = f"--{BOUNDARY}\nContent-Type: text/plain; charset=us-ascii\n\n"
    part_att = (f"\n--{BOUNDARY}\nContent-Type: application/zip; name=report.zip\n"
                "Content-Disposition: attachment; filename=report.zip\nContent-Transfer-Encoding: base64\n\n")
    tail = f"--{BOUNDARY}--\n"
    fill = size - len(head) - len(part_text) - len(part_att) - len(att) - len(tail)
    return head + part_text + _text(fill, 6) + part_att + att + tail


def message_file(workdir: Path, name: str, size: int) -> Path:
    path = workdir / f"message-{name}.eml"
    if not path.exists():
        path.write_text(message_text(name, size))
    return path


def antivirus_settings(clamd_port: int) -> dict:
    """mailgate's `antivirus` section for the bench: the bench's clamd; everything else at its default (scan in the
    processor, infected and unscannable quarantined, the dangerous-files rule on)."""
    return {"enabled": True, "scanners": [{"host": "127.0.0.1", "port": clamd_port}]}


def start_clamd(workdir: Path) -> Clamd:
    """clamd on a free loopback port with the tests' database and its clean-file cache off: the workloads send one
    message file over and over, and with the cache clamd would skip what it saw (the attachment, and for Postfix the
    whole message) — real mail is not repeated. clamd's defaults otherwise (MaxThreads 10)."""
    return Clamd(workdir / "clamd", free_port()).start(StreamMaxLength="26M", DisableCache="yes")


MILTER_CONF = {
    "Foreground": "yes", "User": "root", "OnClean": "Accept", "OnInfected": "Quarantine", "OnFail": "Defer",
    "AddHeader": "No",  # mailgate delivers clean mail byte-identical; so does the milter then
    "LogVerbose": "no", "LogClean": "Off", "LogInfected": "Basic", "LogTime": "yes", "MaxFileSize": "25M",
    "ReadTimeout": "120", "SupportMultipleRecipients": "no",
}


class ClamavMilter:
    """Debian's clamav-milter on a loopback TCP port, asking the bench's clamd (INSTREAM over TCP)."""

    def __init__(self, workdir: Path, clamd_port: int) -> None:
        self.dir = workdir / "clamav-milter"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        conf = {**MILTER_CONF, "MilterSocket": f"inet:{self.port}@127.0.0.1",
                "ClamdSocket": f"tcp:127.0.0.1:{clamd_port}", "PidFile": str(self.dir / "milter.pid"),
                "TemporaryDirectory": str(self.dir), "LogFile": str(self.dir / "milter.log")}
        self.conf = self.dir / "clamav-milter.conf"
        self.conf.write_text("".join(f"{k} {v}\n" for k, v in conf.items()))
        self.proc: subprocess.Popen | None = None

    @property
    def socket(self) -> str:
        """The milter as Postfix's `smtpd_milters` names it."""
        return f"inet:127.0.0.1:{self.port}"

    def start(self) -> int:
        with open(self.dir / "milter.out", "ab") as out:
            self.proc = subprocess.Popen(["clamav-milter", "-c", str(self.conf)], stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"clamav-milter exited: {(self.dir / 'milter.out').read_text()[-1000:]}"
                                   f"{(self.dir / 'milter.log').read_text(errors='replace')[-1000:]}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self.proc.pid
            time.sleep(0.1)
        raise RuntimeError("clamav-milter did not listen")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
