"""The walk of a message's files and the attachment rules, on messages and archives made here: types from bytes,
names inside zip / 7z / tar / gzip, depth and encryption, the dangerous-files rule, and strip keeping every other
byte."""
from __future__ import annotations

import pytest

from mailgate.core.config import AttachmentRules
from mailgate.mail.antivirus.content import walk
from mailgate.mail.antivirus.filetypes import VBA_PROJECT, detect
from mailgate.mail.antivirus.rules import check, extensions, strip, strongest
from tests.support.attachments import MZ_EXECUTABLE, gzipped, message, nested_zip, seven_zip, tarred, zipped

OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100


def findings(*files, rules=None):
    w = walk(message(*files), 5, 10 ** 7)
    return [(f.path, f.why, f.action) for f in check(w.files, rules or AttachmentRules())]


@pytest.mark.parametrize("data, kind", [(MZ_EXECUTABLE, "exe"), (b"\x7fELF\x02\x01", "elf"), (zipped(("a", b"b")), "zip"),
                                        (seven_zip(("a", b"b")), "7z"), (gzipped(b"x"), "gzip"),
                                        (tarred(("a", b"b")), "tar"), (b"%PDF-1.7\n", "pdf"), (OLE2, "ole2"),
                                        (OLE2 + VBA_PROJECT, "office_macro"), (b"", "")],
                         ids=lambda v: v if isinstance(v, str) else None)
def test_types_come_from_the_bytes(data, kind):
    assert detect(data) == kind


def test_extensions_are_read_like_windows_does():
    assert extensions("Invoice.PDF  .exe") == ["pdf", "exe"] and extensions("noext") == [] and extensions(".bashrc") == ["bashrc"]


@pytest.mark.parametrize("file, why", [
    (("invoice.pdf.exe", b"text"), "double extension .pdf.exe"),
    (("notes.txt", MZ_EXECUTABLE), "type exe named .txt"),
    (("run.bat", b"@echo off"), "extension .bat"),
    (("budget.xlsm", b"x"), "extension .xlsm"),
    (("report.{3050F4D8-98B5-11CF-BB82-00AA00BDCE0B}", b"x"), "CLSID name"),
    (("old.doc", OLE2 + VBA_PROJECT), "type office_macro named .doc"),
])
def test_the_dangerous_files_rule(file, why):
    assert findings(file) == [(file[0], why, "quarantine")]


def test_inside_archives_and_harmless_files():
    assert findings(("a.zip", nested_zip(3, "setup.exe", b"x"))) == [
        ("a.zip / level2.zip / level1.zip / setup.exe", "extension .exe", "quarantine")]
    assert findings(("b.tar.gz", gzipped(tarred(("x/run.js", b"alert(1)"))))) == [
        ("b.tar.gz / b.tar / x/run.js", "extension .js", "quarantine")]
    assert findings(("c.7z", seven_zip(("a/b.scr", b"x"))))[0][:2] == ("c.7z / a/b.scr", "extension .scr")
    assert findings(("report.pdf", b"%PDF-1.4\n"), ("data.zip", zipped(("a.csv", b"1,2")))) == []
    assert findings(("x.exe", b"x"), rules=AttachmentRules(dangerous_files=False)) == []


def test_own_rules_and_the_strongest_action():
    rules = AttachmentRules(rules=[{"name": "no_pdf", "types": ["pdf"], "action": "strip"},
                                   {"name": "locked", "encrypted": True, "action": "reject"}])
    got = findings(("a.pdf", b"%PDF-1.4\n"), ("b.exe", b"x"), rules=rules)
    assert got == [("a.pdf", "type pdf", "strip"), ("b.exe", "extension .exe", "quarantine")]
    w = walk(message(("a.7z", seven_zip(("s.txt", b"x"), password="pw"))), 5, 10 ** 7)
    assert strongest(check(w.files, rules)) == "reject" and w.unscannable == ["encrypted archive member a.7z / s.txt"]


def test_depth_limit_and_unpacked_size_make_the_message_unscannable():
    w = walk(message(("a.zip", nested_zip(3, "n.txt", b"x"))), 2, 10 ** 7)
    assert w.unscannable == ["archives nested deeper than 2 (a.zip / level2.zip / level1.zip)"]
    w = walk(message(("big.zip", zipped(("zeros", b"\0" * 200_000)))), 5, 100_000)
    assert w.unscannable == ["cannot open big.zip: more than 100000 bytes unpacked"]


def test_strip_replaces_only_the_matching_part():
    msg = message(("keep.txt", b"keep me\r\n"), ("drop.exe", b"x"))
    w = walk(msg, 5, 10 ** 7)
    out = strip(msg, w.spans, check(w.files, AttachmentRules()))
    assert out is not None
    before, after = msg.split(b"--=_b1\r\nContent-Type: application/octet-stream; name=\"drop.exe\"")[0], out
    assert after.startswith(before + b"--=_b1\r\nContent-Type: text/plain; charset=utf-8\r\n")
    assert b"'drop.exe' was removed by the mail gateway" in out and out.endswith(b"\r\n--=_b1--\r\n")
    single = b"Content-Type: application/octet-stream; name=\"a.exe\"\r\n\r\nMZ"
    w = walk(single, 5, 10 ** 7)
    assert strip(single, w.spans, check(w.files, AttachmentRules())) is None  # nothing would be left
