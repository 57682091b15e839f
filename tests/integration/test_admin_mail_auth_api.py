"""The admin API's SMTP AUTH users and DKIM keys against a real broker: written to mail.config as the stages read
them, passwords and private keys write-only (only a hash, only sealed), errors as the OpenAPI description says."""
from __future__ import annotations

import json

import dkim
import pytest
from aiohttp.test_utils import TestClient, TestServer

from mailgate.core.config_events import effective_config, read_state
from mailgate.core.passwords import check_password
from mailgate.ops.admin.server import build_app
from tests.support.secrets import ADMIN_API_PASSWORD as PASSWORD
from tests.support.secrets import MANAGED_AUTH_NEW_PASSWORD as NEW_PW
from tests.support.secrets import MANAGED_AUTH_PASSWORD as USER_PW
from tests.integration.test_admin_api import broker_gw, secret_key  # noqa: F401 (its broker and key fixtures)


@pytest.fixture
async def api(broker_gw):
    client = TestClient(TestServer(build_app(broker_gw.cfg)))
    await client.start_server()
    r = await client.post("/api/login", json={"username": "root", "password": PASSWORD})
    assert r.status == 200
    client.headers = {"X-CSRF-Token": (await r.json())["csrf_token"]}
    yield client
    await client.close()


async def _topic(cfg) -> tuple[list, object]:
    """(the SettingsConfigured records' settings_json, the effective configuration) of mail.config now."""
    state, history = await read_state(cfg)
    return [e.settings_json for e in history if hasattr(e, "section")], effective_config(cfg, state)


async def test_auth_users_are_added_changed_and_removed_with_the_password_never_shown_or_stored(api, broker_gw):
    h = api.headers
    r = await api.post("/api/auth-users", json={"username": "relay2", "password": USER_PW,
                                                "allowed_senders": ["@sender.test"]}, headers=h)
    assert r.status == 201, await r.text()
    assert await r.json() == {"username": "relay2", "allowed_senders": ["@sender.test"],
                              "password": {"configured": True}}
    assert r.headers["X-Mailgate-Config-Version"]
    listed = await (await api.get("/api/auth-users")).json()
    assert USER_PW not in json.dumps(listed) and listed["users"][0]["username"] == "relay2"
    written, live = await _topic(broker_gw.cfg)
    assert all(USER_PW not in s for s in written)
    [user] = live.ingress.auth.users
    assert check_password(USER_PW, user.password_hash) and user.allowed_senders == ["@sender.test"]

    assert (await api.post("/api/auth-users", json={"username": "relay2", "password": "x"}, headers=h)).status == 409
    bad = await api.post("/api/auth-users", json={"username": "has space", "password": ""}, headers=h)
    assert bad.status == 422 and set((await bad.json())["fields"]) == {"username"}

    r = await api.put("/api/auth-users/relay2", json={"password": NEW_PW}, headers=h)
    assert r.status == 200 and NEW_PW not in await r.text()
    _, live = await _topic(broker_gw.cfg)
    [user] = live.ingress.auth.users
    assert check_password(NEW_PW, user.password_hash) and not check_password(USER_PW, user.password_hash)
    assert user.allowed_senders == ["@sender.test"]  # left out of the change: kept

    assert (await api.delete("/api/auth-users/relay2", headers=h)).status == 200
    assert (await api.delete("/api/auth-users/relay2", headers=h)).status == 404
    _, live = await _topic(broker_gw.cfg)
    assert live.ingress.auth.users == []


async def test_a_generated_dkim_key_is_stored_sealed_and_only_its_dns_record_is_shown(api, broker_gw):
    h = api.headers
    r = await api.post("/api/dkim-keys", json={"domain": "keys.test", "selector": "s2026", "bits": 1024}, headers=h)
    assert r.status == 201, await r.text()
    doc = await r.json()
    assert doc["record_name"] == "s2026._domainkey.keys.test" and doc["private_key"] == {"configured": True}
    assert doc["record"].startswith("v=DKIM1; k=rsa; p=")
    written, live = await _topic(broker_gw.cfg)
    [key] = live.dkim_signing.keys
    assert key.private_key.sealed is not None
    pem = key.private_key.reveal().encode()
    assert all(b"PRIVATE KEY" not in s.encode() for s in written)
    body_line = pem.decode().splitlines()[3]
    for path in ("/api/dkim-keys", "/api/dkim-keys/keys.test/s2026"):
        text = await (await api.get(path)).text()
        assert body_line not in text and key.private_key.sealed not in text and doc["record"] in text

    # The published record verifies what the stored key signs (what egress will do with it).
    message = b"From: a@keys.test\r\nSubject: x\r\n\r\nhi\r\n"
    signed = dkim.sign(message, b"s2026", b"keys.test", pem) + message
    assert dkim.verify(signed,
                       dnsfunc=lambda name, timeout=5: doc["record"].encode())

    again = await api.post("/api/dkim-keys", json={"domain": "keys.test", "selector": "s2027"}, headers=h)
    assert again.status == 409
    bad = await api.post("/api/dkim-keys", json={"domain": "nodot", "selector": "a b", "bits": 512}, headers=h)
    assert bad.status == 422 and set((await bad.json())["fields"]) == {"domain", "selector", "bits"}
    assert (await api.delete("/api/dkim-keys/keys.test/s2026", headers=h)).status == 200
    assert (await api.get("/api/dkim-keys/keys.test/s2026")).status == 404
    _, live = await _topic(broker_gw.cfg)
    assert live.dkim_signing.keys == []


async def test_without_a_secret_key_a_dkim_key_is_refused_not_stored_in_clear(api, broker_gw, monkeypatch):
    monkeypatch.delenv("MAILGATE_SECRET_KEY")
    r = await api.post("/api/dkim-keys", json={"domain": "nokey.test", "selector": "s1"}, headers=api.headers)
    assert r.status == 422 and "MAILGATE_SECRET_KEY" in (await r.json())["fields"][""]
    written, _ = await _topic(broker_gw.cfg)
    assert all("nokey.test" not in s for s in written)



async def test_an_ed25519_key_is_generated_and_its_record_verifies_an_ed25519_signature(api, broker_gw):
    from mailgate.mail.authres.dkim_keys import signing_key
    r = await api.post("/api/dkim-keys", json={"domain": "ed.keys.test", "selector": "ed1", "algorithm": "ed25519"},
                       headers=api.headers)
    assert r.status == 201, await r.text()
    record = (await r.json())["record"]
    assert record.startswith("v=DKIM1; k=ed25519; p=")
    _, live = await _topic(broker_gw.cfg)
    [key] = [k for k in live.dkim_signing.keys if k.domain == "ed.keys.test"]
    raw, algorithm = signing_key(key.private_key.reveal().encode())
    message = b"From: a@ed.keys.test\r\nSubject: x\r\n\r\nhi\r\n"
    signed = dkim.sign(message, b"ed1", b"ed.keys.test", raw, signature_algorithm=algorithm) + message
    assert algorithm == b"ed25519-sha256"
    assert dkim.verify(signed, dnsfunc=lambda name, timeout=5: record.encode())
    assert (await api.delete("/api/dkim-keys/ed.keys.test/ed1", headers=api.headers)).status == 200
