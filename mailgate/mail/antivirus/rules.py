"""Attachment rules: which files of a message (content.walk) a gateway refuses, holds or strips, by type and name.

Reads: the walk's files and the gateway's `AttachmentRules`. Emits: `Finding`s (the file's path, its detected
type, the rule, what matched, the rule's action), at most one per file and rule, in file order; and the message's
strongest action (reject over quarantine over strip). The built-in dangerous-files rule matches executables,
scripts, shortcuts and macro-enabled Office files by their bytes (DANGEROUS_TYPES) or their names
(DANGEROUS_EXTENSIONS), double extensions ending in one of those (invoice.pdf.exe), and CLSID names.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from mailgate.core.config import AttachmentRule, AttachmentRules
from mailgate.mail.antivirus.content import File

DANGEROUS_TYPES = ("exe", "elf", "macho", "lnk", "office_macro")
DANGEROUS_EXTENSIONS = (
    "exe", "com", "scr", "pif", "bat", "cmd", "cpl", "dll", "msi", "msp", "msc", "hta", "jar", "js", "jse", "vbs",
    "vbe", "wsf", "wsh", "ps1", "psm1", "reg", "scf", "lnk", "inf", "iso", "img", "vhd", "application", "gadget",
    "docm", "dotm", "xlsm", "xltm", "xlam", "pptm", "potm", "ppsm", "ppam", "sldm")
DANGEROUS = AttachmentRule(name="dangerous_files", types=list(DANGEROUS_TYPES),
                           extensions=list(DANGEROUS_EXTENSIONS), double_extension=True, clsid_name=True)
"""The built-in rule (its action is `dangerous_action`)."""
_CLSID = re.compile(r"\{[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\}", re.IGNORECASE)
_RANK = {"strip": 1, "quarantine": 2, "reject": 3}


@dataclass(frozen=True)
class Finding:
    path: str
    detected_type: str
    rule: str
    why: str
    action: str
    part: int
    """The MIME leaf part the file is in (what strip replaces)."""


def extensions(name: str) -> list[str]:
    """The name's extensions, last last, lower case, blanks trimmed (`Invoice.PDF  .exe` → [pdf, exe])."""
    pieces = [p.strip().lower() for p in name.strip().rstrip(".").split(".")]
    return [p for p in pieces[1:] if p]


def _why(rule: AttachmentRule, f: File) -> str | None:
    exts = extensions(f.name)
    last = exts[-1] if exts else ""
    if f.type and f.type in rule.types:
        return f"type {f.type}" + (f" named .{last}" if last and last != f.type else "")
    if rule.double_extension and len(exts) >= 2 and last in (rule.extensions or DANGEROUS_EXTENSIONS):
        return f"double extension .{exts[-2]}.{last}"
    if last and last in rule.extensions:
        return f"extension .{last}"
    if rule.clsid_name and _CLSID.search(f.name):
        return "CLSID name"
    if rule.encrypted and f.encrypted:
        return "encrypted"
    return None


def check(files: list[File], rules: AttachmentRules) -> list[Finding]:
    active = [DANGEROUS.model_copy(update={"action": rules.dangerous_action})] if rules.dangerous_files else []
    active += list(rules.rules)
    found = []
    for f in files:
        for rule in active:
            why = _why(rule, f)
            if why is not None:
                found.append(Finding(f.path, f.type, rule.name, why, rule.action, f.part))
    return found


def strip(body: bytes, spans: list[tuple[int, int]], findings: list[Finding]) -> bytes | None:
    """`body` with each MIME part holding a finding replaced by a short text note (every other byte kept); None when
    a part cannot be replaced on its own (the message is a single part)."""
    by_part: dict[int, Finding] = {}
    for f in findings:
        by_part.setdefault(f.part, f)
    if any(spans[i][0] == 0 for i in by_part):
        return None
    for i in sorted(by_part, reverse=True):
        f = by_part[i]
        top = f.path.split(" / ", 1)[0]
        note = (f"Content-Type: text/plain; charset=utf-8\r\nContent-Disposition: inline\r\n\r\n"
                f"The attachment {top!r} was removed by the mail gateway: {f.path} matched the rule {f.rule} "
                f"({f.why}).\r\n").encode("utf-8", "replace")
        body = body[:spans[i][0]] + note + body[spans[i][1]:]
    return body


def strongest(findings: list[Finding]) -> str | None:
    """The action for the whole message: reject, quarantine or strip (None when nothing matched)."""
    return max((f.action for f in findings), key=_RANK.__getitem__, default=None)
