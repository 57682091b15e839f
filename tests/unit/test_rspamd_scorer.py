"""The rspamd scorer against a real HTTP server speaking rspamd's /checkv2 (score in the JSON reply)."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from processors.spam.scorers import RspamdScorer, ScannerUnavailable
from tests.support.harness import free_port


class _Rspamd(BaseHTTPRequestHandler):
    seen: list = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Rspamd.seen.append((self.path, self.headers.get("IP"), body))
        if b"FAIL" in body:
            self.send_response(500)
            self.end_headers()
            return
        score = 15.5 if b"viagra" in body else 0.3
        data = json.dumps({"score": score, "required_score": 15, "action": "no action"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def rspamd():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Rspamd)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Rspamd.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


async def test_scores_come_from_checkv2_with_the_client_ip(rspamd):
    s = RspamdScorer(url=rspamd, timeout_s=5)
    assert await s.score(b"Subject: buy viagra\r\n\r\nnow\r\n", "203.0.113.5") == 15.5
    assert await s.score(b"Subject: hello\r\n\r\nhi\r\n", "203.0.113.5") == 0.3
    path, ip, _ = _Rspamd.seen[0]
    assert path == "/checkv2" and ip == "203.0.113.5"


async def test_server_error_and_no_server_are_scanner_unavailable(rspamd):
    with pytest.raises(ScannerUnavailable):
        await RspamdScorer(url=rspamd, timeout_s=5).score(b"Subject: FAIL\r\n\r\n", "203.0.113.5")
    with pytest.raises(ScannerUnavailable):
        await RspamdScorer(url=f"http://127.0.0.1:{free_port()}", timeout_s=2).score(b"x\r\n", "203.0.113.5")
