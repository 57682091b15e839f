"""The admin HTTP API against a real broker: gateways written to mail.config, secrets write-only, login and CSRF."""
from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp.test_utils import TestClient, TestServer

from mailgate.ops.admin.auth import hash_password
from mailgate.ops.admin.server import build_app
from mailgate.core.config import parse_config
from mailgate.core.config_events import effective_config, read_state
from mailgate.core.secrets import new_key
from tests.support.harness import Gateway, free_port

KEY = new_key()
from tests.support.secrets import ADMIN_API_PASSWORD as PASSWORD
HASH = hash_password(PASSWORD, n=2 ** 12)
from tests.support.secrets import ADMIN_API_RELAY_PASSWORD as RELAY_PW


@pytest.fixture(scope="module")
def broker_gw(tmp_path_factory, kafka_jars):
    """One broker for the module's tests (each test uses its own gateway names)."""
    gw = Gateway(tmp_path_factory.mktemp("admin"))
    gw.configure({"admin": {"username": "root", "password_hash": HASH}})
    gw.start_broker()
    yield gw
    gw.release()


@pytest.fixture(autouse=True)
def secret_key(monkeypatch):
    monkeypatch.setenv("MAILGATE_SECRET_KEY", KEY)


async def _client(cfg) -> TestClient:
    client = TestClient(TestServer(build_app(cfg)))
    await client.start_server()
    return client


@pytest.fixture
async def anon():
    """A client of an app with no broker behind it (for what is refused before Kafka is touched)."""
    client = await _client(parse_config({"admin": {"username": "root", "password_hash": HASH}}))
    yield client
    await client.close()


@pytest.fixture
async def api(broker_gw):
    """A logged-in client; `api.csrf` holds the session's CSRF token."""
    client = await _client(broker_gw.cfg)
    r = await client.post("/api/login", json={"username": "root", "password": PASSWORD})
    assert r.status == 200
    client.csrf = (await r.json())["csrf_token"]
    yield client
    await client.close()


def _h(client) -> dict:
    return {"X-CSRF-Token": client.csrf}


async def test_not_logged_in_gets_401_but_the_page_and_openapi_are_public(anon):
    assert (await anon.get("/api/gateways")).status == 401
    assert (await anon.post("/api/gateways", json={})).status == 401
    assert (await anon.get("/api/messages/x")).status == 401
    page = await anon.get("/")
    assert page.status == 200 and "script-src" not in page.headers["Content-Security-Policy"]
    assert "<form" in await page.text()
    spec = await (await anon.get("/api/openapi.json")).json()
    assert spec["openapi"].startswith("3.") and "/api/gateways/{kind}/{name}" in spec["paths"]


async def test_wrong_password_is_refused_and_login_sets_a_strict_httponly_cookie(anon):
    r = await anon.post("/api/login", json={"username": "root", "password": "nope"})
    assert r.status == 401 and "Set-Cookie" not in r.headers
    r = await anon.post("/api/login", json={"username": "root", "password": PASSWORD})
    cookie = r.headers["Set-Cookie"]
    assert r.status == 200 and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert PASSWORD not in cookie and PASSWORD not in await r.text()


async def test_a_state_change_without_the_csrf_token_is_403(anon):
    r = await anon.post("/api/login", json={"username": "root", "password": PASSWORD})
    token = (await r.json())["csrf_token"]
    doc = {"kind": "outbound", "name": "x", "address": "10.0.0.1"}
    assert (await anon.post("/api/gateways", json=doc)).status == 403
    assert (await anon.post("/api/gateways", json=doc, headers={"X-CSRF-Token": "forged"})).status == 403
    assert (await anon.delete("/api/gateways/outbound/x", headers={"X-CSRF-Token": token + "x"})).status == 403
    assert (await anon.post("/api/logout", headers={"X-CSRF-Token": token})).status == 200
    assert (await anon.get("/api/session")).status == 401


