"""Configuration as events: diffs, secrets stored only sealed or by reference, and the effective configuration."""
from __future__ import annotations

import json

import pytest

from mailgate.core.config import ConfigError, parse_config
from mailgate.core.config_events import GatewayState, effective_config
from mailgate.ops.settings.config_writer import diff
from mailgate.core.secrets import new_key

BASE = {"outbound_gateways": [
    {"name": "a", "address": "10.0.0.1", "auth_username": "u", "auth_password": "s3cret-pw"},
    {"name": "b", "address": "10.0.0.2"}]}


def _state(events) -> dict:
    return {f"{e.kind}/{e.name}": GatewayState(e.kind, e.name, json.loads(e.settings_json)
                                               if type(e).__name__ == "GatewayConfigured" else None, e)
            for e in events}


def test_inline_password_is_stored_sealed_never_in_clear(monkeypatch):
    monkeypatch.setenv("MAILGATE_SECRET_KEY", new_key())
    events = diff({}, parse_config(BASE), operator="alice")
    assert [e.name for e in events] == ["a", "b"] and all(e.operator == "alice" for e in events)
    stored = events[0].settings_json
    assert "s3cret-pw" not in stored and '"sealed": "v1:' in stored
    live = effective_config(parse_config({}), _state(events))
    assert live.outbound_gateways[0].auth_password.reveal() == "s3cret-pw"


def test_inline_password_without_a_key_is_refused_with_its_path(monkeypatch):
    monkeypatch.delenv("MAILGATE_SECRET_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"outbound_gateways\.0\.auth_password"):
        diff({}, parse_config(BASE))


def test_password_by_env_reference_is_stored_as_the_reference(monkeypatch):
    monkeypatch.delenv("MAILGATE_SECRET_KEY", raising=False)
    cfg = parse_config({"outbound_gateways": [{"name": "a", "address": "h", "auth_username": "u",
                                               "auth_password": {"env": "RELAY_PW"}}]})
    assert '"auth_password": {"env": "RELAY_PW"}' in diff({}, cfg)[0].settings_json


def test_unchanged_gateways_produce_no_events_and_a_disable_produces_one(monkeypatch):
    monkeypatch.setenv("MAILGATE_SECRET_KEY", new_key())
    state = _state(diff({}, parse_config(BASE)))
    assert diff(state, parse_config(BASE)) == []
    changed = json.loads(json.dumps(BASE))
    changed["outbound_gateways"][1]["status"] = "disabled"
    events = diff(state, parse_config(changed))
    assert [(type(e).__name__, e.name) for e in events] == [("GatewayConfigured", "b")]


def test_a_gateway_missing_from_the_file_is_removed(monkeypatch):
    monkeypatch.setenv("MAILGATE_SECRET_KEY", new_key())
    state = _state(diff({}, parse_config(BASE)))
    events = diff(state, parse_config({"outbound_gateways": [BASE["outbound_gateways"][0]]}))
    assert [(type(e).__name__, e.name) for e in events] == [("GatewayRemoved", "b")]
    live = effective_config(parse_config({}), {**state, **_state(events)})
    assert [g.name for g in live.outbound_gateways] == ["a"]


def test_inbound_gateway_with_spam_actions_round_trips_through_the_topic(monkeypatch):
    monkeypatch.setenv("MAILGATE_SECRET_KEY", new_key())
    cfg = parse_config({"inbound_gateways": [{
        "name": "in", "mode": "domain_forward", "primary_addresses": ["10.0.0.1-10.0.0.2"],
        "domain_verification": {"domains": ["example.test"]},
        "spam_actions": {"high": [{"action": "prefix_subject", "text": "[SPAM] "},
                                  {"action": "add_header", "header_name": "X-Spam-Flag", "header_value": "YES"}]},
        "smartermail": {"enabled": True, "url": "http://sm", "username": "u", "password": "sm-pass",
                        "user_verification": "web_service"}}]})
    events = diff({}, cfg)
    assert "sm-pass" not in events[0].settings_json
    live = effective_config(parse_config({}), _state(events))
    assert live.inbound_gateways[0].spam_actions == cfg.inbound_gateways[0].spam_actions
    assert live.inbound_gateways[0].smartermail.password.reveal() == "sm-pass"
    assert diff(_state(events), cfg) == []


def test_a_stored_gateway_an_earlier_release_wrote_with_a_junk_sender_domain_still_applies(caplog):
    """Earlier releases stored sender_domains unchecked; reading them back drops the junk entry (it never matched
    any mail) with a log line, instead of refusing every gateway in mail.config."""
    old = {"name": "g", "address": "10.0.0.9", "mode": "specific_domains", "sender_domains": ["ok.test", "not a domain"]}
    state = {"outbound/g": GatewayState("outbound", "g", old, None)}
    live = effective_config(parse_config({}), state)
    assert live.outbound_gateways[0].sender_domains == ["ok.test"]
    assert "ignored 'not a domain'" in caplog.text
