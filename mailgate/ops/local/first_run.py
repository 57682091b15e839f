"""The door of the first run (`./scripts/run-gateway`): a login for the administration page made for this run, and
the key that seals secrets in `mail.config`, so a newcomer can open the page without editing anything.

Reads: the configuration file run-gateway runs with; `$MAILGATE_SECRET_KEY`, else the key kept in the per-user cache
(`~/.cache/mailgate/secret-key` or `$MAILGATE_CACHE_DIR/secret-key`, made once with mode 0600, so what earlier runs
sealed still opens). Emits (`python3 -m mailgate.ops.local.first_run CONFIG`): the admin configuration for this run,
`<cache>/run-gateway-admin.yaml` (mode 0600): the same file with `admin.password_hash` set to the hash of a new
random password, unless the file already has a hash; then one line on stdout, `<that file> <port> <user> <password>`
(the password `-` when the configured hash stands). `--key` prints the sealing key instead, for run-gateway to export.
"""
from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import yaml

from mailgate.core.config import ConfigError, load_config
from mailgate.core.config.base import cache_dir
from mailgate.core.passwords import hash_password
from mailgate.core.secrets import KEY_ENV, new_key
from mailgate.ops.cli.exits import CONFIG, one_line

KEY_FILE = "secret-key"
ADMIN_FILE = "run-gateway-admin.yaml"


def _private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def sealing_key() -> str:
    """$MAILGATE_SECRET_KEY, else the per-user cache's key (made on the first run)."""
    if os.environ.get(KEY_ENV):
        return os.environ[KEY_ENV]
    path = cache_dir() / KEY_FILE
    if not path.exists():
        _private(path, new_key() + "\n")
    return path.read_text().strip()


def admin_login(config: Path) -> tuple[Path, str | None]:
    """(the configuration `mailgate admin` runs with, the password made for this run or None)."""
    load_config(config)  # the file must be valid before anything is written from it
    data = yaml.safe_load(config.read_text()) or {}
    admin = data.setdefault("admin", {}) or {}
    data["admin"] = admin
    password = None
    if not admin.get("password_hash"):
        password = secrets.token_urlsafe(12)
        admin["password_hash"] = hash_password(password)
    out = cache_dir() / ADMIN_FILE
    _private(out, yaml.safe_dump(data, sort_keys=False))
    return out, password


def main(argv: list[str]) -> int:
    if argv[:1] == ["--key"]:
        print(sealing_key())
        return 0
    if len(argv) != 1:
        print("usage: python3 -m mailgate.ops.local.first_run CONFIG | --key", file=sys.stderr)
        return 2
    try:
        path, password = admin_login(Path(argv[0]))
    except ConfigError as err:
        print(f"run-gateway: {one_line(str(err))}", file=sys.stderr)
        return CONFIG
    admin = load_config(path).admin
    print(f"{path} {admin.listen_port} {admin.username} {password or '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
