"""delivery.direct (issue #36): off by default, loopback prohibited by default, every bad value refused with its key
path, and the routing choice it makes (a specific_domains gateway wins, then sender_domains, then `enabled` when no
gateway applies)."""
from __future__ import annotations

import pytest

from mailgate.core.config import ConfigError, parse_config


def direct(**kw):
    return parse_config({"delivery": {"direct": kw}}).delivery.direct


def test_direct_delivery_is_off_by_default_and_refuses_loopback():
    d = direct()
    assert d.enabled is False and d.sender_domains == [] and d.port == 25 and d.max_mx_hosts == 5
    assert d.prohibited_hosts == ["127.0.0.0/8", "::1/128"] and d.lookup_strategy == "ipv4_then_ipv6"
    assert not d.goes_direct("any.test", has_gateway=False, specific_gateway=False)


@pytest.mark.parametrize("bad, path", [
    ({"enable": True}, "delivery.direct.enable: unknown key"),
    ({"prohibited_hosts": ["10.0.0.0/33"]}, "delivery.direct.prohibited_hosts"),
    ({"loop_guard_exceptions": ["127.0.0.1"]}, "delivery.direct.loop_guard_exceptions"),
    ({"dns": {"nameservers": ["ns.example"]}}, "delivery.direct.dns.nameservers"),
    ({"lookup_strategy": "both"}, "delivery.direct.lookup_strategy"),
    ({"max_mx_hosts": 0}, "delivery.direct.max_mx_hosts"),
    ({"sender_domains": ["@x.test"]}, "delivery.direct.sender_domains"),
])
def test_a_bad_value_is_refused_with_its_path(bad, path):
    with pytest.raises(ConfigError, match=path.replace(".", r"\.")):
        direct(**bad)


def test_values_are_kept_as_compared():
    d = direct(prohibited_hosts=["10.1.2.3/8"], loop_guard_exceptions=["[::1]:25", "127.0.0.1:2525"],
               sender_domains=["Direct.TEST."])
    assert d.prohibited_hosts == ["10.0.0.0/8"] and d.loop_guard_exceptions == ["[::1]:25", "127.0.0.1:2525"]
    assert d.sender_domains == ["direct.test"]


def test_a_specific_gateway_wins_then_sender_domains_then_enabled_without_a_gateway():
    d = direct(enabled=True, sender_domains=["vip.test"])
    assert not d.goes_direct("vip.test", has_gateway=True, specific_gateway=True)
    assert d.goes_direct("VIP.test", has_gateway=True, specific_gateway=False)
    assert not d.goes_direct("plain.test", has_gateway=True, specific_gateway=False)
    assert d.goes_direct("plain.test", has_gateway=False, specific_gateway=False)
    listed_only = direct(sender_domains=["vip.test"])
    assert listed_only.goes_direct("vip.test", has_gateway=True, specific_gateway=False)
    assert not listed_only.goes_direct("plain.test", has_gateway=False, specific_gateway=False)
