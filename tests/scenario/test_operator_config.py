"""Configuration as events: `mailgate config apply` disabling a gateway takes effect in a running egress within
seconds, `config history` shows who did it, and the gateway's password is never in mail.config in clear text."""
from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import pytest
import yaml

from mailgate.core import kafka, topics
from mailgate.core.secrets import new_key
from tests.scenario.test_outbound_routing import send_batch
from tests.support.harness import ROOT, SmtpPrimary, wait_logged

pytestmark = pytest.mark.scenario
from tests.support.secrets import CONFIG_EVENTS_PASSWORD as PASSWORD


def gateways(status_b: str) -> list[dict]:
    return [{"name": "a", "address": "127.0.0.1", "port": 0, "auth_username": "mg", "auth_password": PASSWORD},
            {"name": "b", "address": "127.0.0.1", "port": 0, "status": status_b}]


def cli(gateway, *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "mailgate.ops.cli", *args, "--config", str(gateway.config_path)],
                         capture_output=True, text=True, cwd=str(ROOT), timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


async def raw_config_topic(cfg) -> bytes:
    c = kafka.consumer(cfg, "raw-config-reader", None, isolation_level="read_uncommitted")
    await c.start()
    try:
        tps = await kafka.assign_whole_topic(c, topics.CONFIG)
        ends = await c.end_offsets(tps)
        data = b""
        while any([await c.position(tp) < ends[tp] for tp in tps]):
            for recs in (await c.getmany(timeout_ms=500)).values():
                data += b"".join((r.key or b"") + (r.value or b"") for r in recs)
        return data
    finally:
        await c.stop()


def test_config_apply_disables_a_gateway_in_running_egress_and_history_shows_it(gateway, monkeypatch):
    monkeypatch.setenv("MAILGATE_SECRET_KEY", new_key())  # inherited by the stages and the CLI
    a, b = SmtpPrimary(auth_require_tls=False, authenticator=lambda *args: _ok()).start(), SmtpPrimary().start()
    try:
        gws = gateways("enabled")
        gws[0]["port"], gws[1]["port"] = a.port, b.port
        gateway.configure({"ingress": {"relay_networks": ["127.0.0.1"]}, "outbound_gateways": gws})
        gateway.start_broker()
        gateway.start_all()
        send_batch(gateway.smtp_port, range(0, 10))
        deadline = time.monotonic() + 60
        while len(a.messages) + len(b.messages) < 10 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert a.messages and b.messages, "round robin should use both gateways"

        desired = yaml.safe_load(gateway.config_path.read_text())
        desired["outbound_gateways"][0]["status"] = "disabled"
        new_file = gateway.workdir / "desired.yaml"
        new_file.write_text(yaml.safe_dump(desired))
        print(cli(gateway, "config", "apply", str(new_file), "--operator", "carol"))
        wait_logged(gateway, "GatewayConfigured outbound a by carol")  # running stages follow mail.config

        before_a, before_b = len(a.messages), len(b.messages)
        send_batch(gateway.smtp_port, range(10, 20))
        b.wait_for(before_b + 10, timeout_s=60)
        assert len(a.messages) == before_a, "a disabled gateway takes no new mail"

        history = cli(gateway, "config", "history")
        line = next(ln for ln in history.splitlines() if "outbound/a" in ln)
        assert "carol" in line and "configured" in line
        raw = asyncio.run(raw_config_topic(gateway.cfg))
        assert b"outbound/a" in raw and PASSWORD.encode() not in raw
        assert PASSWORD not in gateway.logs()
    finally:
        a.stop()
        b.stop()


def _ok():
    from aiosmtpd.smtp import AuthResult
    return AuthResult(success=True)
