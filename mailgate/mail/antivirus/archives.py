"""What is inside an archive: its members' names and bytes, and whether it is encrypted — zip, 7z, tar and gzip.

Reads: one file's bytes and the type `filetypes.detect` gave it. Emits: `Opened` (the members, each with its name,
bytes and encryption flag) or raises `CannotOpen` with the reason. Never writes to disk. Bounded: at most
`max_members` members and `max_bytes` unpacked bytes per archive; past either it is `CannotOpen` (the caller makes
the message unscannable). 7z members are listed by name and encryption only (their bytes are not unpacked here;
clamd unpacks 7z itself).
"""
from __future__ import annotations

import io
import tarfile
import zipfile
import zlib
from dataclasses import dataclass

ARCHIVE_TYPES = ("zip", "7z", "tar", "gzip")


class CannotOpen(Exception):
    """The archive could not be read (damaged, too large unpacked, too many members)."""


@dataclass(frozen=True)
class Member:
    name: str
    data: bytes | None
    """None when not unpacked (encrypted, 7z)."""
    encrypted: bool = False


@dataclass(frozen=True)
class Opened:
    members: list[Member]
    encrypted: bool
    """The archive itself (its header, or any member) is encrypted."""


def open_archive(kind: str, data: bytes, max_members: int, max_bytes: int) -> Opened:
    try:
        if kind == "zip":
            return _zip(data, max_members, max_bytes)
        if kind == "7z":
            return _7z(data, max_members)
        if kind == "tar":
            return _tar(data, max_members, max_bytes)
        if kind == "gzip":
            return _gzip(data, max_bytes)
    except CannotOpen:
        raise
    except Exception as err:  # the libraries raise many kinds on damaged input
        raise CannotOpen(f"damaged {kind} ({type(err).__name__})") from None
    raise CannotOpen(f"not an archive type: {kind}")


def _budget(members: int, used: int, size: int, max_members: int, max_bytes: int) -> None:
    if members > max_members:
        raise CannotOpen(f"more than {max_members} members")
    if used + size > max_bytes:
        raise CannotOpen(f"more than {max_bytes} bytes unpacked")


def _zip(data: bytes, max_members: int, max_bytes: int) -> Opened:
    members, used = [], 0
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        for i, info in enumerate(z.infolist(), 1):
            if info.is_dir():
                continue
            encrypted = bool(info.flag_bits & 0x1)
            _budget(i, used, 0 if encrypted else info.file_size, max_members, max_bytes)
            body = None if encrypted else z.read(info)
            used += len(body or b"")
            members.append(Member(info.filename, body, encrypted))
    return Opened(members, any(m.encrypted for m in members))


def _7z(data: bytes, max_members: int) -> Opened:
    import py7zr  # only when a 7z is met
    try:
        with py7zr.SevenZipFile(io.BytesIO(data)) as z:
            encrypted = bool(z.needs_password())
            names = [f.filename for f in z.list() if not f.is_directory]
    except py7zr.exceptions.PasswordRequired:
        return Opened([], True)  # the header itself is encrypted: not even the names can be read
    if len(names) > max_members:
        raise CannotOpen(f"more than {max_members} members")
    return Opened([Member(n, None, encrypted) for n in names], encrypted)


def _tar(data: bytes, max_members: int, max_bytes: int) -> Opened:
    members, used = [], 0
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as t:
        for i, info in enumerate(t, 1):
            if not info.isfile():
                continue
            _budget(i, used, info.size, max_members, max_bytes)
            f = t.extractfile(info)
            body = f.read() if f is not None else b""
            used += len(body)
            members.append(Member(info.name, body))
    return Opened(members, False)


def _gzip(data: bytes, max_bytes: int) -> Opened:
    d = zlib.decompressobj(wbits=31)
    body = d.decompress(data, max_bytes + 1)
    if len(body) > max_bytes:
        raise CannotOpen(f"more than {max_bytes} bytes unpacked")
    name = ""
    if len(data) > 10 and data[3] & 0x08:  # FNAME: the original file name, NUL-terminated, after the header
        start = 10 + (2 + int.from_bytes(data[10:12], "little") if data[3] & 0x04 else 0)
        end = data.find(b"\0", start)
        name = data[start:end].decode("latin-1") if end > start else ""
    return Opened([Member(name, body)], False)
