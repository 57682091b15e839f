"""Typed configuration: bad input stops start-up with the key's path and the reason; secrets never print."""
from __future__ import annotations

import pytest

from mailgate.core.config import ConfigError, load_config, parse_config


def test_unknown_key_is_an_error_naming_its_path():
    with pytest.raises(ConfigError) as e:
        parse_config({"ingress": {"listen_prot": 25}})
    assert "ingress.listen_prot: unknown key" in str(e.value)


def test_bad_value_names_path_and_reason():
    with pytest.raises(ConfigError) as e:
        parse_config({"outbound_gateways": [{"name": "g", "address": "h", "port": 70000}]})
    assert "outbound_gateways.0.port" in str(e.value) and "65535" in str(e.value)


def test_bad_ip_range_is_refused():
    with pytest.raises(ConfigError) as e:
        parse_config({"ingress": {"relay_networks": ["10.0.0.9-10.0.0.1"]}})
    assert "ingress.relay_networks" in str(e.value)


def test_auth_username_without_password_is_refused():
    with pytest.raises(ConfigError, match="auth_username and auth_password go together"):
        parse_config({"outbound_gateways": [{"name": "g", "address": "h", "auth_username": "u"}]})


def test_password_never_appears_in_repr_of_config():
    cfg = parse_config({"outbound_gateways": [{"name": "g", "address": "h", "auth_username": "u",
                                               "auth_password": "hunter2-secret"}]})
    assert "hunter2-secret" not in repr(cfg) and "hunter2-secret" not in str(cfg)
    assert cfg.outbound_gateways[0].auth_password.reveal() == "hunter2-secret"


def test_secret_by_environment_reference(monkeypatch):
    monkeypatch.setenv("RELAY_PW", "from-env")
    cfg = parse_config({"outbound_gateways": [{"name": "g", "address": "h", "auth_username": "u",
                                               "auth_password": {"env": "RELAY_PW"}}]})
    assert cfg.outbound_gateways[0].auth_password.reveal() == "from-env"


def test_the_example_configuration_is_valid():
    cfg = load_config("examples/mailgate.yaml")
    assert cfg.inbound_gateways[0].domain_verification.accepts("example.test")


def test_all_but_specified_inverts_domain_verification():
    cfg = parse_config({"inbound_gateways": [{"name": "p", "mode": "domain_forward", "primary_addresses": ["10.0.0.1"],
                                              "domain_verification": {"mode": "all_but_specified_domains",
                                                                      "domains": ["blocked.test"]}}]})
    assert cfg.inbound_gateway_for("any.test") is not None
    assert cfg.inbound_gateway_for("Blocked.TEST") is None


def test_duplicate_gateway_names_are_refused():
    with pytest.raises(ConfigError, match="duplicate"):
        parse_config({"outbound_gateways": [{"name": "g", "address": "a"}, {"name": "g", "address": "b"}]})


def test_configuration_doc_is_generated_from_the_models():
    from pathlib import Path

    from mailgate.core.configdoc import render
    doc = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text()
    assert doc.strip() == "\n".join(render()).strip(), "run: python -m mailgate.core.configdoc > docs/configuration.md"


def test_a_sender_domain_that_is_not_a_domain_name_is_refused_with_its_path():
    with pytest.raises(ConfigError) as e:
        parse_config({"outbound_gateways": [{"name": "g", "address": "h", "mode": "specific_domains",
                                             "sender_domains": ["ok.test", "@bad.test"]}]})
    assert "outbound_gateways.0.sender_domains" in str(e.value) and "'@bad.test' is not a domain name" in str(e.value)


def test_listed_domains_are_kept_as_mail_is_compared_lower_case_without_the_trailing_dot():
    cfg = parse_config({"outbound_gateways": [{"name": "g", "address": "h", "mode": "specific_domains",
                                               "sender_domains": [" Example.COM. "]}],
                        "inbound_gateways": [{"name": "p", "mode": "domain_forward", "primary_addresses": ["10.0.0.1"],
                                              "domain_verification": {"domains": ["Mail.Example.TEST."]}}]})
    assert cfg.outbound_gateways[0].sender_domains == ["example.com"]
    assert cfg.inbound_gateways[0].domain_verification.domains == ["mail.example.test"]
    with pytest.raises(ConfigError, match="inbound_gateways.0.domain_verification.domains"):
        parse_config({"inbound_gateways": [{"name": "p", "mode": "domain_forward", "primary_addresses": ["10.0.0.1"],
                                            "domain_verification": {"domains": ["*.example.test"]}}]})
