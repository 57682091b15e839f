"""`mailgate dkim keygen --domain D --selector S`: a DKIM signing key, and the DNS record to publish for it.

Reads: the domain, selector and key size. Emits: the private key to a file created with mode 0600 (never printed),
and on standard output the TXT record to publish plus the `dkim_signing.keys` entry that uses the file.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from mailgate.mail.authres.dkim_keys import generate_private_key, public_record, record_name


def _txt_strings(value: str) -> str:
    """The value as zone-file character-strings of at most 255 bytes each."""
    return " ".join(f'"{value[i:i + 255]}"' for i in range(0, len(value), 255))


def cmd_dkim(args: argparse.Namespace) -> int:
    out = Path(args.out or f"dkim-{args.domain}-{args.selector}.pem")
    if out.exists() and not args.force:
        print(f"mailgate: {out} exists (give --force to replace it)", file=sys.stderr)
        return 2
    pem = generate_private_key(args.bits)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    name = record_name(args.domain, args.selector)
    print(f"; publish in DNS:\n{name}. IN TXT ( {_txt_strings(public_record(pem))} )\n")
    print("# and add to the configuration:\ndkim_signing:\n  keys:\n"
          f"    - domain: {args.domain}\n      selector: {args.selector}\n      private_key: {{file: {out.resolve()}}}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("dkim", help="DKIM signing keys of outbound mail")
    d.add_argument("action", choices=["keygen"], help="keygen: make a key, print the DNS TXT record to publish")
    d.add_argument("--domain", required=True, help="the signing domain (d=)")
    d.add_argument("--selector", required=True, help="the selector (s=)")
    d.add_argument("--bits", type=int, default=2048, choices=[1024, 2048, 3072, 4096], help="RSA key size")
    d.add_argument("--out", help="file for the private key (default dkim-<domain>-<selector>.pem)")
    d.add_argument("--force", action="store_true", help="replace an existing key file")
    d.set_defaults(func=cmd_dkim)