async def test_created_outbound_gateway_is_in_mail_config_and_listed_and_its_password_never_returned(api,
                                                                                                      broker_gw):
    doc = {"kind": "outbound", "name": "relay1", "mode": "round_robin", "address": "10.0.0.9", "port": 587,
           "encryption": "tls", "auth_username": "u1", "auth_password": RELAY_PW}
    r = await api.post("/api/gateways", json=doc, headers=_h(api))
    body = await r.text()
    assert r.status == 201, body
    assert RELAY_PW not in body and json.loads(body)["auth_password"] == {"configured": True}
    state, history = await read_state(broker_gw.cfg)
    stored = state["outbound/relay1"]
    assert stored.settings["address"] == "10.0.0.9" and stored.event.operator == "root"
    assert RELAY_PW not in stored.event.settings_json and '"sealed": "v1:' in stored.event.settings_json
    listed = await api.get("/api/gateways")
    text = await listed.text()
    assert RELAY_PW not in text and "v1:" not in text
    assert "relay1" in [g["name"] for g in json.loads(text)["gateways"]]
    again = await api.post("/api/gateways", json=doc, headers=_h(api))
    assert again.status == 409


async def test_an_outbound_body_put_at_an_inbound_path_is_a_conflict_and_changes_nothing(api, broker_gw):
    doc = {"kind": "outbound", "name": "mixed", "address": "10.0.0.7"}
    r = await api.put("/api/gateways/inbound/mixed", json=doc, headers=_h(api))
    body = await r.json()
    assert r.status == 409 and "'outbound'" in body["fields"]["kind"], body
    state, _ = await read_state(broker_gw.cfg)
    assert "inbound/mixed" not in state and "outbound/mixed" not in state


async def test_update_without_password_keeps_it_then_disable_and_delete(api, broker_gw):
    doc = {"kind": "outbound", "name": "relay2", "address": "10.0.0.2", "auth_username": "u2",
           "auth_password": RELAY_PW}
    assert (await api.post("/api/gateways", json=doc, headers=_h(api))).status == 201
    got = await (await api.get("/api/gateways/outbound/relay2")).json()
    got["port"] = 2525  # the page sends back what it got: the password placeholder, not the password
    r = await api.put("/api/gateways/outbound/relay2", json=got, headers=_h(api))
    assert r.status == 200, await r.text()
    state, _ = await read_state(broker_gw.cfg)
    settings = state["outbound/relay2"].settings
    assert settings["port"] == 2525 and "sealed" in settings["auth_password"]
    r = await api.post("/api/gateways/outbound/relay2/status", json={"status": "disabled"}, headers=_h(api))
    assert r.status == 200 and (await r.json())["status"] == "disabled"
    state, _ = await read_state(broker_gw.cfg)
    assert state["outbound/relay2"].settings["status"] == "disabled"
    assert (await api.delete("/api/gateways/outbound/relay2", headers=_h(api))).status == 200
    state, _ = await read_state(broker_gw.cfg)
    assert state["outbound/relay2"].settings is None
    assert type(state["outbound/relay2"].event).__name__ == "GatewayRemoved"
    assert (await api.get("/api/gateways/outbound/relay2")).status == 404


async def test_invalid_fields_come_back_by_path_and_nothing_is_written(api, broker_gw):
    bad = {"kind": "inbound", "name": "in1", "mode": "domain_forward", "primary_addresses": ["10.0.0.300"],
           "primary_port": 70000, "domain_verification": {"mode": "sideways"}}
    r = await api.post("/api/gateways", json=bad, headers=_h(api))
    fields = (await r.json())["fields"]
    assert r.status == 422
    assert {"primary_addresses", "primary_port", "domain_verification.mode"} <= set(fields), fields
    auth_half = {"kind": "outbound", "name": "half", "address": "h", "auth_username": "u"}
    r = await api.post("/api/gateways", json=auth_half, headers=_h(api))
    assert r.status == 422 and "go together" in (await r.json())["fields"][""]
    state, _ = await read_state(broker_gw.cfg)
    assert "inbound/in1" not in state and "outbound/half" not in state


async def test_a_sender_domain_that_is_not_a_domain_name_is_422_and_nothing_is_written(api, broker_gw):
    doc = {"kind": "outbound", "name": "junk", "address": "10.9.9.8", "mode": "specific_domains",
           "sender_domains": ["ok.test", "not a domain"]}
    r = await api.post("/api/gateways", json=doc, headers=_h(api))
    body = await r.json()
    assert r.status == 422 and "'not a domain' is not a domain name" in body["fields"]["sender_domains"], body
    state, _ = await read_state(broker_gw.cfg)
    assert "outbound/junk" not in state


