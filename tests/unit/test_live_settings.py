"""Live configuration as pure logic: settings sections as events, the configuration version, the refusal of settings
that cannot change live, directory caches across versions, and one version per message in the processor."""
from __future__ import annotations

import asyncio

from mailgate.core.config import parse_config
from mailgate.core.config_events import GatewayState, config_version, effective_config, state_entry, state_key
from mailgate.ops.settings.config_writer import diff, non_live_changes
from mailgate.mail.directory import CachedDirectory
from mailgate.mail.directory.build import rebuild_directories
from processors.pipeline import Pipeline
from schemas import MessageReceived, SettingsConfigured


def cfg(**over):
    data = {"node_name": "n1", "spam": {"high_threshold": 10.0},
            "inbound_gateways": [{"name": "gw", "mode": "domain_forward", "primary_addresses": ["127.0.0.1"],
                                  "domain_verification": {"domains": ["example.test"]}}]}
    data.update(over)
    return parse_config(data)


def state_of(events) -> dict[str, GatewayState]:
    return {state_key(e): state_entry(e) for e in events}


def test_a_changed_spam_section_becomes_an_event_and_replaces_the_files_section():
    running, desired = cfg(), cfg(spam={"high_threshold": 20.0})
    events = diff({}, desired, "dana", running=running)
    settings = [e for e in events if isinstance(e, SettingsConfigured)]
    assert [e.section for e in settings] == ["spam"]
    live = effective_config(running, state_of(settings))
    assert live.spam.high_threshold == 20.0
    assert live.inbound_gateways == running.inbound_gateways  # no gateway in the topic: the file's stay


def test_an_unchanged_section_writes_nothing():
    assert not [e for e in diff({}, cfg(), "dana", running=cfg()) if isinstance(e, SettingsConfigured)]


def test_relay_networks_are_live_and_their_change_changes_the_version():
    running = cfg()
    desired = cfg(ingress={"relay_networks": ["10.0.0.0/8"]})
    events = [e for e in diff({}, desired, "dana", running=running) if isinstance(e, SettingsConfigured)]
    assert [e.section for e in events] == ["relay_networks"]
    live = effective_config(running, state_of(events))
    assert live.ingress.relay_networks == ["10.0.0.0/8"]
    assert config_version(live) != config_version(running)


def test_the_version_is_the_same_on_replicas_with_other_node_names_and_ports():
    a = cfg()
    b = cfg(node_name="n2", ingress={"listen_port": 2600}, metrics={"ingress_port": 0})
    assert config_version(a) == config_version(b)


def test_settings_that_cannot_change_live_are_named():
    running = cfg()
    desired = cfg(ingress={"listen_port": 2600, "relay_networks": ["10.0.0.0/8"]},
                  kafka={"bootstrap_servers": ["kafka:9092"]}, spam={"high_threshold": 30.0})
    assert non_live_changes(running, desired) == ["ingress.listen_port", "kafka.bootstrap_servers"]
    assert non_live_changes(running, cfg(node_name="other")) == []


class _Directory:
    async def exists(self, address: str) -> bool:
        return True

    async def aclose(self) -> None:
        pass


def test_an_unchanged_gateway_keeps_its_directory_and_a_changed_one_gets_a_new_one():
    gws = cfg(inbound_gateways=[
        {"name": "a", "mode": "domain_forward", "primary_addresses": ["127.0.0.1"], "smtp_user_verification": True},
        {"name": "b", "mode": "domain_forward", "primary_addresses": ["127.0.0.1"], "smtp_user_verification": True},
    ]).inbound_gateways
    old = {"a": CachedDirectory(_Directory()), "b": CachedDirectory(_Directory())}
    changed = [gws[0], gws[1].model_copy(update={"primary_port": 2526})]
    new, retired = rebuild_directories(old, list(gws), changed)
    assert new["a"] is old["a"] and new["b"] is not old["b"] and retired == [old["b"]]
    new, retired = rebuild_directories(new, changed, [gws[0]])
    assert set(new) == {"a"} and len(retired) == 1


def _received(mid: str) -> MessageReceived:
    return MessageReceived(
        message_id=mid, occurred_at=0, node="t", direction="inbound", inbound_gateway="gw", client_address="1.2.3.4",
        client_helo="h", client_auth=None, tls=None, mail_from="a@sender.test", rcpt_to=["bob@example.test"],
        size_bytes=10, verified_recipients=[], body_sha256="", body=b"Subject: x\r\n\r\nhi\r\n")


async def test_a_message_in_flight_is_routed_by_the_version_it_started_with():
    pipeline = Pipeline(cfg(), "n1")
    started = asyncio.Event()
    release = asyncio.Event()
    original = pipeline.steps.verify

    async def slow_verify(received):
        started.set()
        await release.wait()
        return await original(received)

    object.__setattr__(pipeline.steps, "verify", slow_verify)
    first = pipeline.steps.version
    task = asyncio.create_task(pipeline.handle(_received("m1")))
    await started.wait()
    changed = cfg(inbound_gateways=[{"name": "gw", "mode": "domain_forward", "primary_addresses": ["10.0.0.9"],
                                     "domain_verification": {"domains": ["example.test"]}}])
    pipeline.reconfigure(changed)
    assert pipeline.steps.version == config_version(changed) != first
    release.set()
    routed = [o.record for o in await task if type(o.record).__name__ == "MessageRouted"][0]
    assert routed.config_version == first and routed.route.hosts == ["127.0.0.1:25"]
    after = [o.record for o in await pipeline.handle(_received("m2")) if type(o.record).__name__ == "MessageRouted"]
    assert after[0].config_version == config_version(changed) and after[0].route.hosts == ["10.0.0.9:25"]
    await pipeline.aclose()


def test_the_antivirus_section_is_live_and_a_gateways_virus_actions_change_with_it():
    running = cfg()
    desired = cfg(antivirus={"enabled": True, "scanners": [{"host": "10.0.0.5", "port": 3310}],
                             "when_unavailable": "accept"})
    events = [e for e in diff({}, desired, "dana", running=running) if isinstance(e, SettingsConfigured)]
    assert [e.section for e in events] == ["antivirus"]
    live = effective_config(running, state_of(events))
    assert live.antivirus.enabled and live.antivirus.scanners[0].name == "10.0.0.5:3310"
    assert config_version(live) != config_version(running)
    assert non_live_changes(running, desired) == []
    tagged = cfg(inbound_gateways=[{"name": "gw", "mode": "domain_forward", "primary_addresses": ["127.0.0.1"],
                                    "virus": {"infected": "deliver_and_tag", "scan_at_data": True}}])
    assert config_version(tagged) != config_version(running) and non_live_changes(running, tagged) == []
