"""The admin API's tracking routes over real HTTP against a real SQLite store: search with paging, a trace in words
(no Python reprs), dashboard series, and 503 when there is no store."""
from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer

from mailgate.core.config import parse_config
from mailgate.core.ids import now_ms
from mailgate.ops.admin.auth import hash_password
from mailgate.ops.admin.server import build_app
from mailgate.ops.tracking.projector import project
from mailgate.ops.tracking.store import Store
from schemas import encode
from tests.support.secrets import ADMIN_API_PASSWORD as PASSWORD
from tests.unit.test_tracking_projector import history

HASH = hash_password(PASSWORD, n=2 ** 12)


async def client_for(tmp_path, with_store: bool) -> TestClient:
    path = tmp_path / "t.sqlite3"
    if with_store:
        store = Store.sqlite(path)
        store.migrate()
        base = now_ms() - 30 * 60_000
        events = [type(e)(**{**{f: getattr(e, f) for f in e.__dataclass_fields__},
                             "occurred_at": base + e.occurred_at - history()[0].occurred_at}) for e in history()]
        project(store, [(0, i, encode(e)) for i, e in enumerate(events)])
        store.close()
    cfg = parse_config({"admin": {"username": "root", "password_hash": HASH},
                        "tracking": {"sqlite_path": str(path)}})
    client = TestClient(TestServer(build_app(cfg)))
    await client.start_server()
    r = await client.post("/api/login", json={"username": "root", "password": PASSWORD})
    assert r.status == 200
    return client


@pytest.fixture
async def api(tmp_path):
    client = await client_for(tmp_path, True)
    yield client
    await client.close()


async def test_search_pages_through_matches_newest_first(api):
    r = await api.get("/api/tracking/messages", params={"domain": "b.test", "limit": "2"})
    page1 = await r.json()
    assert page1["total"] == 5 and [m["message_id"] for m in page1["messages"]] == ["m5", "m4"]
    page3 = await (await api.get("/api/tracking/messages", params={"domain": "b.test", "limit": "2",
                                                                    "offset": "4"})).json()
    assert [m["message_id"] for m in page3["messages"]] == ["m1"]
    bad = await api.get("/api/tracking/messages", params={"state": "lost"})
    assert bad.status == 400
    for name in ("since", "until", "state"):  # given empty: refused as the OpenAPI description says, not ignored
        empty = await api.get("/api/tracking/messages", params={name: ""})
        assert empty.status == 400 and "is empty" in (await empty.json())["error"], name


async def test_trace_reads_as_sentences(api):
    d = await (await api.get("/api/tracking/messages/m1")).json()
    titles = [e["title"] for e in d["events"]]
    assert titles[0] == "Accepted inbound through gateway in1"
    assert titles[1] == "Spam check: spam level low, score 3.5"
    assert titles[2] == "Routed to the primary server of inbound gateway in1"
    assert "bob@b.test: 250 said" in d["events"][3]["details"]
    assert d["message"]["spam_scores"] == [{"scorer": "spamd", "score": 3.5, "weight": 1.0, "error": None}]
    text = repr(d["events"])
    assert "{'kind'" not in text and "Route(" not in text
    assert (await api.get("/api/tracking/messages/nope")).status == 404


async def test_dashboard_series(api):
    d = await (await api.get("/api/tracking/dashboard", params={"minutes": "60"})).json()
    assert sum(d["accepted"]) == 5 and sum(d["delivered"]) == 1 and sum(d["bounced"]) == 1
    assert sum(d["deferred"]) == 1 and len(d["minutes"]) == 60
    assert d["spam_levels"]["low"] == 1 and d["delivered_count"] == 1
    assert {q["destination"]: q["messages"] for q in d["queue"]} == {"in1": 2}


async def test_the_older_trace_and_queue_tabs_read_the_store_in_their_old_shapes(api):
    d = await (await api.get("/api/tracking/trace/m1")).json()
    assert d["source"] == "store" and [e["type"] for e in d["events"]][:3] == [
        "MessageReceived", "MessageClassified", "MessageRouted"]
    assert all(e["summary"] and "body" not in e for e in d["events"])  # as /api/messages/{id}: no bodies
    assert {r["recipient"]: r["state"] for r in d["recipient_states"]} == {"bob@b.test": "delivered",
                                                                        "carol@b.test": "deferred"}
    assert (await api.get("/api/tracking/trace/nope")).status == 404
    q = await (await api.get("/api/tracking/queue")).json()
    assert q["source"] == "store" and q["messages"] == 2 and {r["destination"] for r in q["rows"]} == {"in1"}


async def test_no_store_is_a_503(tmp_path):
    client = await client_for(tmp_path, False)
    try:
        r = await client.get("/api/tracking/messages")
        assert r.status == 503 and "no tracking store" in (await r.json())["error"]
        for path in ("/api/tracking/trace/m1", "/api/tracking/queue"):  # the page then scans mail.events
            assert (await client.get(path)).status == 503
    finally:
        await client.close()
