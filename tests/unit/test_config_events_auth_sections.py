"""The auth_users and dkim_keys sections of mail.config: `config apply` writes them only when they change, a DKIM
key goes to the topic as a reference or sealed (never in clear), and what is written reads back as the same
configuration."""
from __future__ import annotations

import json

import pytest

from mailgate.core.config import ConfigError, parse_config
from mailgate.core.config_events import config_version, effective_config, state_entry
from mailgate.ops.settings.config_writer import diff
from mailgate.core.passwords import hash_password
from mailgate.core.secrets import new_key, unseal

USERS = [{"username": "relay2", "password_hash": hash_password("x", n=2 ** 4)}]


def _cfg(key: dict, users=USERS):
    return parse_config({"ingress": {"auth": {"users": users}},
                         "dkim_signing": {"keys": [{"domain": "a.test", "selector": "s", "private_key": key}]}})


def _state(events) -> dict:
    return {f"settings/{e.section}": state_entry(e) for e in events}


def test_an_unchanged_file_writes_nothing_and_a_written_section_reads_back_the_same():
    running = _cfg({"file": "/etc/k.pem"})
    assert diff({}, running, "op", running=running) == []
    changed = _cfg({"file": "/etc/k2.pem"}, users=[])
    events = diff({}, changed, "op", running=running)
    assert sorted(e.section for e in events) == ["auth_users", "dkim_keys"]
    back = effective_config(running, _state(events))
    assert config_version(back) == config_version(changed)
    assert diff(_state(events), back, "op") == []  # applied again: nothing more to write


def test_an_inline_key_is_sealed_in_the_topic_or_refused(monkeypatch):
    inline = _cfg({"value": "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----"})
    monkeypatch.delenv("MAILGATE_SECRET_KEY", raising=False)
    with pytest.raises(ConfigError, match="sealed"):
        diff({}, inline, "op", running=_cfg({"file": "/x"}))
    monkeypatch.setenv("MAILGATE_SECRET_KEY", new_key())
    [event] = [e for e in diff({}, inline, "op", running=_cfg({"file": "/x"})) if e.section == "dkim_keys"]
    assert "BEGIN" not in event.settings_json
    stored = json.loads(event.settings_json)[0]["private_key"]
    assert unseal(stored["sealed"]).startswith("-----BEGIN PRIVATE KEY-----")
