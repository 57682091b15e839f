"""`kafka.security`: one settings block, checked at load, turned into the same client settings for aiokafka and faust."""
from __future__ import annotations

import ssl

import pytest
import trustme
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from mailgate.core.config import ConfigError, parse_config
from mailgate.core.kafka import faust_credentials, security_kwargs

SASL = {"protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "sasl_username": "mailgate",
        "sasl_password": {"env": "TEST_KAFKA_PW"}}


def cfg(**security):
    return parse_config({"kafka": {"security": security}})


@pytest.fixture
def ca_file(tmp_path):
    path = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return path


@pytest.mark.parametrize("missing", ["sasl_mechanism", "sasl_username", "sasl_password"])
def test_sasl_without_mechanism_user_or_password_is_refused_at_load(missing):
    with pytest.raises(ConfigError, match=r"kafka\.security: .*needs sasl_mechanism, sasl_username and sasl_password"):
        cfg(**{k: v for k, v in SASL.items() if k != missing})


def test_client_cert_needs_its_key_and_a_tls_protocol(tmp_path):
    with pytest.raises(ConfigError, match="give cert_file and key_file together"):
        cfg(protocol="SSL", cert_file=str(tmp_path / "c.pem"))
    with pytest.raises(ConfigError, match="cert_file needs protocol SSL or SASL_SSL"):
        cfg(protocol="PLAINTEXT", cert_file="c.pem", key_file="k.pem")


def test_plaintext_adds_nothing():
    assert security_kwargs(cfg()) == {"security_protocol": "PLAINTEXT"}
    assert faust_credentials(cfg()) == {}


def test_sasl_ssl_gives_verifying_tls_and_the_password_read_from_its_reference(monkeypatch, ca_file):
    monkeypatch.setenv("TEST_KAFKA_PW", "pw-from-env")
    kw = security_kwargs(cfg(**SASL, ca_file=str(ca_file)))
    ctx = kw.pop("ssl_context")
    assert kw == {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
                  "sasl_plain_username": "mailgate", "sasl_plain_password": "pw-from-env"}
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert len(ctx.get_ca_certs()) == 1  # the configured CA, not the system's


@pytest.mark.parametrize("security", [SASL, {**SASL, "protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN"},
                                      {"protocol": "SSL"}])
def test_the_processor_faust_app_gets_the_same_settings_as_every_other_client(monkeypatch, ca_file, security):
    monkeypatch.setenv("TEST_KAFKA_PW", "pw-from-env")
    c = cfg(**security, ca_file=str(ca_file))
    via_faust = dict(credentials_to_aiokafka_auth(faust_credentials(c)["broker_credentials"]))
    direct = security_kwargs(c)
    assert isinstance(via_faust.pop("ssl_context"), ssl.SSLContext) == ("ssl_context" in direct)
    direct.pop("ssl_context", None)
    assert via_faust == direct


def test_the_password_is_not_in_the_config_repr(monkeypatch):
    c = cfg(**{**SASL, "sasl_password": "inline-Secret-9"})
    assert "inline-Secret-9" not in repr(c) and "inline-Secret-9" not in str(c.kafka.security)


def test_the_login_check_lets_an_unreachable_broker_pass(monkeypatch):
    """A broker that is down is the stages' usual wait-and-retry, not a security error that stops start-up."""
    import asyncio
    import socket

    from mailgate.core.kafka import check_security
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket is closed
    monkeypatch.setenv("TEST_KAFKA_PW", "pw")
    c = parse_config({"kafka": {"bootstrap_servers": [f"127.0.0.1:{port}"], "security": SASL}})
    assert asyncio.run(check_security(c, timeout_s=5)) is None
