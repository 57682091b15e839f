"""The clamd client against a real ClamAV clamd (the test's own signature database): verdicts by TCP and by Unix
socket, failover to a second host, clamd's own size limit, our size limit, and a host that never answers."""
from __future__ import annotations

import asyncio
import base64
import io
import socket
import zipfile

import pytest

from mailgate.core.config import AntivirusConfig
from mailgate.mail.antivirus.clamd import ClamdClient, HostHealth, ScannerUnavailable
from tests.support.clamd import CLAMD, EICAR, EICAR_SIGNATURE, MARKER, MARKER_SIGNATURE, PEER_MISSING, running_clamd
from tests.support.ports import free_port

pytestmark = pytest.mark.skipif(CLAMD is None, reason=PEER_MISSING)


@pytest.fixture(scope="module")
def clamd(tmp_path_factory):
    with running_clamd(tmp_path_factory.mktemp("clamd"), unix_socket=True) as server:
        yield server


def client(*scanners: dict, **settings) -> ClamdClient:
    return ClamdClient(AntivirusConfig(enabled=True, scanners=list(scanners), **settings), health=HostHealth())


def scan(c: ClamdClient, data: bytes):
    return asyncio.run(c.scan(data))


def zipped(name: str, data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(name, data)
    return out.getvalue()


def message_with(attachment: bytes, name: str) -> bytes:
    return (b"From: a@example.test\r\nTo: b@example.test\r\nSubject: files\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
            b"--b1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
            b"Content-Disposition: attachment; filename=\"" + name.encode() + b"\"\r\n\r\n"
            + base64.encodebytes(attachment).replace(b"\n", b"\r\n") + b"--b1--\r\n")


def test_verdicts_over_tcp_for_clean_eicar_zipped_and_in_a_message(clamd):
    c = client(clamd.scanner)
    clean = scan(c, b"hello, world\r\n")
    assert clean.reply.status == "clean" and clean.scanner == f"127.0.0.1:{clamd.port}" and clean.duration_s > 0
    for data in (EICAR, zipped("eicar.com", EICAR), zipped("outer.zip", zipped("eicar.com", EICAR)),
                 message_with(zipped("eicar.com", EICAR), "invoice.zip")):
        verdict = scan(c, data)
        assert (verdict.reply.status, verdict.reply.signatures) == ("infected", (EICAR_SIGNATURE,))
    marker = scan(c, b"x" * 200_000 + MARKER + b"y" * 10)  # across chunk boundaries
    assert marker.reply.signatures == (MARKER_SIGNATURE,)


def test_a_unix_socket_gives_the_same_verdict(clamd):
    verdict = scan(client({"socket": str(clamd.unix_socket)}), EICAR)
    assert verdict.reply.signatures == (EICAR_SIGNATURE,) and verdict.scanner == f"unix:{clamd.unix_socket}"


def test_a_stopped_host_is_skipped_and_the_scan_goes_to_the_next(clamd):
    down = {"host": "127.0.0.1", "port": free_port()}
    c = client(down, clamd.scanner)
    first = scan(c, EICAR)
    assert first.scanner == f"127.0.0.1:{clamd.port}" and first.reply.status == "infected"
    assert len(first.failed) == 1 and first.failed[0].startswith(f"127.0.0.1:{down['port']}: cannot connect")
    second = scan(c, b"clean")
    assert second.failed == ()  # the failed host goes last for host_retry_after_s: not tried again at once


def test_no_host_answering_is_scanner_unavailable_naming_each():
    ports = [free_port(), free_port()]
    with pytest.raises(ScannerUnavailable) as err:
        scan(client(*({"port": p} for p in ports)), b"x")
    assert all(f"127.0.0.1:{p}: cannot connect" in str(err.value) for p in ports)


def test_a_host_that_never_answers_times_out_and_the_next_host_scans(clamd):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        c = client({"port": silent.getsockname()[1]}, clamd.scanner, timeout_s=0.5)
        verdict = scan(c, EICAR)
    assert verdict.reply.status == "infected" and "no verdict within 0.5s" in verdict.failed[0]


def test_over_our_limit_is_unscannable_without_asking_clamd():
    verdict = scan(client({"port": free_port()}, max_scan_bytes=1024), b"x" * 1025)
    assert verdict.reply.status == "unscannable" and verdict.scanner == "(not sent)"
    assert "larger than max_scan_bytes 1024" in verdict.reply.reason


def test_over_clamds_stream_limit_is_unscannable_never_clean(tmp_path):
    with running_clamd(tmp_path, StreamMaxLength="1M") as small:
        verdict = scan(client(small.scanner), b"x" * (3 * 1024 * 1024))
    assert verdict.reply.status == "unscannable" and verdict.reply.reason == "larger than clamd's StreamMaxLength"
