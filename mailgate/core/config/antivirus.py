"""Configuration of virus scanning (`antivirus`, and `virus` on each inbound gateway): the clamd hosts, the scan's
limits, what happens when no scanner answers, and the actions for infected and unscannable mail."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from mailgate.core.config.base import Strict

VirusAction = Literal["quarantine", "discard", "bounce", "deliver_and_tag"]
"""quarantine: held in mail.quarantine, released only with an explicit confirmation; discard: dropped
(MessageDiscarded); bounce: a DSN to the sender, nothing delivered; deliver_and_tag: delivered with the verdict in a
header."""

_HEADER_NAME = r"^[!-9;-~]+$"


class ClamdScanner(Strict):
    """One clamd, reached by TCP (`host`, `port`) or by its Unix socket (`socket`)."""

    host: str = Field("127.0.0.1", min_length=1, description="clamd's address (its TCPAddr) for TCP.")
    port: int = Field(3310, ge=1, le=65535, description="clamd's TCPSocket.")
    socket: Path | None = Field(None, description="clamd's LocalSocket; when set, host and port are not used.")

    @property
    def name(self) -> str:
        """How events, logs and metrics name this scanner: `host:port` or `unix:/path`."""
        return f"unix:{self.socket}" if self.socket is not None else f"{self.host}:{self.port}"


AttachmentAction = Literal["reject", "quarantine", "strip"]
"""reject: refused at DATA with 554 5.7.1 when the gateway scans there (scan_at_data), else handled like infected
mail (the `infected` action); quarantine: held; strip: the MIME part replaced by a short text note, the rest
delivered (a DKIM signature over the body then no longer verifies, and MessageScanned says so)."""


class AttachmentRule(Strict):
    """Files (MIME parts, and members of archives to archive_max_depth) this rule matches: any of its conditions."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$", description="Named in events and replies.")
    types: list[str] = Field(default_factory=list, description="Types read from the bytes: exe, elf, macho, lnk, "
                             "office_macro, zip, 7z, tar, gzip, rar, cab, ole2, pdf, script, or puremagic's "
                             "extension names.")
    extensions: list[str] = Field(default_factory=list, description="File name extensions, without the dot (the "
                                  "last one of the name; for invoice.pdf.exe that is exe).")
    double_extension: bool = Field(False, description="Names with two extensions whose last is one of "
                                   "`extensions` (or, with none listed, of the dangerous ones): invoice.pdf.exe.")
    clsid_name: bool = Field(False, description="Names holding a Windows CLSID, such as "
                             "report.{3050F4D8-98B5-11CF-BB82-00AA00BDCE0B}, which hide the real type.")
    encrypted: bool = Field(False, description="Encrypted archives and their members.")
    action: AttachmentAction = Field("quarantine", description="What to do with a message carrying such a file.")

    @field_validator("types", "extensions")
    @classmethod
    def _lower(cls, v: list[str]) -> list[str]:
        return [x.strip().lower().lstrip(".") for x in v if x.strip()]


class AttachmentRules(Strict):
    dangerous_files: bool = Field(
        True, description="The built-in dangerous-files rule (executables, scripts, shortcuts, macro-enabled Office "
        "files by type or extension, double extensions, CLSID names; the lists are in "
        "mailgate/mail/antivirus/rules.py).")
    dangerous_action: AttachmentAction = Field("quarantine", description="The built-in rule's action.")
    rules: list[AttachmentRule] = Field(default_factory=list, description="Further rules, checked after the "
                                                                          "built-in one.")


class VirusActions(Strict):
    """What to do with a message the scan found infected or could not scan, for one inbound gateway (or, under
    `antivirus.outbound`, for outbound mail)."""

    infected: VirusAction = Field("quarantine", description="A scanner found a signature (ClamAV's FOUND).")
    unscannable: VirusAction = Field(
        "quarantine", description="The message could not be scanned whole: larger than `antivirus.max_scan_bytes` "
        "(or clamd's StreamMaxLength), archives nested deeper than `antivirus.archive_max_depth`, an encrypted "
        "archive, or clamd's own limits (Heuristics.Limits.Exceeded, Heuristics.Encrypted). Never treated as clean.")
    scan_at_data: bool = Field(
        False, description="Ingress asks the scanner before it answers DATA: infected mail is refused with 554 "
        "5.7.1 naming the signature (nothing is accepted, so there is no backscatter), and with no scanner answering "
        "under when_unavailable tempfail the client gets 451 4.3.0. Mail accepted is scanned again by the processor, "
        "which applies the other actions.")
    tag_header: str = Field("X-Virus-Status", min_length=1, max_length=76, pattern=_HEADER_NAME,
                            description="The header deliver_and_tag sets (and the accept policy's verdict uses).")
    attachments: AttachmentRules = Field(default_factory=AttachmentRules,
                                         description="Rules on the files the message carries, by type and name.")


class AntivirusConfig(Strict):
    enabled: bool = Field(False, description="Scan mail with clamd (INSTREAM) in the processor, and at DATA for "
                                             "gateways with scan_at_data.")
    scanners: list[ClamdScanner] = Field(
        default_factory=lambda: [ClamdScanner()], min_length=1,
        description="clamd hosts, tried in this order; one that failed is tried after the others for "
                    "host_retry_after_s.")
    timeout_s: float = Field(30, gt=0, description="Longest one scan may take on one host (connect, send, "
                                                   "verdict); past it the next host is tried.")
    connect_timeout_s: float = Field(3, gt=0, description="Longest wait for a connection to one clamd host.")
    host_retry_after_s: float = Field(30, ge=0, description="How long a host that failed is asked only after the "
                                                            "others.")
    max_scan_bytes: int = Field(
        25 * 1024 * 1024, ge=1024, description="Messages larger than this are not sent to clamd and are "
        "unscannable (never clean). Keep it at or below clamd's StreamMaxLength (ClamAV's default 100M).")
    chunk_bytes: int = Field(64 * 1024, ge=1024, le=16 * 1024 * 1024, description="Size of INSTREAM chunks.")
    archive_max_depth: int = Field(
        5, ge=1, le=32, description="Archives (zip, 7z, tar, gzip) are opened to this depth; content nested deeper "
        "makes the message unscannable.")
    when_unavailable: Literal["tempfail", "accept"] = Field(
        "tempfail", description="No scanner answers: tempfail: the processor retries with back-off and the message "
        "waits in Kafka (never passed unscanned), and scan_at_data answers 451 4.3.0; accept: delivered, with the "
        "verdict `error` in MessageScanned and an `Unscanned` tag header (Proxmox's fail-open).")
    retry_first_s: float = Field(1.0, gt=0, description="tempfail: first wait before scanning again; doubled "
                                                        "after each failure.")
    retry_max_s: float = Field(30.0, gt=0, description="tempfail: longest wait between two tries.")
    scan_outbound: Literal["authenticated", "all", "none"] = Field(
        "authenticated", description="Which outbound mail is scanned: that of SMTP AUTH logins (a compromised "
        "account may send malware), all of it (relay networks too), or none.")
    outbound: VirusActions = Field(default_factory=VirusActions, description="The actions for scanned outbound "
                                                                             "mail.")

    @field_validator("scanners")
    @classmethod
    def _unique(cls, v: list[ClamdScanner]) -> list[ClamdScanner]:
        names = [s.name for s in v]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"scanner(s) listed twice: {', '.join(dupes)}")
        return v
