"""Messages with attachments and archives, made in the test: MIME messages with base64 parts, zip (also nested and
encrypted, the latter by bsdtar), tar, gzip and 7z (py7zr)."""
from __future__ import annotations

import base64
import gzip
import io
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
from pathlib import Path

import py7zr

BSDTAR = shutil.which("bsdtar")
BSDTAR_MISSING = "bsdtar is not installed (peer missing: libarchive-tools)"


def message(*files: tuple[str, bytes], subject: str = "files", text: bytes = b"Please see the attached file.\r\n",
            message_id: str = "<att-1@sender.test>") -> bytes:
    """A multipart/mixed message from alice@sender.test with a text part and `files` (name, bytes) as base64."""
    head = (b"Date: Wed, 26 Nov 2025 14:00:00 +0000\r\nFrom: Alice <alice@sender.test>\r\nTo: Bob <bob@example.test>"
            b"\r\nSubject: " + subject.encode() + b"\r\nMessage-ID: " + message_id.encode() + b"\r\nMIME-Version: 1.0"
            b"\r\nContent-Type: multipart/mixed; boundary=\"=_b1\"\r\n\r\n")
    body = b"--=_b1\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n" + text
    for name, data in files:
        body += (b"--=_b1\r\nContent-Type: application/octet-stream; name=\"" + name.encode() + b"\"\r\n"
                 b"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"" + name.encode()
                 + b"\"\r\n\r\n" + base64.encodebytes(data).replace(b"\n", b"\r\n"))
    return head + body + b"--=_b1--\r\n"


def zipped(*files: tuple[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files:
            z.writestr(name, data)
    return out.getvalue()


def nested_zip(depth: int, name: str, data: bytes) -> bytes:
    """`data` as `name` inside `depth` zips, each inside the next (depth 1: one zip)."""
    out = zipped((name, data))
    for level in range(2, depth + 1):
        out = zipped((f"level{level - 1}.zip", out))
    return out


def encrypted_zip(name: str, data: bytes, password: str = "secret") -> bytes:
    """A zip whose member is encrypted (traditional PKWARE encryption), made by bsdtar."""
    assert BSDTAR is not None, BSDTAR_MISSING
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / name).write_bytes(data)
        subprocess.run([BSDTAR, "--format", "zip", "--options", "zip:encryption=zipcrypt", "--passphrase", password,
                        "-cf", "out.zip", name], cwd=d, check=True, capture_output=True)
        return (Path(d) / "out.zip").read_bytes()


def seven_zip(*files: tuple[str, bytes], password: str | None = None) -> bytes:
    out = io.BytesIO()
    with py7zr.SevenZipFile(out, "w", password=password) as z:
        for name, data in files:
            z.writestr(data, name)
    return out.getvalue()


def tarred(*files: tuple[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as t:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return out.getvalue()


def gzipped(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


MZ_EXECUTABLE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 44 + b"\x80\x00\x00\x00" + (
    b"\x0e\x1f\xba\x0e\x00\xb4\t\xcd!\xb8\x01L\xcd!This program cannot be run in DOS mode.\r\r\n$" + b"\x00" * 40)
"""The first bytes of a Windows executable (DOS header and stub): harmless, and an `exe` by its bytes."""
