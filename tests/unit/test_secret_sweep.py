"""The session-end secret sweep finds a password in a log or a Kafka segment, in every form a leak takes (plain,
URL-encoded, base64 at any alignment, AUTH PLAIN), and ignores the operator's config."""
from __future__ import annotations

import base64
import shutil
import tempfile
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from tests.conftest import _sweep_for_secrets
from tests.support.secrets import ADMIN_API_PASSWORD, ALL, OUTBOUND_AUTH_PASSWORD, auth_plain, needles


def test_sweep_finds_a_leaked_password_in_logs_and_segments_but_not_in_config_files():
    # Outside pytest's temp dir: the real sweep over this session must not find the planted leak.
    tmp_path = Path(tempfile.mkdtemp(prefix="mailgate-sweep-"))
    try:
        _check(tmp_path)
    finally:
        shutil.rmtree(tmp_path)


def _check(tmp_path: Path) -> None:
    (tmp_path / "egress-0.log").write_text("all good\n")
    (tmp_path / "mailgate.yaml").write_text(f"auth_password: {OUTBOUND_AUTH_PASSWORD}\n")  # the operator's own file
    assert _sweep_for_secrets(tmp_path)[2] == []
    segment = tmp_path / "broker" / "data" / "mail.events-0" / "00000000000000000000.log"
    segment.parent.mkdir(parents=True)
    segment.write_bytes(b"\x00\x01" + OUTBOUND_AUTH_PASSWORD.encode() + b"\x02")
    files, _, hits = _sweep_for_secrets(tmp_path)
    assert files == 2 and len(hits) == 1 and "mail.events-0" in hits[0]


@pytest.mark.parametrize("form", ["plain", "url", "url+", "url-lower-hex", "base64@0", "base64@1", "base64@2",
                                  "auth-plain"])
def test_sweep_finds_every_form_of_a_password(form):
    """Each form a leak can take in a log: as written, URL-encoded, base64 after 0/1/2 other bytes, AUTH PLAIN."""
    password = ADMIN_API_PASSWORD  # "correct horse": URL-encoding changes it
    leaks = {"plain": password.encode(), "url": quote(password).encode(), "url+": quote_plus(password).encode(),
             "url-lower-hex": quote(password + "&").lower().encode(),
             "base64@0": base64.b64encode(password.encode()), "base64@1": base64.b64encode(b"x" + password.encode()),
             "base64@2": base64.b64encode(b"xy" + password.encode()),
             "auth-plain": b"AUTH PLAIN " + base64.b64encode(b"\0someone\0" + password.encode())}
    tmp_path = Path(tempfile.mkdtemp(prefix="mailgate-sweep-"))
    try:
        (tmp_path / "ingress-0.log").write_bytes(b"2026 INFO client said: " + leaks[form] + b"\n")
        hits = _sweep_for_secrets(tmp_path)[2]
    finally:
        shutil.rmtree(tmp_path)
    assert hits and all("ADMIN_API_PASSWORD" in h and password not in h for h in hits), hits


def test_every_registered_password_has_a_base64_form_and_known_auth_plain_blobs_are_searched():
    for secret in ALL:
        kinds = {label.split(" ", 1)[1] for label, n in needles((secret,))}
        assert {"plain", "base64@0", "base64@1", "base64@2"} <= kinds, (secret, kinds)  # url: only if it differs
    blob = auth_plain("relayuser", OUTBOUND_AUTH_PASSWORD)
    assert ("OUTBOUND_AUTH_PASSWORD auth-plain(relayuser)", blob) in needles()
