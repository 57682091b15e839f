"""Regression (found by the admin API property tests): an outbound gateway whose CA file cannot be read made
"verify connection" answer 500 and would have crashed a delivery attempt; it is now a failed TLS step."""
from __future__ import annotations

from egress.gateway_probe import verify_gateway
from mailgate.core.config import DeliveryConfig, OutboundGateway


async def test_a_missing_ca_file_is_a_failed_tls_step_not_a_crash(tmp_path):
    gw = OutboundGateway(name="gw", address="127.0.0.1", port=9, encryption="ssl", ca_file=tmp_path / "absent.pem")
    result = await verify_gateway(gw, DeliveryConfig(helo_name="test.example"))
    assert not result.ok
    assert result.error == "TlsFailed" and result.step == "connect"
    assert "absent.pem" in result.message
