"""spam.scan_outbound end to end: a message relayed by an SMTP AUTH login is scored by the real rspamd and spamd
with the login — rspamd's scan log shows `user=<login>` in the SMTP context it received, spamd's log shows it
checked the message "for <login>" — and is delivered with the scores recorded in MessageClassified."""
from __future__ import annotations

import pytest

from mailgate.core.passwords import hash_password
from tests.scenario.test_managed_mail_auth import _relay
from tests.scenario.test_smtp_auth import ca  # noqa: F401  (a fixture)
from tests.support.harness import SmtpPrimary
from tests.support.rspamd import RSPAMD, running_rspamd
from tests.support.secrets import MANAGED_AUTH_PASSWORD as PASSWORD
from tests.support.spamd import running_spamd
from tests.support.traffic import wait_until

pytestmark = [pytest.mark.scenario, pytest.mark.skipif(RSPAMD is None, reason="rspamd is not installed "
                                                                               "(peer missing: rspamd)")]


def test_outbound_mail_of_a_login_is_scored_with_the_login(ca, gateway, tmp_path):  # noqa: F811
    out = SmtpPrimary().start()
    with running_rspamd(tmp_path / "rspamd") as rspamd, running_spamd(tmp_path) as spamd:
        try:
            gateway.configure({
                "ingress": {"tls": {"cert_file": str(ca / "server.pem"), "key_file": str(ca / "server.pem")},
                            "auth": {"users": [{"username": "relay2",
                                                "password_hash": hash_password(PASSWORD, n=2 ** 12)}]}},
                "outbound_gateways": [{"name": "out", "address": "127.0.0.1", "port": out.port}],
                "spam": {"enabled": True, "scan_outbound": True, "scorers": [
                    {"kind": "rspamd", "url": rspamd.url, "timeout_s": 60},
                    {"kind": "spamd", "port": spamd.port, "timeout_s": 60}]}})
            gateway.start_broker()
            gateway.start_all()
            code, reply = _relay(ca, gateway.smtp_port, PASSWORD, "scored-out")
            assert code == 235 and reply.startswith("2.0.0"), reply
            mid = reply.split()[-1]
            gateway.wait_events(mid, "MessageDelivered", timeout_s=90)
            delivered = out.wait_for(1)[0].data
        finally:
            out.stop()
        [line] = rspamd.wait_scanned(mid)
        assert "user=relay2" in line
        wait_until(lambda: "checking message <scored-out@sender.test> for relay2:" in spamd.log.read_text(), 30,
                   "spamd to log the login")
    [classified] = [e for e in gateway.events(mid) if type(e).__name__ == "MessageClassified"]
    assert [(s.scorer, s.error) for s in classified.scores] == [("rspamd", None), ("spamd", None)]
    assert delivered.startswith(b"X-Spam-Level: ")