async def test_inbound_domain_forward_with_a_smartermail_password_is_stored_sealed(api, broker_gw):
    doc = {"kind": "inbound", "name": "fwd1", "mode": "domain_forward", "primary_addresses": ["10.1.0.0/30"],
           "smtp_user_verification": True,
           "domain_verification": {"mode": "specified_domains", "domains": ["Example.COM"]},
           "smartermail": {"enabled": True, "url": "https://mail.example.com", "username": "sm",
                           "password": RELAY_PW, "user_verification": "web_service"},
           }
    r = await api.post("/api/gateways", json=doc, headers=_h(api))
    assert r.status == 201, await r.text()
    got = await r.json()
    assert got["domain_verification"]["domains"] == ["example.com"]
    assert got["smartermail"]["password"] == {"configured": True}
    state, _ = await read_state(broker_gw.cfg)
    assert RELAY_PW not in state["inbound/fwd1"].event.settings_json


async def test_verify_connection_before_save_reports_the_failed_step_and_saves_nothing(api, broker_gw):
    doc = {"kind": "outbound", "name": "unreachable", "address": "127.0.0.1", "port": free_port(),
           "verify_before_save": True}
    r = await api.post("/api/gateways", json=doc, headers=_h(api))
    out = await r.json()
    assert r.status == 422 and out["verify"]["ok"] is False and out["verify"]["step"] == "connect", out
    state, _ = await read_state(broker_gw.cfg)
    assert "outbound/unreachable" not in state
    r = await api.post("/api/gateways/verify", json=doc, headers=_h(api))
    assert r.status == 200 and (await r.json())["step"] == "connect"


async def test_trace_events_queue_and_quarantine_of_an_idle_gateway(api):
    assert (await api.get("/api/messages/no-such-id")).status == 404
    ev = await (await api.get("/api/events?since=1h&type=MessageDelivered")).json()
    assert ev["events"] == []
    assert (await api.get("/api/events?since=yesterday-ish")).status == 400
    assert (await (await api.get("/api/queue")).json())["rows"] == []
    assert (await (await api.get("/api/quarantine")).json())["messages"] == []
    r = await api.post("/api/quarantine/nope/release", headers=_h(api))
    assert r.status == 404
    await asyncio.sleep(0)


async def test_a_gateway_mail_config_cannot_store_is_refused_and_never_poisons_the_topic(api, broker_gw):
    """Regression: spam actions (a list of models) were once written as Python reprs that no stage could read."""
    doc = {"kind": "inbound", "name": "bmx1", "mode": "backup_mx", "primary_addresses": ["10.2.0.1"],
           "spam_actions": {"high": [{"action": "quarantine"}], "low": [{"action": "prefix_subject",
                                                                         "text": "[SPAM]"}]}}
    r = await api.post("/api/gateways", json=doc, headers=_h(api))
    assert r.status == 201, await r.text()  # valid: backup MX with quarantine and prefix_subject actions
    state, _ = await read_state(broker_gw.cfg)
    live = effective_config(broker_gw.cfg, state)  # raises if the topic holds an unreadable gateway
    stored = live.inbound_gateways[[g.name for g in live.inbound_gateways].index("bmx1")].spam_actions
    assert [a.action for a in stored.high] == ["quarantine"] and stored.low[0].text == "[SPAM]"


async def test_text_that_is_not_valid_unicode_is_refused_400_and_nothing_is_written(api, broker_gw):
    """Regression (found by the property test): a lone surrogate, legal as a JSON escape, reached the Avro encoder
    and answered 500."""
    body = ('{"kind": "outbound", "name": "odd", "address": "10.9.9.9", "mode": "specific_domains", '
            '"sender_domains": ["a\\ud800b.test"]}')
    r = await api.post("/api/gateways", data=body, headers={**_h(api), "Content-Type": "application/json"})
    assert r.status == 400 and "not valid Unicode" in (await r.json())["error"]
    state, _ = await read_state(broker_gw.cfg)
    assert "odd" not in [g.name for g in effective_config(broker_gw.cfg, state).outbound_gateways]


