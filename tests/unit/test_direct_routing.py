"""Routing of direct delivery (issue #36): which outbound mail goes direct, the split by recipient domain, and that
inbound mail never goes direct. Pure policy: a config and a MessageReceived in, Outputs out."""
from __future__ import annotations

from egress.mx import settings_of
from mailgate.core import topics
from mailgate.core.config import parse_config
from processors.routing import RoutingPolicy, split_by_domain
from schemas import MessageReceived

GATEWAYS = [{"name": "rr", "address": "10.0.0.1"},
            {"name": "vipgw", "address": "10.0.0.2", "mode": "specific_domains", "sender_domains": ["vip.test"]}]


def received(rcpts, sender="a@sender.test", direction="outbound", gateway=None) -> MessageReceived:
    return MessageReceived(message_id="M1", occurred_at=1, node="t", direction=direction, inbound_gateway=gateway,
                           client_address="10.0.0.9", client_helo="c", client_auth=None, tls=None,
                           mail_from=sender, rcpt_to=rcpts, size_bytes=1, body_sha256="", body=b"x\r\n")


def policy(direct: dict, gateways: list | None = None, **extra) -> RoutingPolicy:
    return RoutingPolicy(parse_config({"delivery": {"direct": direct, "partitions_per_destination": 1},
                                       "outbound_gateways": gateways or [], **extra}), "t")


def test_a_message_to_three_domains_becomes_one_routed_record_per_domain_keyed_by_it():
    out = policy({"enabled": True})(received(["x@one.test", "y@Two.test", "z@one.test", "w@three.test"]))
    outbound = [o for o in out if o.topic == topics.OUTBOUND]
    assert [(o.key, o.record.route.kind, o.record.route.destination, o.record.recipients) for o in outbound] == [
        ("one.test", "direct", "one.test", ["x@one.test", "z@one.test"]),
        ("two.test", "direct", "two.test", ["y@Two.test"]),
        ("three.test", "direct", "three.test", ["w@three.test"])]
    audit = [o.record for o in out if o.topic == topics.EVENTS]  # the audit copies, without the body
    assert [(a.route, a.recipients, a.body) for a in audit] == [(o.record.route, o.record.recipients, None)
                                                                for o in outbound]
    assert {o.record.body for o in outbound} == {b"x\r\n"}


def test_without_enabled_or_with_a_round_robin_gateway_mail_goes_to_the_gateways():
    assert policy({})(received(["x@one.test"]))[0].record.route.kind == "gateway"
    assert policy({"enabled": True}, GATEWAYS)(received(["x@one.test"]))[0].record.route.candidates == ["rr"]


def test_sender_domains_go_direct_beside_gateways_but_a_specific_gateway_wins():
    p = policy({"sender_domains": ["direct.test", "vip.test"]}, GATEWAYS)
    assert p(received(["x@one.test"], sender="a@direct.test"))[0].record.route.kind == "direct"
    assert p(received(["x@one.test"], sender="a@vip.test"))[0].record.route.candidates == ["vipgw", "rr"]


def test_inbound_mail_never_goes_direct():
    p = policy({"enabled": True}, inbound_gateways=[{"name": "home", "mode": "domain_forward",
                                                     "primary_addresses": ["10.0.0.5"],
                                                     "domain_verification": {"domains": ["ours.test"]}}])
    for gw in ("home", None):  # also when its gateway is gone: an unrouted primary route, not the Internet
        route = p(received(["x@ours.test", "y@other.test"], direction="inbound", gateway=gw))[0].record.route
        assert route.kind == "primary"


def test_a_route_that_is_not_direct_is_not_split():
    routed = policy({})(received(["x@one.test", "y@two.test"]))[0].record
    assert split_by_domain(routed) == [routed]


def test_the_loop_guard_knows_every_listener_and_the_exceptions():
    cfg = parse_config({"ingress": {"listen_host": "0.0.0.0", "listen_port": 25,
                                    "listeners": [{"name": "sub", "host": "::1", "port": 587, "tls_mode": "none"}]},
                        "delivery": {"direct": {"loop_guard_exceptions": ["127.0.0.9:25"], "prohibited_hosts": []}}})
    s = settings_of(cfg)
    assert s.own_addresses == frozenset({("0.0.0.0", 25), ("::1", 587)})
    assert s.loop_exceptions == frozenset({("127.0.0.9", 25)}) and s.prohibited_hosts == ()
