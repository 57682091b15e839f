"""egress.targets: a route's candidates → the Targets to try, skipping disabled and circuit-broken gateways."""
from __future__ import annotations

from egress.health import GatewayHealth
from egress.targets import TargetResolver, gateway_target
from egress.gateway_probe import VerifyResult
from mailgate.core.config import parse_config
from schemas import Route

CFG = parse_config({"outbound_gateways": [
    {"name": "a", "address": "10.0.0.1", "port": 25},
    {"name": "b", "address": "10.0.0.2", "port": 587, "encryption": "tls", "auth_username": "u",
     "auth_password": "pw", "ca_file": "/etc/ca.pem"},
    {"name": "off", "address": "10.0.0.3", "status": "disabled"}]})


def gw_route(*names: str) -> Route:
    return Route(kind="gateway", destination=names[0], candidates=list(names), hosts=[])


def test_candidates_in_order_with_their_encryption_and_auth():
    ts = TargetResolver(CFG, GatewayHealth()).targets(gw_route("b", "a"))
    assert [(t.gateway, t.host, t.port, t.encryption) for t in ts] == [("b", "10.0.0.2", 587, "tls"),
                                                                       ("a", "10.0.0.1", 25, "none")]
    assert ts[0].auth_username == "u" and ts[0].auth_password.reveal() == "pw" and ts[0].ca_file == "/etc/ca.pem"
    assert "pw" not in repr(ts[0])


def test_disabled_unknown_and_down_gateways_are_skipped():
    health = GatewayHealth(failure_threshold=1)
    health.record_failure("a")
    ts = TargetResolver(CFG, health).targets(gw_route("off", "gone", "a", "b"))
    assert [t.gateway for t in ts] == ["b"]


def test_primary_route_tries_each_address_and_all_when_all_are_down():
    health = GatewayHealth(failure_threshold=1)
    resolver = TargetResolver(CFG, health)
    route = Route(kind="primary", destination="home", candidates=[], hosts=["127.0.0.1:2525", "[::1]:25"])
    assert [t.label for t in resolver.targets(route)] == ["127.0.0.1:2525", "::1:25"]
    health.record_failure("127.0.0.1:2525")
    assert [t.label for t in resolver.targets(route)] == ["::1:25"]
    health.record_failure("::1:25")
    assert len(resolver.targets(route)) == 2
    assert resolver.health_key(resolver.targets(route)[0]) == "127.0.0.1:2525"
    assert resolver.health_key(gateway_target(CFG.outbound_gateways[0])) == "a"


def test_verify_result_lines():
    ok = VerifyResult(gateway="b", ok=True, step=None, message="connected to 10.0.0.2:587, tls TLSv1.3")
    bad = VerifyResult(gateway="b", ok=False, step="auth", message="535 5.7.8 nope", error="AuthFailed")
    assert ok.line() == "b: ok (connected to 10.0.0.2:587, tls TLSv1.3)"
    assert bad.line() == "b: FAILED at auth [AuthFailed]: 535 5.7.8 nope"
