"""processors.gateway_selection: smooth weighted round-robin, per-domain routes, disabled gateways skipped."""
from collections import Counter

from mailgate.core.config import OutboundGateway
from processors.gateway_selection import GatewaySelector


def gw(name, **kw):
    return OutboundGateway(name=name, address=f"{name}.example.net", **kw)


def first_picks(selector, n, domain="example.com"):
    return Counter(selector.candidates(domain)[0] for _ in range(n))


def test_equal_weights_split_exactly():
    s = GatewaySelector([gw("a"), gw("b"), gw("c")])
    assert first_picks(s, 300) == {"a": 100, "b": 100, "c": 100}


def test_equal_weights_rotate_and_keep_the_pool_as_failover():
    s = GatewaySelector([gw("a"), gw("b"), gw("c")])
    assert [s.candidates("example.com") for _ in range(4)] == [
        ["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"], ["a", "b", "c"]]


def test_weights_one_to_two():
    s = GatewaySelector([gw("a", weight=1), gw("b", weight=2)])
    assert first_picks(s, 300) == {"a": 100, "b": 200}


def test_smooth_interleaving():
    s = GatewaySelector([gw("a", weight=5), gw("b", weight=1), gw("c", weight=1)])
    order = [s.candidates("x.org")[0] for _ in range(7)]
    assert order == ["a", "a", "b", "a", "c", "a", "a"]  # nginx's documented sequence for 5:1:1


def test_specific_domain_first_then_pool():
    s = GatewaySelector([gw("a"), gw("b"), gw("special", mode="specific_domains", sender_domains=["Example.COM"]),
                         gw("special2", mode="specific_domains", sender_domains=["example.com", "other.org"])])
    assert s.candidates("example.com") == ["special", "special2", "a", "b"]
    assert s.candidates("EXAMPLE.com.") == ["special", "special2", "a", "b"]
    assert s.candidates("other.org") == ["special2", "a", "b"]


def test_specific_domain_is_exact_match_only():
    s = GatewaySelector([gw("a"), gw("special", mode="specific_domains", sender_domains=["example.com"])])
    assert s.candidates("mail.example.com") == ["a"]
    assert s.candidates("notexample.com") == ["a"]


def test_specific_domain_does_not_consume_the_round_robin_turn():
    s = GatewaySelector([gw("a"), gw("b"), gw("special", mode="specific_domains", sender_domains=["example.com"])])
    assert s.candidates("x.org")[0] == "a"
    s.candidates("example.com")
    assert s.candidates("x.org")[0] == "b"


def test_disabled_gateways_never_appear():
    s = GatewaySelector([gw("a"), gw("off", status="disabled"), gw("b"),
                         gw("soff", mode="specific_domains", sender_domains=["example.com"], status="disabled")])
    seen = {name for _ in range(10) for domain in ("example.com", "x.org") for name in s.candidates(domain)}
    assert seen == {"a", "b"}
    assert first_picks(s, 100, "x.org") == {"a": 50, "b": 50}


def test_none_enabled_gives_empty_list():
    assert GatewaySelector([]).candidates("example.com") == []
    assert GatewaySelector([gw("a", status="disabled")]).candidates("example.com") == []


def test_specific_only_without_pool():
    s = GatewaySelector([gw("special", mode="specific_domains", sender_domains=["example.com"])])
    assert s.candidates("example.com") == ["special"]
    assert s.candidates("x.org") == []


def test_returned_list_is_the_callers():
    s = GatewaySelector([gw("a"), gw("special", mode="specific_domains", sender_domains=["example.com"])])
    s.candidates("example.com").append("junk")
    assert s.candidates("example.com") == ["special", "a"]


def test_reconfiguring_routing_with_the_same_gateways_keeps_the_round_robin_position():
    """Regression: the processor re-reads its configuration from mail.config at start; that reset the round-robin
    position mid-stream and sent 6/4 instead of 5/5."""
    from mailgate.core.config import parse_config
    from processors.routing import RoutingPolicy
    cfg = parse_config({"outbound_gateways": [{"name": "a", "address": "h1"}, {"name": "b", "address": "h2"}]})
    policy = RoutingPolicy(cfg, "n")
    first = [policy.selector.candidates("x.test")[0] for _ in range(3)]
    policy.reconfigure(parse_config(cfg.model_dump()))
    after = [policy.selector.candidates("x.test")[0] for _ in range(3)]
    assert first + after == ["a", "b", "a", "b", "a", "b"]
