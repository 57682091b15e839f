"""clamd's INSTREAM protocol, the pure parts: the request's framing, every kind of reply, and the order hosts are
tried in (a host that failed goes last for a while)."""
from __future__ import annotations

import struct

import pytest

from mailgate.core.config import AntivirusConfig, ClamdScanner
from mailgate.mail.antivirus.clamd import ClamdError, HostHealth, instream_frames, parse_reply


def test_the_request_is_the_command_length_prefixed_chunks_and_a_zero_length():
    frames = list(instream_frames(b"abcdefghij", chunk_bytes=4))
    assert frames[0] == b"zINSTREAM\0" and frames[-1] == b"\0\0\0\0"
    body = frames[1:-1]
    assert [struct.unpack("!I", f[:4])[0] for f in body] == [4, 4, 2]
    assert b"".join(f[4:] for f in body) == b"abcdefghij"
    assert list(instream_frames(b"", 4)) == [b"zINSTREAM\0", b"\0\0\0\0"]


@pytest.mark.parametrize("raw, status, signatures", [
    (b"stream: OK\0", "clean", ()),
    (b"stream: Eicar-Test-Signature.UNOFFICIAL FOUND\0", "infected", ("Eicar-Test-Signature.UNOFFICIAL",)),
    (b"stream: Eicar-Test-Signature FOUND\n", "infected", ("Eicar-Test-Signature",)),  # n-mode: newline
    (b"stream: A FOUND\0stream: B.UNOFFICIAL FOUND\0", "infected", ("A", "B.UNOFFICIAL")),  # AllMatchScan
    # a heuristic of clamd's limits or of encryption is not a virus; a real signature beside it wins
    (b"stream: Heuristics.Limits.Exceeded.MaxRecursion FOUND\0", "unscannable",
     ("Heuristics.Limits.Exceeded.MaxRecursion",)),
    (b"stream: Heuristics.Encrypted.Zip FOUND\0", "unscannable", ("Heuristics.Encrypted.Zip",)),
    (b"stream: Heuristics.Encrypted.Zip FOUND\0stream: Win.Trojan.X FOUND\0", "infected", ("Win.Trojan.X",)),
    (b"INSTREAM size limit exceeded. ERROR\0", "unscannable", ()),
])
def test_replies(raw, status, signatures):
    reply = parse_reply(raw)
    assert (reply.status, reply.signatures) == (status, signatures)
    if status == "unscannable":
        assert reply.reason


def test_reasons_say_why_it_was_not_scanned():
    assert parse_reply(b"INSTREAM size limit exceeded. ERROR\0").reason == "larger than clamd's StreamMaxLength"
    assert parse_reply(b"stream: Heuristics.Encrypted.Zip FOUND\0").reason == (
        "encrypted content (Heuristics.Encrypted.Zip)")
    assert "scan limits" in parse_reply(b"stream: Heuristics.Limits.Exceeded.MaxFileSize FOUND\0").reason


@pytest.mark.parametrize("raw", [b"", b"\0", b"Can't allocate memory ERROR\0", b"stream: maybe\0",
                                 b"HTTP/1.1 400 Bad Request\r\n\r\n", b"UNKNOWN COMMAND\n"])
def test_an_error_or_a_reply_that_is_not_clamds_fails_this_host(raw):
    with pytest.raises(ClamdError):
        parse_reply(raw)


def test_a_host_that_failed_is_tried_after_the_others_until_its_retry_time():
    now = [100.0]
    health = HostHealth(clock=lambda: now[0])
    a, b, c = (ClamdScanner(port=p) for p in (1, 2, 3))
    assert health.order([a, b, c], 30) == [a, b, c]
    health.failed(a.name)
    now[0] += 1
    health.failed(b.name)
    assert health.order([a, b, c], 30) == [c, a, b]  # the longest-failed of the failed ones first
    now[0] += 29.5
    assert health.order([a, b, c], 30) == [a, c, b]  # a's time is up, b's not yet
    health.answered(b.name)
    assert health.order([a, b, c], 30) == [a, b, c]


def test_scanner_names_and_config_defaults():
    cfg = AntivirusConfig()
    assert [s.name for s in cfg.scanners] == ["127.0.0.1:3310"] and cfg.when_unavailable == "tempfail"
    assert ClamdScanner(socket="/run/clamav/clamd.ctl").name == "unix:/run/clamav/clamd.ctl"
    with pytest.raises(ValueError, match="listed twice: 127.0.0.1:3310"):
        AntivirusConfig(scanners=[{"port": 3310}, {"port": 3310}])
