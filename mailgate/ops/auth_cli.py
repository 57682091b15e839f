"""`mailgate auth hash`: make the password hash an `ingress.auth.users` entry keeps.

Reads: a password from the terminal (prompted, not echoed) or the first line of standard input. Emits: the
`scrypt$n$r$p$salt$hash` line on standard output. The password is never printed or logged.
"""
from __future__ import annotations

import argparse
import getpass
import sys

from mailgate.core.passwords import hash_password


def cmd_auth(args: argparse.Namespace) -> int:
    password = getpass.getpass("SMTP AUTH password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    if not password:
        print("mailgate: empty password", file=sys.stderr)
        return 2
    print(hash_password(password))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    a = sub.add_parser("auth", help="SMTP AUTH logins of ingress")
    a.add_argument("action", choices=["hash"], help="hash: read a password, print its hash for ingress.auth.users")
    a.set_defaults(func=cmd_auth)
