"""`mailgate auth add|passwd|list|remove` and `mailgate dkim add|list|record|remove` against a real broker: the same
live configuration the admin page writes, with the password read from stdin and never printed."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from mailgate.core.config_events import effective_config, read_state
from mailgate.core.passwords import check_password
from mailgate.core.secrets import new_key
from tests.support.harness import ROOT, Gateway
from tests.support.secrets import MANAGED_AUTH_NEW_PASSWORD as NEW_PW
from tests.support.secrets import MANAGED_AUTH_PASSWORD as PASSWORD


@pytest.fixture(scope="module")
def gw(tmp_path_factory, kafka_jars):
    gw = Gateway(tmp_path_factory.mktemp("mail-auth-cli"))
    gw.configure({})
    gw.start_broker()
    yield gw
    gw.release()


@pytest.fixture(scope="module")
def cli(gw):
    env = {**os.environ, "MAILGATE_SECRET_KEY": new_key()}

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "mailgate.ops.cli", *args, "--config", str(gw.config_path),
                               "--operator", "dana"], input=stdin, capture_output=True, text=True, cwd=str(ROOT),
                              timeout=120, env=env)
    run.env = env
    return run


@pytest.fixture(autouse=True)
def secret_key(cli, monkeypatch):
    monkeypatch.setenv("MAILGATE_SECRET_KEY", cli.env["MAILGATE_SECRET_KEY"])


def _live(gw):
    state, _ = asyncio.run(read_state(gw.cfg))
    return effective_config(gw.cfg, state)


def test_auth_users_from_the_cli(gw, cli):
    done = cli("auth", "add", "relay2", "--allowed-sender", "@sender.test", stdin=PASSWORD + "\n")
    assert done.returncode == 0, done.stderr
    listed = cli("auth", "list")
    assert listed.stdout.strip() == "relay2 senders: @sender.test"
    assert cli("auth", "passwd", "relay2", stdin=NEW_PW + "\n").returncode == 0
    [user] = _live(gw).ingress.auth.users
    assert check_password(NEW_PW, user.password_hash)
    again = cli("auth", "add", "relay2", stdin=PASSWORD + "\n")
    assert again.returncode == 2 and again.stderr.strip() == "mailgate auth: an AUTH user named 'relay2' exists"
    assert cli("auth", "remove", "relay2").returncode == 0
    gone = cli("auth", "remove", "relay2")
    assert gone.returncode == 1 and gone.stderr.strip() == "mailgate auth: no AUTH user named 'relay2'"
    printed = "".join(c.stdout + c.stderr for c in (done, listed))
    assert PASSWORD not in printed and NEW_PW not in printed


def test_dkim_keys_from_the_cli(gw, cli):
    done = cli("dkim", "add", "--domain", "cli.test", "--selector", "s1", "--bits", "1024")
    assert done.returncode == 0, done.stderr
    assert 's1._domainkey.cli.test. IN TXT ( "v=DKIM1; k=rsa; p=' in done.stdout
    record = cli("dkim", "record", "--domain", "cli.test", "--selector", "s1")
    assert record.returncode == 0 and record.stdout.strip() == done.stdout.strip().splitlines()[-1]
    [key] = _live(gw).dkim_signing.keys
    assert key.private_key.sealed and "PRIVATE KEY" not in done.stdout + record.stdout
    assert cli("dkim", "list").stdout.strip() == record.stdout.strip()
    assert cli("dkim", "remove", "--domain", "cli.test", "--selector", "s1").returncode == 0
    assert cli("dkim", "record", "--domain", "cli.test", "--selector", "s1").returncode == 1
