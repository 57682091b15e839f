"""The processor's faust app takes its Kafka settings from mailgate.core.kafka, as every other stage does:
bootstrap servers, TLS/SASL and the max record size (before, it ignored kafka.security)."""
from __future__ import annotations

from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from mailgate.core import kafka, topics
from mailgate.core.config import parse_config
from processors.runner import build_app
from tests.support.secrets import OUTBOUND_AUTH_PASSWORD


def _cfg(tmp_path, **security):
    return parse_config({"kafka": {"bootstrap_servers": ["k1:9093", "k2:9093"], "security": security},
                         "ingress": {"max_message_bytes": 5 * 1024 * 1024},
                         "local_broker": {"home": str(tmp_path)}})


def test_sasl_ssl_reaches_faust_as_the_aiokafka_clients_get_it(tmp_path):
    cfg = _cfg(tmp_path, protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512", sasl_username="mailgate",
               sasl_password=OUTBOUND_AUTH_PASSWORD)
    settings = kafka.faust_settings(cfg, "p")
    auth = credentials_to_aiokafka_auth(settings["broker_credentials"])
    assert (auth["security_protocol"], auth["sasl_mechanism"], auth["sasl_plain_username"]) == (
        "SASL_SSL", "SCRAM-SHA-512", "mailgate")
    assert auth["sasl_plain_password"] == OUTBOUND_AUTH_PASSWORD and auth["ssl_context"] is not None
    assert settings["broker"] == ["kafka://k1:9093", "kafka://k2:9093"]


def test_tls_only_and_plaintext(tmp_path):
    auth = credentials_to_aiokafka_auth(kafka.faust_settings(_cfg(tmp_path, protocol="SSL"), "p")["broker_credentials"])
    assert auth["security_protocol"] == "SSL" and auth["ssl_context"] is not None
    assert kafka.faust_settings(_cfg(tmp_path), "p")["broker_credentials"] is None


def test_the_processor_app_uses_them(tmp_path):
    cfg = _cfg(tmp_path, protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN", sasl_username="u",
               sasl_password=OUTBOUND_AUTH_PASSWORD)
    conf = build_app(cfg).conf
    assert credentials_to_aiokafka_auth(conf.broker_credentials)["security_protocol"] == "SASL_PLAINTEXT"
    assert [str(u) for u in conf.broker] == ["kafka://k1:9093", "kafka://k2:9093"]
    assert conf.producer_max_request_size == conf.consumer_max_fetch_size == topics.max_record_bytes(cfg)
