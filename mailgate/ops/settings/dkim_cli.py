"""`mailgate dkim`: DKIM signing keys of outbound mail, and the DNS records to publish for them.

Reads: the domain, selector and key size; `mail.config` for add, list, record and remove
(mailgate.ops.settings.mail_auth). Emits: keygen: the private key to a file created with mode 0600 (never printed),
and on standard output the TXT record plus the `dkim_signing.keys` entry that uses the file; add: a key generated
into mail.config, sealed with MAILGATE_SECRET_KEY (every running egress signs with it without restart), and the TXT
record; list/record: the keys' TXT records; remove: the key out of mail.config. No private key is ever printed.
"""
from __future__ import annotations

from mailgate.ops.cli import command, exits

import asyncio
import argparse
import getpass
import json
import os
from pathlib import Path

from mailgate.mail.authres.dkim_keys import generate_private_key, public_record, record_name
from mailgate.ops.settings import mail_auth as settings


def _txt_strings(value: str) -> str:
    """The value as zone-file character-strings of at most 255 bytes each."""
    return " ".join(f'"{value[i:i + 255]}"' for i in range(0, len(value), 255))


def _zone_line(doc: dict) -> str:
    if doc.get("record") is None:
        return f"; {doc['record_name']}: {doc.get('error', 'the private key cannot be read')}"
    return f"{doc['record_name']}. IN TXT ( {_txt_strings(doc['record'])} )"


def cmd_keygen(args: argparse.Namespace) -> int:
    out = Path(args.out or f"dkim-{args.domain}-{args.selector}.pem")
    if out.exists() and not args.force:
        raise exits.UsageError(f"{out} exists (give --force to replace it)")
    pem = generate_private_key(args.bits)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    name = record_name(args.domain, args.selector)
    print(f"; publish in DNS:\n{name}. IN TXT ( {_txt_strings(public_record(pem))} )\n")
    print("# and add to the configuration:\ndkim_signing:\n  keys:\n"
          f"    - domain: {args.domain}\n      selector: {args.selector}\n      private_key: {{file: {out.resolve()}}}")
    return 0


def cmd_dkim(args: argparse.Namespace) -> int:
    if args.action == "keygen":
        if not (args.domain and args.selector):
            raise exits.UsageError("keygen: give --domain and --selector")
        return cmd_keygen(args)
    if args.action != "list" and not (args.domain and args.selector):
        raise exits.UsageError(f"{args.action}: give --domain and --selector")
    cfg = command.load(args)
    return asyncio.run(_manage(cfg, args))


async def _manage(cfg, args: argparse.Namespace) -> int:
    who = args.operator or getpass.getuser()
    if args.action == "list":
        keys = await settings.list_keys(cfg)
        print(json.dumps(keys) if args.json else "\n".join(_zone_line(k) for k in keys))
        return 0
    if args.action == "record":
        doc = await settings.get_key(cfg, args.domain, args.selector)
        print(json.dumps(doc) if args.json else _zone_line(doc))
        return 0 if doc.get("record") else 1
    if args.action == "remove":
        version = await settings.remove_key(cfg, args.domain, args.selector, who)
        print(f"removed the key of {args.domain} (configuration version {version})")
        return 0
    doc, version = await settings.generate_key(cfg, args.domain, args.selector, args.bits, who, args.algorithm)
    print(f"; written to mail.config, sealed (configuration version {version}); publish in DNS:\n"
          f"{_zone_line(doc)}")
    return 0


def register(sub: argparse._SubParsersAction, with_config=lambda p: p) -> None:
    d = with_config(sub.add_parser("dkim", help="DKIM signing keys of outbound mail"))
    d.add_argument("action", choices=["keygen", "add", "list", "record", "remove"],
                   help="keygen: make a key file and print the TXT record; add: generate a key into mail.config "
                        "(sealed; applied live by every egress); list, record: the TXT records to publish; "
                        "remove: a key out of mail.config")
    d.add_argument("--domain", help="the signing domain (d=)")
    d.add_argument("--selector", help="the selector (s=)")
    d.add_argument("--bits", type=int, default=2048, choices=[1024, 2048, 3072, 4096], help="RSA key size")
    d.add_argument("--algorithm", choices=list(settings.ALGORITHMS), default="rsa",
                   help="add: rsa (rsa-sha256) or ed25519 (ed25519-sha256, RFC 8463)")
    d.add_argument("--out", help="keygen: file for the private key (default dkim-<domain>-<selector>.pem)")
    d.add_argument("--force", action="store_true", help="keygen: replace an existing key file")
    d.add_argument("--operator", help="who makes the change, for the audit log (default: the OS user)")
    d.add_argument("--json", action="store_true", help="list, record: JSON")
    d.set_defaults(func=cmd_dkim)
