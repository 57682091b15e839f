"""The admin API's queue control against a real broker (no egress running): commands are written as events with the
logged-in administrator as operator, a filter only counts until confirmed, and a reason is required."""
from __future__ import annotations

from mailgate.core.ids import now_ms
from mailgate.ops.audit.reader import read_events
from mailgate.ops.queue.commands import control_state
from tests.integration.test_admin_api import _h, api, broker_gw, secret_key  # noqa: F401 (fixtures)


async def test_a_message_command_is_an_audited_event_and_says_what_it_did(api, broker_gw):
    r = await api.post("/api/queue/commands", json={"command": "hold", "filter": {"destination": "relay"},
                                                    "reason": "count first"}, headers=_h(api))
    assert r.status == 200 and (await r.json()) == {"command": "hold", "matched": 0, "applied": False}
    r = await api.post("/api/queue/commands", json={"command": "hold", "message_ids": ["M1", "M2"],
                                                    "reason": "customer asked", "timeout_s": 5}, headers=_h(api))
    done = await r.json()
    assert r.status == 200 and done["count"] == 2 and done["applied_by"] == [] and done["not_applied_by"] == []
    issued = [e for e in await read_events(broker_gw.cfg, "M1") if type(e).__name__ == "QueueCommandIssued"]
    assert [(e.command, e.operator, e.reason, e.command_id) for e in issued] == [
        ("hold", "root", "customer asked", done["command_id"])]
    assert (await control_state(broker_gw.cfg)).order("M2").command == "hold"


async def test_a_command_without_a_reason_or_with_an_unknown_name_is_refused(api):
    r = await api.post("/api/queue/commands", json={"command": "delete", "message_ids": ["M3"]}, headers=_h(api))
    assert r.status == 422 and "reason" in (await r.json())["error"]
    r = await api.post("/api/queue/commands", json={"command": "purge", "message_ids": ["M3"], "reason": "x"},
                       headers=_h(api))
    assert r.status == 422
    assert (await api.post("/api/queue/commands", json={"command": "hold", "message_ids": ["M3"],
                                                        "reason": "x"})).status == 403  # no CSRF token


async def test_an_empty_or_unknown_filter_is_refused_not_counted(api):
    """Regression (found by the OpenAPI property test): `{"destination": ""}` counted 0 matches and answered 200."""
    for flt in ({"destination": ""}, {"domain": "", "tier": "20s"}, {}, {"sender": "a@b.test"}):
        r = await api.post("/api/queue/commands", json={"command": "release", "filter": flt, "reason": "x"},
                           headers=_h(api))
        assert r.status == 422 and (await r.json())["fields"] == {"filter": "object"}, flt


async def test_suspend_lists_the_destination_until_resumed(api):
    until = now_ms() + 3_600_000
    r = await api.post("/api/destinations/outbound/relay/suspend", json={"reason": "maintenance", "until": until,
                                                                         "timeout_s": 5}, headers=_h(api))
    assert r.status == 200 and (await r.json())["count"] == 1
    listed = (await (await api.get("/api/destinations")).json())["suspended"]
    assert [(s["kind"], s["name"], s["until"], s["operator"]) for s in listed] == [
        ("outbound", "relay", until, "root")]
    r = await api.post("/api/destinations/outbound/relay/resume", json={"reason": "done", "timeout_s": 5},
                       headers=_h(api))
    assert r.status == 200
    assert (await (await api.get("/api/destinations")).json())["suspended"] == []
