"""Every gateway setting takes effect live: with two ingress and two processor replicas running and a steady trickle
of mail, changes made through the admin API and `mailgate config apply` are followed by every replica without a
restart — a new Domain Forward gateway, web-service user verification, a disabled gateway, the High spam action,
scorer weights, relay networks — a setting that cannot change live is refused, and every message in flight is
judged by one configuration version, delivered once."""
from __future__ import annotations

import os
import re
import signal
import smtplib
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
import yaml

from mailgate.core.config_events import config_version, effective_config, read_state
from mailgate.core.secrets import new_key
from mailgate.ops.admin.auth import hash_password
from tests.scenario.test_walking_skeleton import queued_id, send
from tests.support.harness import ROOT, free_port
from tests.support.secrets import ADMIN_API_PASSWORD, SMARTERMAIL_PASSWORD
from tests.support.smartermail_api import SmarterMailAPI
from tests.support.spamd import GTUBE, SPAMD, running_spamd
from tests.support.traffic import Trickle, wait_until

pytestmark = [pytest.mark.scenario, pytest.mark.skipif(SPAMD is None, reason="spamd is not installed")]

APPLIED = re.compile(r"configuration version ([0-9a-f]{12}) applied \((\d+) ms after it was written\)")
SPAM = b"From: a@sender.test\r\nTo: bob@example.test\r\nSubject: Test spam\r\n\r\n" + GTUBE + b"\r\n"
STAGES = ("ingress", "processor", "egress")


def main_gateway(primary_port: int) -> dict:
    return {"name": "main", "mode": "domain_forward", "primary_addresses": ["127.0.0.1"],
            "primary_port": primary_port, "domain_verification": {"mode": "specified_domains",
                                                                  "domains": ["example.test"]},
            "spam_actions": {"high": [{"action": "prefix_subject", "text": "[SPAM]"}]}}


class Replicas:
    """The stage processes of the test and their logs: the harness's, plus a second ingress on its own port."""

    def __init__(self, gateway) -> None:
        self.gateway = gateway
        data = yaml.safe_load(gateway.config_path.read_text())
        self.second_port = free_port()
        data["ingress"]["listen_port"] = self.second_port
        data["node_name"] = "test-2"
        self.second_config = gateway.workdir / "ingress-2.yaml"
        self.second_config.write_text(yaml.safe_dump(data))
        self.extra: list[subprocess.Popen] = []

    def start(self) -> None:
        g = self.gateway
        for stage in ("processor", "processor", "egress", "ingress"):
            g.start(stage)
        with open(g.workdir / "ingress-second.log", "ab") as log:
            self.extra.append(subprocess.Popen(
                [sys.executable, "-m", "mailgate.ops.cli", "ingress", "--config", str(self.second_config)],
                stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT), start_new_session=True))
        wait_until(lambda: "connected to Kafka" in self.log_text(g.workdir / "ingress-second.log"), 60,
                   "the second ingress")

    @staticmethod
    def log_text(path: Path) -> str:
        return path.read_text(errors="replace") if path.exists() else ""

    def logs(self) -> dict[str, str]:
        names = [f"{s}-{i}.log" for s in STAGES for i in range(2)] + ["ingress-second.log"]
        return {n: self.log_text(self.gateway.workdir / n) for n in names if (self.gateway.workdir / n).exists()}

    def wait_applied(self, version: str, timeout_s: float = 30) -> None:
        """Until every replica (5 processes) logged that it applies `version`."""
        def everywhere() -> bool:
            logs = self.logs()
            return len(logs) == 5 and all(f"configuration version {version} applied" in t for t in logs.values())
        wait_until(everywhere, timeout_s, f"every replica to apply configuration version {version}")

    def stop(self) -> None:
        for p in self.extra:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
            p.wait(20)
        self.extra.clear()


class Admin:
    """The real admin server as a process, and a logged-in HTTP client."""

    def __init__(self, gateway) -> None:
        self.port = free_port()
        with open(gateway.workdir / "admin.log", "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mailgate.ops.cli", "admin", "--config", str(gateway.config_path),
                 "--listen", f"127.0.0.1:{self.port}"], stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT),
                start_new_session=True)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=60)
        wait_until(self._up, 60, "the admin server")
        r = self.http.post("/api/login", json={"username": "root", "password": ADMIN_API_PASSWORD})
        assert r.status_code == 200, r.text
        self.http.headers["X-CSRF-Token"] = r.json()["csrf_token"]

    def _up(self) -> bool:
        try:
            return self.http.get("/api/openapi.json").status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        self.http.close()
        self.proc.terminate()
        self.proc.wait(20)


def rcpt_reply(port: int, rcpt: str, source: str = "127.0.0.1") -> tuple[int, str]:
    with smtplib.SMTP("127.0.0.1", port, timeout=60, source_address=(source, 0)) as s:
        s.ehlo("client.test")
        s.mail("alice@sender.test")
        code, msg = s.rcpt(rcpt)
        return code, msg.decode()


