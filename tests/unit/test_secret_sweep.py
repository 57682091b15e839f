"""The session-end secret sweep finds a password in a log or a Kafka segment, and ignores the operator's config."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from tests.conftest import _sweep_for_secrets
from tests.support.secrets import OUTBOUND_AUTH_PASSWORD


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
