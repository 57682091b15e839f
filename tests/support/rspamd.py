"""A real rspamd (Debian's package) for integration and scenario tests: loopback only, no network.

`running_rspamd(workdir)` writes a minimal local configuration (no DNS lists, no fuzzy storage, no redis: only
rspamd's built-in checks such as GTUBE, which rspamd answers with action "reject" and the reject threshold as the
score) and one Lua rule, MAILGATE_CONTEXT, that echoes back as symbol options the SMTP context rspamd understood
from the request headers (ip=, helo=, from=, rcpt=, user=, qid=). It starts rspamd on a free port and waits until
`/ping` answers; `Rspamd.stop()` ends its process group. Each scan is one log line,
`scanned qid: <id>, action: …, score: …/15.00, symbols: [GTUBE{}, MAILGATE_CONTEXT{ip=…; helo=…; …}]`, that
`Rspamd.scanned(queue_id)` finds. Nothing here is mocked.
"""
from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from tests.support.daemon import start_daemon, stop_group
from tests.support.spamd import free_port

RSPAMD = shutil.which("rspamd") or shutil.which("rspamd", path="/usr/bin:/usr/sbin")
START_TIMEOUT_S = 120
REJECT_SCORE = 15.0
"""The reject threshold of the test configuration: rspamd answers GTUBE with this score and action reject."""

CONTEXT_RULE = """
rspamd_config:register_symbol{
  name = 'MAILGATE_CONTEXT', score = 0.0, group = 'mailgate',
  callback = function(task)
    local opts = {}
    local ip = task:get_from_ip()
    if ip and ip:is_valid() then table.insert(opts, 'ip=' .. ip:to_string()) end
    table.insert(opts, 'helo=' .. (task:get_helo() or ''))
    local from = task:get_from('smtp')
    table.insert(opts, 'from=' .. ((from and from[1] and from[1].addr) or ''))
    for _, r in ipairs(task:get_recipients('smtp') or {}) do table.insert(opts, 'rcpt=' .. r.addr) end
    table.insert(opts, 'user=' .. (task:get_user() or ''))
    table.insert(opts, 'qid=' .. (task:get_queue_id() or ''))
    return true, 0.0, opts
  end
}
"""


def rspamd_config(workdir: Path, port: int) -> Path:
    """Write the minimal configuration (and the context rule) under `workdir`; returns the config file."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "context.lua").write_text(CONTEXT_RULE)
    conf = workdir / "rspamd.conf"
    conf.write_text(f"""
lua = "{workdir}/context.lua";
options {{
  pidfile = "{workdir}/rspamd.pid";
  dbdir = "{workdir}";
  tempdir = "{workdir}";
  local_addrs = [];
  dns {{ nameserver = ["127.0.0.1:1"]; timeout = 0.1s; retransmits = 0; }}
  filters = "";
}}
logging {{
  type = "file"; filename = "{workdir}/rspamd.log"; level = "info";
  log_format = "scanned qid: <$qid>, action: $action, score: $scores, symbols: [$symbols_params]";
}}
actions {{ reject = {REJECT_SCORE}; add_header = 6; greylist = 4; }}
worker "normal" {{ bind_socket = "127.0.0.1:{port}"; count = 1; }}
""")
    return conf


def ping(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False


@dataclass
class Rspamd:
    port: int
    workdir: Path
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def scanned(self, queue_id: str) -> list[str]:
        """The log lines of every scan of the message with this queue id (mailgate sends its message id)."""
        log = self.workdir / "rspamd.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        return [line for line in text.splitlines() if f"scanned qid: <{queue_id}>," in line]

    def wait_scanned(self, queue_id: str, timeout_s: float = 60) -> list[str]:
        """`scanned(queue_id)` once rspamd has written at least one such line (its log is written after the reply)."""
        deadline = time.monotonic() + timeout_s
        while not (lines := self.scanned(queue_id)):
            if time.monotonic() > deadline:
                pytest.fail(f"rspamd logged no scan of {queue_id} within {timeout_s}s")
            time.sleep(0.1)
        return lines

    def start(self) -> "Rspamd":
        """Start rspamd in the foreground of its own process group and wait until /ping answers."""
        assert RSPAMD is not None
        conf = rspamd_config(self.workdir, self.port)
        self.proc = start_daemon([RSPAMD, "-f", "-i", "-c", str(conf)], self.workdir / "rspamd.out",
                                 lambda: ping(self.port), "rspamd", START_TIMEOUT_S)
        return self

    def stop(self) -> None:
        stop_group(self.proc)


@contextlib.contextmanager
def running_rspamd(workdir: Path) -> Iterator[Rspamd]:
    """An rspamd on a free port for the duration of the block; stopped afterwards whatever happened."""
    server = Rspamd(free_port(), workdir / "rspamd")
    try:
        yield server.start()
    finally:
        server.stop()