def live_version(gateway) -> str:
    state, _ = __import__("asyncio").run(read_state(gateway.cfg))
    return config_version(effective_config(gateway.cfg, state))


def config_apply(gateway, data: dict) -> subprocess.CompletedProcess:
    path = gateway.workdir / f"desired-{time.monotonic_ns()}.yaml"
    path.write_text(yaml.safe_dump(data))
    return subprocess.run([sys.executable, "-m", "mailgate.ops.cli", "config", "apply", str(path), "--operator",
                           "dana", "--config", str(gateway.config_path)], capture_output=True, text=True,
                          cwd=str(ROOT), timeout=120)


def events_of(gateway, mid: str, name: str) -> list:
    return [e for e in gateway.events(mid) if type(e).__name__ == name]


@pytest.fixture
def spamd(tmp_path):
    with running_spamd(tmp_path) as server:
        yield server


@pytest.fixture
def directory():
    with SmarterMailAPI(users={"bob@example.test"}, domains=["example.test"], password=SMARTERMAIL_PASSWORD) as api:
        yield api


@pytest.mark.serial  # six stage processes, the admin page and spamd: too much for a shared 2-core worker
def test_every_live_setting_applies_in_every_replica_without_restart(gateway, primary, spamd, directory,
                                                                     monkeypatch):
    monkeypatch.setenv("MAILGATE_SECRET_KEY", new_key())  # inherited by the stages, the admin server and the CLI
    gateway.configure({
        "spam": {"enabled": True, "scorers": [{"kind": "spamd", "port": spamd.port, "timeout_s": 60}]},
        "inbound_gateways": [main_gateway(primary.port)],
        "admin": {"username": "root", "password_hash": hash_password(ADMIN_API_PASSWORD, n=2 ** 12)}})
    gateway.start_broker()
    replicas = Replicas(gateway)
    replicas.start()
    admin = Admin(gateway)
    ports = (gateway.smtp_port, replicas.second_port)
    trickles = [Trickle(port, gap_s=0.5, prefix=f"live{i}") for i, port in enumerate(ports)]
    try:
        for t in trickles:
            t.start()
        base = yaml.safe_load(gateway.config_path.read_text())

        # 1. config apply: the High action changes from prefix_subject to quarantine.
        desired = yaml.safe_load(gateway.config_path.read_text())
        desired["inbound_gateways"][0]["spam_actions"] = {"high": [{"action": "quarantine"}]}
        out = config_apply(gateway, desired)
        assert out.returncode == 0, out.stderr
        replicas.wait_applied(live_version(gateway))
        spam_id = queued_id(send(gateway.smtp_port, "bob@example.test", SPAM)[1])
        gateway.wait_events(spam_id, "MessageQuarantined", timeout_s=90)

        # 2. admin API: a new Domain Forward gateway for a new domain accepts and forwards its mail.
        assert all(rcpt_reply(p, "x@new.test")[0] == 554 for p in ports)
        doc = {"kind": "inbound", "name": "newdom", "mode": "domain_forward", "primary_addresses": ["127.0.0.1"],
               "primary_port": primary.port,
               "domain_verification": {"mode": "specified_domains", "domains": ["new.test"]}}
        r = admin.http.post("/api/gateways", json=doc)
        assert r.status_code == 201, r.text
        assert r.headers["X-Mailgate-Config-Version"] == live_version(gateway)  # what the page shows after save
        replicas.wait_applied(live_version(gateway))
        new_ids = [queued_id(send(p, "x@new.test")[1]) for p in ports]
        for mid in new_ids:
            gateway.wait_events(mid, "MessageDelivered", timeout_s=60)

        # 3. admin API: the main gateway switches to web-service user verification: unknown users get 550 5.1.1.
        assert all(rcpt_reply(p, "nobody@example.test")[0] == 250 for p in ports)
        main = {**desired["inbound_gateways"][0], "kind": "inbound",
                "smartermail": {"enabled": True, "url": directory.url, "username": "admin",
                                "password": SMARTERMAIL_PASSWORD, "user_verification": "web_service"}}
        r = admin.http.put("/api/gateways/inbound/main", json=main)
        assert r.status_code == 200, r.text
        replicas.wait_applied(live_version(gateway))
        for p in ports:
            code, text = rcpt_reply(p, "nobody@example.test")
            assert (code, text[:5]) == (550, "5.1.1"), text
            assert rcpt_reply(p, "bob@example.test")[0] == 250

        # 4. config apply: relay networks now let the mail server at 127.0.0.2 relay outbound (the trickle's
        # client, 127.0.0.1, stays an inbound sender).
        assert rcpt_reply(gateway.smtp_port, "someone@far.test", "127.0.0.2")[0] == 554
        desired = yaml.safe_load(gateway.config_path.read_text())
        desired["ingress"]["relay_networks"] = ["127.0.0.2"]
        state_before = live_version(gateway)
        out = config_apply(gateway, {**desired, "inbound_gateways": _live_inbound(gateway)})
        assert out.returncode == 0, out.stderr
        assert live_version(gateway) != state_before
        replicas.wait_applied(live_version(gateway))
        assert all(rcpt_reply(p, "someone@far.test", "127.0.0.2")[0] == 250 for p in ports)

        # 5. config apply: the spamd scorer's weight drops GTUBE (1000+ points) below every threshold.
        desired = yaml.safe_load(gateway.config_path.read_text())
        desired["ingress"]["relay_networks"] = ["127.0.0.2"]
        desired["spam"]["scorers"][0]["weight"] = 0.0001
        out = config_apply(gateway, {**desired, "inbound_gateways": _live_inbound(gateway)})
        assert out.returncode == 0, out.stderr
        replicas.wait_applied(live_version(gateway))
        light_id = queued_id(send(gateway.smtp_port, "bob@example.test", SPAM)[1])
        gateway.wait_events(light_id, "MessageDelivered", timeout_s=90)
        assert events_of(gateway, light_id, "MessageClassified")[0].level == "none"

        # 6. admin API: disabling the new gateway refuses its domain again on both ingress replicas.
        r = admin.http.post("/api/gateways/inbound/newdom/status", json={"status": "disabled"})
        assert r.status_code == 200, r.text
        replicas.wait_applied(live_version(gateway))
        assert all(rcpt_reply(p, "x@new.test")[0] == 554 for p in ports)

        # Every replica reports the version it applies on /metrics, and `config version` compares them.
        urls = [m for text in replicas.logs().values()
                for m in re.findall(r"metrics on (http://127\.0\.0\.1:\d+)/metrics", text)]
        assert len(urls) == 5
        out = subprocess.run([sys.executable, "-m", "mailgate.ops.cli", "config", "version", "--config",
                              str(gateway.config_path), *[a for u in urls for a in ("--metrics", u)]],
                             capture_output=True, text=True, cwd=str(ROOT), timeout=60)
        assert out.returncode == 0 and out.stdout.count(live_version(gateway)) == 6, out.stdout + out.stderr

        # 7. a setting no stage applies live is refused with the reason, and nothing is written.
        before = live_version(gateway)
        moved = {**base, "ingress": {**base["ingress"], "listen_port": free_port()}}
        out = config_apply(gateway, moved)
        assert out.returncode == 1 and "refused: ingress.listen_port cannot change" in out.stderr, out.stderr
        assert live_version(gateway) == before
    finally:
        for t in trickles:
            t.halt.set()
        for t in trickles:
            t.join(60)
        admin.stop()
        replicas.stop()

    # Every trickle message accepted during the changes was delivered exactly once, judged by one version.
    accepted = [r for t in trickles for r in t.snapshot() if r.code == 250]
    assert len(accepted) >= 10, "the trickle should have kept mail flowing through the changes"
    ids = [queued_id(r.text) for r in accepted]
    wait_until(lambda: len(primary.messages) >= len(ids) + 3, 120, "every accepted message at the primary")
    subjects = Counter(m.data.split(b"Subject: ", 1)[1].split(b"\r\n", 1)[0] for m in primary.messages)
    for r in accepted:
        assert subjects[r.sender.encode()] == 1, f"{r.sender} arrived {subjects[r.sender.encode()]} times"
    versions_seen = set()
    for mid in ids:
        events = gateway.events(mid)
        delivered = [e for e in events if type(e).__name__ == "MessageDelivered"]
        assert len(delivered) == 1, (mid, [type(e).__name__ for e in events])
        processor = {e.config_version for e in events
                     if type(e).__name__ in ("MessageClassified", "MessageRouted")
                     or (type(e).__name__ == "RecipientVerified" and e.stage == "processor")}
        ingress = {e.config_version for e in events if type(e).__name__ == "MessageReceived"
                   or (type(e).__name__ == "RecipientVerified" and e.stage == "ingress")}
        assert len(processor) == 1 and len(ingress) == 1 and None not in processor | ingress, (mid, events)
        versions_seen |= processor
    assert len(versions_seen) >= 3, "the trickle should have crossed several configuration versions"

    delays = [int(ms) for text in replicas.logs().values() for _, ms in APPLIED.findall(text)]
    delays.sort()
    p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))]
    print(f"\nconfiguration write -> applied, {len(delays)} applications on 5 replicas: "
          f"p50 {statistics.median(delays):.0f} ms, p99 {p99} ms, max {delays[-1]} ms")
    assert p99 <= 5000


def _live_inbound(gateway) -> list[dict]:
    """The inbound gateways as the topic holds them now (a config apply must carry them to keep them)."""
    import asyncio
    state, _ = asyncio.run(read_state(gateway.cfg))
    live = effective_config(gateway.cfg, state)
    return [g.model_dump(mode="json", exclude_none=True) for g in live.inbound_gateways]
