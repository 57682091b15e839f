"""A secured Kafka cluster, for real: the broker's only client listener is SASL_SSL (SCRAM-SHA-512, and a client
certificate required; certificates from a throwaway CA), and every stage, the operator tools and the admin page work
through it; a wrong password, an untrusted CA or a missing client certificate stops start-up with one clear line.

One broker for the module (`mailgate.ops.kafka.local_broker` with `local_broker.sasl_ssl`); the SASL password reaches every
process only through `{env: MAILGATE_KAFKA_PASSWORD}`, and the session-end sweep searches every log and Kafka
segment for it (tests/support/secrets.py).
"""
from __future__ import annotations

import asyncio
import http.cookiejar
import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest
import yaml
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError

from mailgate.ops.admin.auth import hash_password
from tests.scenario.test_walking_skeleton import inbound_config, queued_id, send
from tests.support.harness import ROOT, Gateway, SmtpPrimary, _merge, free_port
from tests.support.secrets import ADMIN_API_PASSWORD, KAFKA_SASL_PASSWORD
from tests.support.secured_kafka import PASSWORD_ENV, make_certs, password_env, secured_settings

pytestmark = pytest.mark.scenario


@pytest.fixture(scope="module")
def secured(tmp_path_factory, kafka_jars):
    """A SASL_SSL-only broker with the topics created, a recording primary, and the config every process reads."""
    work = tmp_path_factory.mktemp("secured")
    saved = os.environ.get(PASSWORD_ENV)
    os.environ.update(password_env())  # the stages inherit it; the YAML file holds only the reference
    primary = SmtpPrimary().start()
    gw = Gateway(work)
    gw.configure(_merge(_merge(inbound_config(primary.port), secured_settings(make_certs(work / "certs"), client_cert=True)),
                        {"admin": {"username": "admin", "password_hash": hash_password(ADMIN_API_PASSWORD, n=2 ** 12)}}))
    try:
        gw.start_broker()
        yield gw, primary
    finally:
        gw.stop_all()
        gw.release()
        primary.stop()
        if saved is None:
            os.environ.pop(PASSWORD_ENV, None)
        else:
            os.environ[PASSWORD_ENV] = saved


def mailgate(gw: Gateway, *args: str, config=None, env: dict | None = None, timeout_s: float = 90):
    """Run a `mailgate` command to its end (bounded: a hang fails the test); its output also goes to a .log file."""
    proc = subprocess.run([sys.executable, "-m", "mailgate.ops.cli", *args, "--config", str(config or gw.config_path)],
                          capture_output=True, text=True, cwd=str(ROOT), timeout=timeout_s,
                          env={**os.environ, **(env or {})})
    with open(gw.workdir / f"cli-{args[0]}.log", "a") as log:
        log.write(proc.stdout + proc.stderr)
    return proc


def test_message_passes_every_stage_over_sasl_ssl_and_trace_and_admin_read_it(secured):
    gw, primary = secured
    text = (gw.workdir / "broker" / "server.properties").read_text()
    assert "listeners=SASL_SSL://127.0.0.1:" in text and "PLAINTEXT://" not in text.replace("CONTROLLER:PLAINTEXT", "")
    gw.start_all()

    code, reply = send(gw.smtp_port, "bob@example.test")
    assert code == 250, reply
    mid = queued_id(reply)
    assert primary.wait_for(1)[0].rcpt_tos == ["bob@example.test"]
    assert gw.wait_events(mid, "MessageDelivered") == ["MessageReceived", "MessageRouted", "DeliveryAttempted",
                                                       "MessageDelivered"]

    trace = mailgate(gw, "trace", mid)
    assert trace.returncode == 0, trace.stderr
    assert "MessageDelivered" in trace.stdout and "bob@example.test" in trace.stdout

    assert [e["type"] for e in _admin_trace(gw, mid)][-1] == "MessageDelivered"


