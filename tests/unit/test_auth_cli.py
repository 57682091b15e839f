"""`mailgate auth hash` and `mailgate dkim keygen`: what an operator runs to set up logins and signing keys."""
from __future__ import annotations

import re
import stat
import subprocess
import sys

import dkim

from mailgate.core.passwords import check_password
from tests.support.harness import ROOT
from tests.support.secrets import SMTP_AUTH_PASSWORD as PASSWORD


def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mailgate.ops.cli", *args], input=stdin, capture_output=True,
                          text=True, cwd=str(ROOT), timeout=60)


def test_auth_hash_prints_a_hash_that_checks_and_not_the_password():
    done = cli("auth", "hash", stdin=PASSWORD + "\n")
    assert done.returncode == 0, done.stderr
    line = done.stdout.strip()
    assert check_password(PASSWORD, line) and PASSWORD not in done.stdout + done.stderr


def test_dkim_keygen_writes_a_private_key_file_and_prints_the_record_that_verifies_it(tmp_path):
    key_file = tmp_path / "k.pem"
    done = cli("dkim", "keygen", "--domain", "example.test", "--selector", "s2026", "--out", str(key_file))
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and "PRIVATE KEY" not in done.stdout
    m = re.search(r'^s2026\._domainkey\.example\.test\. IN TXT \( (.+) \)$', done.stdout, re.M)
    assert m, done.stdout
    record = "".join(re.findall(r'"([^"]*)"', m.group(1)))
    assert record.startswith("v=DKIM1; k=rsa; p=")
    msg = b"From: a@example.test\r\nSubject: x\r\n\r\nbody\r\n"
    signed = dkim.sign(msg, b"s2026", b"example.test", key_file.read_bytes()) + msg
    assert dkim.verify(signed, dnsfunc=lambda name, timeout=5: record.encode())
    again = cli("dkim", "keygen", "--domain", "example.test", "--selector", "s2026", "--out", str(key_file))
    assert again.returncode == 2 and "exists" in again.stderr
