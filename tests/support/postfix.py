"""A private Postfix instance (Debian's /usr/sbin/postfix) on loopback, as an SMTP client relaying into mailgate.

Its own config_directory, queue_directory and data_directory in a fresh directory under /tmp (the postfix user
must be able to reach them: pytest's own temporary directories are mode 0700), an smtpd on 127.0.0.1:`port` that
relays everything from 127.0.0.0/8 to `relay_port`, and its log in `maillog` (Postfix 3.7's postlogd: no syslog
here). `debug_peer_list` makes its smtp client log every command it sends and reply it reads, so a test can see
whether it pipelined. Started and stopped as root with `postfix -c DIR start|stop`; no init system involved.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

POSTFIX = "/usr/sbin/postfix"
SERVICES = """\
{listen} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


def available() -> bool:
    return os.path.exists(POSTFIX) and os.geteuid() == 0


class PrivatePostfix:
    def __init__(self, port: int, relay_port: int) -> None:
        self.port = port
        self.relay_port = relay_port
        self.dir = Path(tempfile.mkdtemp(prefix="mailgate-postfix-"))
        self.dir.chmod(0o755)
        self.conf, self.maillog = self.dir / "conf", self.dir / "maillog"
        self.name = f"postfix-{port}"

    def _postfix(self, action: str) -> subprocess.CompletedProcess:
        # `script` gives postfix a terminal, so its errors come to stderr instead of a syslog this host lacks.
        return subprocess.run(["script", "-qec", f"{POSTFIX} -c {self.conf} {action}", "/dev/null"],
                              capture_output=True, text=True, timeout=60)

    def start(self) -> "PrivatePostfix":
        for sub in ("conf", "queue", "data"):
            (self.dir / sub).mkdir()
        shutil.chown(self.dir / "data", "postfix", "postfix")
        (self.conf / "main.cf").write_text("\n".join([
            "compatibility_level = 3.6", f"queue_directory = {self.dir / 'queue'}",
            f"data_directory = {self.dir / 'data'}", "mail_owner = postfix", "setgid_group = postdrop",
            "myhostname = postfix.test", "mydestination =", "inet_interfaces = 127.0.0.1", "inet_protocols = ipv4",
            "mynetworks = 127.0.0.0/8", f"relayhost = [127.0.0.1]:{self.relay_port}",
            "smtp_dns_support_level = disabled", f"maillog_file = {self.maillog}", "maillog_file_prefixes = /tmp",
            "debug_peer_list = 127.0.0.1", "debug_peer_level = 2", f"syslog_name = {self.name}",
            "smtpd_relay_restrictions = permit_mynetworks, reject", ""]))
        (self.conf / "master.cf").write_text(SERVICES.format(listen=f"127.0.0.1:{self.port}"))
        done = self._postfix("start")
        if done.returncode != 0:
            raise RuntimeError(f"postfix start failed: {done.stdout}{done.stderr}")
        return self

    def stop(self) -> None:
        """`postfix stop`, then wait for this instance's master (by its pid file) to be gone."""
        pid_file = self.dir / "queue" / "pid" / "master.pid"
        pid = pid_file.read_text().strip() if pid_file.exists() else ""
        self._postfix("stop")
        deadline = time.monotonic() + 20
        while pid and Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        return self.maillog.read_text(errors="replace") if self.maillog.exists() else ""
