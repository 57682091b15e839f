"""Every file a message carries: each MIME leaf part and, inside archives, each member, with its name and real type.

Reads: the raw message and the walk's limits (`AntivirusConfig.archive_max_depth`, members and bytes per archive).
Emits: a `Walk`: the files (`File`: where it is, its name, the type read from its bytes, its depth, encrypted or not,
the MIME part it came from) and the reasons the message cannot be scanned whole (an encrypted archive; archives
nested deeper than the limit; an archive that cannot be opened). Depth 0 is a MIME part, 1 a member of an archive
attached, 2 a member of an archive inside that, and so on.
"""
from __future__ import annotations

import email
import email.message
import email.policy
import email.utils
from dataclasses import dataclass, field

from mailgate.mail.antivirus.archives import ARCHIVE_TYPES, CannotOpen, open_archive
from mailgate.mail.antivirus.filetypes import detect
from mailgate.mail.antivirus.mime_raw import leaf_ranges

MAX_MEMBERS = 1000
"""Members read per archive (Proxmox's limit)."""
SEPARATOR = " / "


@dataclass(frozen=True)
class File:
    path: str
    """The MIME part's file name (or `part N`), then each archive member, joined by ' / '."""
    name: str
    """The file's own name ('' when it has none)."""
    type: str
    """Read from its bytes (filetypes.detect); '' when unknown or not unpacked."""
    depth: int
    encrypted: bool
    part: int
    """Index of the MIME leaf part it is in (0 first), for strip."""


@dataclass
class Walk:
    files: list[File] = field(default_factory=list)
    unscannable: list[str] = field(default_factory=list)
    spans: list[tuple[int, int]] = field(default_factory=list)
    """Each MIME leaf part's byte range in the message (File.part indexes it)."""


def mime_parts(body: bytes) -> list[tuple[tuple[int, int], email.message.Message]]:
    """The message's leaf parts in order (message/rfc822 parts are walked into): each part's byte range in `body`
    (mime_raw.leaf_ranges) and the part parsed."""
    return [((a, b), email.message_from_bytes(body[a:b], policy=email.policy.compat32))
            for a, b in leaf_ranges(body)]


def part_name(part: email.message.Message) -> str:
    name = part.get_filename() or part.get_param("name") or ""
    if isinstance(name, tuple):  # RFC 2231 parameters not decoded by get_param
        name = email.utils.collapse_rfc2231_value(name)
    return str(name).strip()


def walk(body: bytes, max_depth: int, max_bytes: int) -> Walk:
    out = Walk()
    for i, (span, part) in enumerate(mime_parts(body)):
        out.spans.append(span)
        data = part.get_payload(decode=True)
        if not isinstance(data, bytes):
            data = b""
        name = part_name(part)
        _visit(out, name or f"part {i + 1}", name, data, 0, False, i, max_depth, max_bytes)
    return out


def _visit(out: Walk, path: str, name: str, data: bytes | None, depth: int, encrypted: bool, part: int,
           max_depth: int, max_bytes: int) -> None:
    kind = detect(data) if data else ""
    out.files.append(File(path, name, kind, depth, encrypted, part))
    if encrypted:
        out.unscannable.append(f"encrypted archive member {path}")
        return
    if data is None or kind not in ARCHIVE_TYPES:
        return
    if depth >= max_depth:
        out.unscannable.append(f"archives nested deeper than {max_depth} ({path})")
        return
    try:
        opened = open_archive(kind, data, MAX_MEMBERS, max_bytes)
    except CannotOpen as err:
        out.unscannable.append(f"cannot open {path}: {err}")
        return
    if opened.encrypted and not opened.members:
        out.unscannable.append(f"encrypted archive {path}")
    for m in opened.members:
        inner = m.name or _gunzipped_name(name)
        _visit(out, path + SEPARATOR + (inner or "(unnamed)"), inner.rsplit("/", 1)[-1], m.data, depth + 1,
               m.encrypted, part, max_depth, max_bytes)


def _gunzipped_name(name: str) -> str:
    """The name of a gzip's content when the gzip stored none: its own name without .gz (.tgz: .tar)."""
    low = name.lower()
    return name[:-3] if low.endswith(".gz") else name[:-4] + ".tar" if low.endswith(".tgz") else ""