def _admin_trace(gw: Gateway, mid: str) -> list[dict]:
    """`mailgate admin` as a process: log in over HTTP and read one message's timeline (GET /api/messages/ID)."""
    port = free_port()
    with open(gw.workdir / "admin.log", "ab") as log:
        admin = subprocess.Popen([sys.executable, "-m", "mailgate.ops.cli", "admin", "--config", str(gw.config_path),
                                  "--listen", f"127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT,
                                 cwd=str(ROOT), start_new_session=True)
    try:
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        login = urllib.request.Request(f"http://127.0.0.1:{port}/api/login", method="POST",
                                       data=json.dumps({"username": "admin", "password": ADMIN_API_PASSWORD}).encode(),
                                       headers={"Content-Type": "application/json"})
        deadline = time.monotonic() + 60
        while True:
            try:
                opener.open(login, timeout=10).read()
                break
            except OSError:
                if time.monotonic() > deadline or admin.poll() is not None:
                    raise AssertionError((gw.workdir / "admin.log").read_text()[-3000:]) from None
                time.sleep(0.2)
        with opener.open(f"http://127.0.0.1:{port}/api/messages/{mid}", timeout=30) as resp:
            return json.loads(resp.read())["events"]
    finally:
        admin.terminate()
        admin.wait(20)


def test_operator_tools_read_and_write_over_sasl_ssl(secured):
    gw, _ = secured
    assert mailgate(gw, "topics").stdout.strip().splitlines()[0] == "created: none (all exist)"

    desired = yaml.safe_load(gw.config_path.read_text())
    desired["outbound_gateways"] = [{"name": "relay", "address": "127.0.0.1", "port": free_port()}]
    path = gw.workdir / "desired.yaml"
    path.write_text(yaml.safe_dump(desired))
    applied = mailgate(gw, "config", "apply", str(path), "--operator", "carol")
    assert "applied to mail.config" in applied.stdout, applied.stderr[-3000:]
    history = mailgate(gw, "config", "history").stdout
    assert any("carol" in ln and "outbound/relay" in ln for ln in history.splitlines()), history
    assert "relay" in mailgate(gw, "gateway", "list").stdout

    for command in (["events", "--json"], ["queue", "--json"], ["quarantine", "list"],
                    ["replay", "--topic", "mail.received", "--from-offset", "0", "--dry-run", "--reason", "check"]):
        proc = mailgate(gw, *command)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, (command, proc.stderr[-3000:])


@pytest.mark.parametrize("command", [["processor"], ["ingress"], ["egress"], ["trace", "0000"], ["admin"]])
def test_wrong_password_stops_start_up_with_one_clear_line(secured, command):
    gw, _ = secured
    proc = mailgate(gw, *command, env=password_env("not-the-password"))
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert lines[0].startswith(f"mailgate {command[0]}: Kafka at {gw.cfg.kafka.bootstrap_servers[0]} (SASL_SSL, "
                               "SCRAM-SHA-512 as 'mailgate'): login refused: "), lines[0]
    assert "invalid credentials" in lines[0] and KAFKA_SASL_PASSWORD not in proc.stdout + proc.stderr


def test_untrusted_broker_certificate_stops_start_up_with_one_clear_line(secured):
    gw, _ = secured
    data = yaml.safe_load(gw.config_path.read_text())
    del data["kafka"]["security"]["ca_file"]  # the system's CAs do not know the test's CA
    path = gw.workdir / "no-ca.yaml"
    path.write_text(yaml.safe_dump(data))
    proc = mailgate(gw, "processor", config=path)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"mailgate processor: Kafka at {gw.cfg.kafka.bootstrap_servers[0]} (SASL_SSL, SCRAM-SHA-512 as 'mailgate'): "
        "broker certificate not trusted: unable to get local issuer certificate"], proc.stderr[-3000:]


def test_a_client_without_its_certificate_is_refused_with_one_clear_line(secured):
    gw, _ = secured
    data = yaml.safe_load(gw.config_path.read_text())
    del data["kafka"]["security"]["cert_file"], data["kafka"]["security"]["key_file"]
    path = gw.workdir / "no-client-cert.yaml"
    path.write_text(yaml.safe_dump(data))
    proc = mailgate(gw, "egress", config=path)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"mailgate egress: Kafka at {gw.cfg.kafka.bootstrap_servers[0]} (SASL_SSL, SCRAM-SHA-512 as 'mailgate'): "
        "TLS refused by the broker: SSLV3_ALERT_BAD_CERTIFICATE (does it require a client certificate? "
        "see kafka.security.cert_file)"], proc.stderr[-3000:]


def test_a_client_without_tls_and_sasl_gets_nothing(secured):
    gw, _ = secured

    async def plaintext_client() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=gw.cfg.kafka.bootstrap_servers, request_timeout_ms=5000)
        try:
            await admin.start()
        finally:
            await admin.close()

    with pytest.raises(KafkaConnectionError):
        asyncio.run(plaintext_client())
