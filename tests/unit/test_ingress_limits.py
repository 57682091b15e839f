"""ingress.limits: per-client connection and message-rate counts with Postfix's meanings, bounded in memory."""
from __future__ import annotations

from ingress.limits import ClientLimits
from mailgate.core.config import parse_config


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limits(clock=None, **ingress) -> ClientLimits:
    return ClientLimits(parse_config({"ingress": ingress}).ingress, clock or Clock())


def test_postfix_defaults():
    ic = parse_config({}).ingress
    assert ic.client_connection_count_limit == 50  # smtpd_client_connection_count_limit
    assert ic.client_message_rate_limit == 0  # smtpd_client_message_rate_limit: no limit
    assert ic.client_rate_time_unit_s == 60  # anvil_rate_time_unit
    assert ic.max_messages_per_connection == 1000 and ic.max_session_s == 3600  # as docs/reliability.md says


def test_connection_count_is_per_client_and_freed_on_disconnect():
    lim = limits(client_connection_count_limit=2)
    assert lim.connect("10.0.0.1") and lim.connect("10.0.0.1")
    assert not lim.connect("10.0.0.1")
    assert lim.connect("10.0.0.2")
    lim.disconnect("10.0.0.1")
    assert lim.connect("10.0.0.1")


def test_message_rate_over_a_sliding_time_unit():
    clock = Clock()
    lim = limits(clock, client_message_rate_limit=2, client_rate_time_unit_s=60)
    assert lim.message("10.0.0.1") and lim.message("10.0.0.1")
    assert not lim.message("10.0.0.1")
    assert lim.message("10.0.0.2")
    clock.now += 60
    assert lim.message("10.0.0.1")


def test_relay_networks_are_exempt_by_default_like_mynetworks():
    lim = limits(client_connection_count_limit=1, client_message_rate_limit=1, relay_networks=["10.1.0.0/16"])
    assert all(lim.connect("10.1.2.3") for _ in range(5)) and all(lim.message("10.1.2.3") for _ in range(5))
    lim = limits(client_connection_count_limit=1, relay_networks=["10.1.0.0/16"], client_limit_exceptions=[])
    assert lim.connect("10.1.2.3") and not lim.connect("10.1.2.3")


def test_idle_clients_are_forgotten():
    clock = Clock()
    lim = limits(clock, client_message_rate_limit=5)
    for i in range(1000):
        lim.message(f"10.0.{i // 250}.{i % 250}")
        lim.connect(f"10.0.{i // 250}.{i % 250}")
        lim.disconnect(f"10.0.{i // 250}.{i % 250}")
    clock.now += 61
    lim.message("10.9.9.9")
    assert list(lim.messages) == ["10.9.9.9"] and not lim.connections
