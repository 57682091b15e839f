"""`mailgate auth`: SMTP AUTH logins of ingress — make a hash, or manage the users in the live configuration.

Reads: a password from the terminal (prompted, not echoed) or the first line of standard input; for add, passwd,
list and remove, `mail.config` (mailgate.ops.settings.mail_auth). Emits: `hash`: the `scrypt$n$r$p$salt$hash`
line for a file's `ingress.auth.users`; add/passwd/remove: a SettingsConfigured (auth_users) that every running
ingress applies without restart; list: the users, never a password. The password is never printed or logged.
"""
from __future__ import annotations

from mailgate.ops.cli import command, exits

import asyncio
import argparse
import getpass
import json
import sys

from mailgate.core.passwords import hash_password
from mailgate.ops.settings import mail_auth as settings


def _read_password() -> str:
    return getpass.getpass("SMTP AUTH password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")


def cmd_auth(args: argparse.Namespace) -> int:
    if args.action == "hash":
        password = _read_password()
        if not password:
            raise exits.UsageError("empty password")
        print(hash_password(password))
        return 0
    if args.action != "list" and not args.username:
        raise exits.UsageError(f"{args.action}: give the user name")
    cfg = command.load(args)
    return asyncio.run(_manage(cfg, args))


async def _manage(cfg, args: argparse.Namespace) -> int:
    who = args.operator or getpass.getuser()
    if args.action == "list":
        users = await settings.list_users(cfg)
        if args.json:
            print(json.dumps(users))
        for u in [] if args.json else users:
            print(u["username"], ("senders: " + ", ".join(u["allowed_senders"])) if u["allowed_senders"]
                  else "senders: any")
        return 0
    if args.action == "remove":
        version = await settings.remove_user(cfg, args.username, who)
    elif args.action == "add":
        _, version = await settings.add_user(cfg, args.username, _read_password(), args.allowed_sender or [], who)
    else:  # passwd
        _, version = await settings.update_user(cfg, args.username, {"password": _read_password()}, who)
    print(f"{args.action} {args.username}: written to mail.config (configuration version {version})")
    return 0


def register(sub: argparse._SubParsersAction, with_config=lambda p: p) -> None:
    a = with_config(sub.add_parser("auth", help="SMTP AUTH logins of ingress"))
    a.add_argument("action", choices=["hash", "list", "add", "passwd", "remove"],
                   help="hash: read a password, print its hash for ingress.auth.users; list, add, passwd (change "
                        "the password), remove: the users in mail.config, applied live by every ingress")
    a.add_argument("username", nargs="?", help="the login (add, passwd, remove)")
    a.add_argument("--allowed-sender", action="append", help="add: a MAIL FROM it may use (user@domain or @domain; "
                                                             "repeat; default: any)")
    a.add_argument("--operator", help="who makes the change, for the audit log (default: the OS user)")
    a.add_argument("--json", action="store_true", help="list: JSON")
    a.set_defaults(func=cmd_auth)