async def test_verify_before_save_with_a_password_from_an_unset_variable_is_422_not_500(api, broker_gw):
    """Regression (found by the property test): the verify step revealed the secret and failed with a 500."""
    doc = {"kind": "outbound", "name": "envpw", "address": "127.0.0.1", "port": 9, "verify_before_save": True,
           "auth_username": "u", "auth_password": {"env": "MAILGATE_TEST_UNSET_VARIABLE"}}
    r = await api.post("/api/gateways", json=doc, headers=_h(api))
    assert r.status == 422, await r.text()
    assert "MAILGATE_TEST_UNSET_VARIABLE is not set" in (await r.json())["fields"]["auth_password"]


async def _hold(cfg, mid: str, level: str = "high") -> None:
    """Put a message in quarantine as the processor's spam policy does (mail.quarantine + the audit copy)."""
    from mailgate.core import kafka, topics
    from mailgate.core.ids import now_ms
    from schemas import MessageQuarantined, MessageRouted, Route, encode
    now = now_ms()
    routed = MessageRouted(message_id=mid, occurred_at=now, node="t", direction="inbound",
                           route=Route(kind="primary", destination="primary", candidates=[], hosts=["127.0.0.1:25"]),
                           mail_from="spammer@spam.test", recipients=["bob@example.test"], received_at=now,
                           not_before=now, expires_at=now + 86_400_000, retry_tier=0, body=b"Subject: buy\r\n\r\nx")
    held = MessageQuarantined(message_id=mid, occurred_at=now, node="t", level=level, total_score=12.5,
                              headers="From: spammer@spam.test\r\nSubject: buy now\r\n", routed=encode(routed))
    p = kafka.producer(cfg, "test-admin")
    await p.start()
    try:
        for topic in (topics.QUARANTINE, topics.EVENTS):
            await p.send_and_wait(topic, key=mid.encode(), value=encode(held))
    finally:
        await p.stop()


async def test_quarantine_list_release_and_delete(api, broker_gw):
    await _hold(broker_gw.cfg, "QREL1")
    await _hold(broker_gw.cfg, "QDEL1")
    listed = (await (await api.get("/api/quarantine")).json())["messages"]
    by_id = {m["message_id"]: m for m in listed}
    assert by_id["QREL1"]["subject"] == "buy now" and by_id["QREL1"]["level"] == "high"
    assert (await api.post("/api/quarantine/QREL1/release")).status == 403  # no CSRF token
    r = await api.post("/api/quarantine/QREL1/release", headers=_h(api))
    assert r.status == 200 and (await r.json())["result"] == "released"
    assert (await api.delete("/api/quarantine/QDEL1", headers=_h(api))).status == 200
    left = {m["message_id"] for m in (await (await api.get("/api/quarantine")).json())["messages"]}
    assert not {"QREL1", "QDEL1"} & left
    trace = await (await api.get("/api/messages/QREL1")).json()
    released = [e for e in trace["events"] if e["type"] == "QuarantineReleased"]
    assert released and released[0]["operator"] == "root"
    deleted = (await (await api.get("/api/messages/QDEL1")).json())["events"]
    assert [e["operator"] for e in deleted if e["type"] == "MessageDiscarded"] == ["root"]
    assert (await api.post("/api/quarantine/QREL1/release", headers=_h(api))).status == 404


async def test_releasing_malware_needs_confirm_malware_and_is_audited(api, broker_gw):
    await _hold(broker_gw.cfg, "QVIR1", level="virus")
    refused = await api.post("/api/quarantine/QVIR1/release", headers=_h(api))
    assert refused.status == 409 and "confirm_malware=true" in (await refused.json())["error"]
    r = await api.post("/api/quarantine/QVIR1/release?confirm_malware=true", headers=_h(api))
    assert r.status == 200 and (await r.json())["result"] == "released"
    trace = await (await api.get("/api/messages/QVIR1")).json()
    released = [e for e in trace["events"] if e["type"] == "QuarantineReleased"]
    assert [(e["operator"], e["malware_confirmed"]) for e in released] == [("root", True)]
