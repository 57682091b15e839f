"""A file's real type from its first bytes, whatever its name says.

Reads: a file's bytes. Emits: a short type name: the kinds the attachment rules care about are recognised here by
their magic numbers (executables, shortcuts, archives, Office containers); anything else is named by puremagic's
best match (its extension, without the dot), or '' when nothing matches.
"""
from __future__ import annotations

import puremagic

_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"MZ", "exe"),                                  # DOS/Windows PE executable, DLL, SCR, CPL
    (0, b"\x7fELF", "elf"),
    (0, b"\xcf\xfa\xed\xfe", "macho"), (0, b"\xce\xfa\xed\xfe", "macho"), (0, b"\xca\xfe\xba\xbe", "macho"),
    (0, b"L\x00\x00\x00\x01\x14\x02\x00", "lnk"),       # Windows shortcut (MS-SHLLINK)
    (0, b"PK\x03\x04", "zip"), (0, b"PK\x05\x06", "zip"),
    (0, b"7z\xbc\xaf\x27\x1c", "7z"),
    (0, b"\x1f\x8b", "gzip"),
    (0, b"Rar!\x1a\x07", "rar"),
    (257, b"ustar", "tar"),
    (0, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "ole2"),    # .doc/.xls/.ppt/.msi (Compound File Binary)
    (0, b"%PDF-", "pdf"),
    (0, b"MSCF", "cab"),
    (0, b"#!", "script"),
)


VBA_PROJECT = "_VBA_PROJECT".encode("utf-16-le")
"""The stream name of a VBA macro project inside an OLE2 file (a .doc/.xls with macros, or the vbaProject.bin of a
macro-enabled OOXML file)."""


def detect(data: bytes) -> str:
    """The type of `data`: one of the names above (`office_macro` for an OLE2 file with a VBA project), else
    puremagic's extension, else ''."""
    for offset, magic, name in _MAGIC:
        if data[offset:offset + len(magic)] == magic:
            return "office_macro" if name == "ole2" and VBA_PROJECT in data else name
    if not data:
        return ""
    try:
        return puremagic.from_string(data[:4096]).lstrip(".").lower()
    except (puremagic.PureError, ValueError):
        return ""
