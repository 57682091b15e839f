"""A message's events in words, for people: what happened, through which gateway, with which replies and scores.

Reads: typed event records (from the tracking store or the log). Emits: per event a dict with its time (epoch ms;
the page shows it in the reader's local time), its type, a one-line title and detail lines — never a Python repr.
"""
from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

from mailgate.mail.dsn_params import summary
from schemas import event_name


def _reply(rep) -> str:
    return " ".join(str(p) for p in (rep.code, rep.enhanced_code, rep.text) if p)


def _list(items) -> str:
    items = list(items)
    return ", ".join(items) if items else "no recipients"


def _domain(e) -> list[str]:
    """The inbound domain decision, as a line (none when no domain check was recorded)."""
    decision = getattr(e, "domain_decision", None)
    if decision is None:
        return []
    if e.domain_source == "web_service":
        source = "the SmarterMail server's domain list"
        if e.domain_list_fetched_at is not None:
            source += f" fetched at {format_datetime(datetime.fromtimestamp(e.domain_list_fetched_at / 1000, UTC))}"
        if e.domain_list_stale:
            source += " (stale: the web service could not be reached)"
    else:
        source = "the gateway's configured domain list"
    return [f"Domain {decision} by {source}"]


def _received(e) -> tuple[str, list[str]]:
    way = f"inbound through gateway {e.inbound_gateway}" if e.direction == "inbound" else "outbound (relay)"
    lines = [f"From <{e.mail_from}> to {_list(e.rcpt_to)}", f"Client {e.client_address} (HELO {e.client_helo or '-'})"
             + (f", TLS {e.tls}" if e.tls else "") + (", authenticated" if e.client_auth else ""),
             f"{e.size_bytes} bytes"]
    if e.subject:
        lines.append(f"Subject: {e.subject}")
    if e.header_message_id:
        lines.append(f"Message-ID: {e.header_message_id}")
    dsn = summary(getattr(e, "dsn_ret", None), getattr(e, "dsn_envid", None),
                  [(d.recipient, d.notify, d.orcpt) for d in getattr(e, "dsn_recipients", None) or []])
    if dsn:
        lines.append(f"DSN request: {dsn}")
    return f"Accepted {way}", lines + _domain(e)


def _classified(e) -> tuple[str, list[str]]:
    scores = [f"{s.scorer}: {'no answer (' + s.error + ')' if s.error else format(s.score, '.1f')}"
              + (f" × {s.weight:g}" if s.weight != 1 else "") for s in e.scores]
    level = "not spam" if e.level == "none" else f"spam level {e.level}"
    return (f"Spam check: {level}, score {e.total_score:.1f}",
            scores + ([f"Actions: {', '.join(e.actions)}"] if e.actions else []))


def _scanned(e) -> tuple[str, list[str]]:
    what = {"clean": "clean", "infected": f"infected: {', '.join(e.signatures)}" if e.signatures
            else "dangerous attachment",
            "unscannable": "unscannable", "error": "not scanned (no scanner answered)"}.get(e.result, e.result)
    lines = [f"Scanner {e.scanner or '-'}, {e.duration_ms} ms" + (f", {e.attempts} tries" if e.attempts > 1 else "")]
    if e.reason:
        lines.append(f"Reason: {e.reason}")
    lines += [f"Scanner failed: {f}" for f in e.failed_scanners]
    lines += [f"Attachment rule {f.rule}: {f.path} ({f.why}) → {f.action}" for f in e.findings]
    if e.body_signature_broken:
        lines.append("A part was stripped: a DKIM signature over the body no longer verifies")
    lines.append(f"Action: {e.action}")
    if e.scanned_at == "ingress":  # scan_at_data: a refusal at DATA (reply set), or a clean verdict reused
        lines.append(f"Scanned by ingress at DATA; replied {e.reply}" if e.reply
                     else "Scanned by ingress at DATA (the processor reused the verdict)")
    if e.reply:
        lines.append(f"From {e.mail_from or '<>'} at {e.client_address} to {_list(e.rcpt_to)}")
    return f"Virus scan: {what}", lines


def _quarantined(e) -> tuple[str, list[str]]:
    if e.level in ("virus", "unscannable"):
        return f"Quarantined by the virus scan ({e.level})", []
    return f"Quarantined (spam level {e.level}, score {e.total_score:.1f})", []


def _routed(e) -> tuple[str, list[str]]:
    r = e.route
    where = (f"the primary server of inbound gateway {r.destination}" if r.kind == "primary"
             else f"the MX hosts of {r.destination} (direct)" if r.kind == "direct"
             else f"outbound gateway {r.destination}")
    lines = [f"To {_list(e.recipients)}", f"Servers: {', '.join(r.hosts) or '-'}"]
    if len(r.candidates) > 1:
        lines.append(f"Gateways to choose from: {', '.join(r.candidates)}")
    if e.retry_tier >= 0:  # -1: before the first attempt
        lines.append(f"From retry tier {e.retry_tier}, attempt {e.attempt + 1}")
    if e.force_redeliver:
        lines.append("Forced redelivery (operator replay)")
    return f"Routed to {where}", lines


def _attempted(e) -> tuple[str, list[str]]:
    lines = [f"{r.recipient}: {_reply(r.reply)}" for r in e.results]
    if e.error:
        lines.append(f"Error: {e.error}")
    if e.tls_version:
        lines.append(f"TLS {e.tls_version} {e.tls_cipher or ''}".rstrip())
    lines.append(f"Took {e.duration_ms} ms")
    if e.mx_host:  # direct delivery: the recipient domain's MX host
        return f"Delivery attempt {e.attempt} to {e.gateway} via MX {e.mx_host} at {e.host}:{e.port}", lines
    via = f"gateway {e.gateway}" if e.gateway else "direct"
    return f"Delivery attempt {e.attempt} via {via} at {e.host}:{e.port}", lines


def _simple(title: str, detail):
    return lambda e: (title.format(e=e), detail(e))


_DESCRIBE = {
    "MessageReceived": _received,
    "MessageClassified": _classified,
    "MessageScanned": _scanned,
    "MessageRouted": _routed,
    "DeliveryAttempted": _attempted,
    "MessageDelivered": _simple("Delivered via {e.gateway} ({e.host})",
                                lambda e: [f"To {_list(e.recipients)}", f"Server said: {e.reply_text}"]
                                + (["Forced redelivery"] if e.forced else [])),
    "DeliveryDeferred": _simple("Deferred (attempt {e.attempt})",
                                lambda e: [f"For {_list(e.recipients)}", f"Reason: {e.reason}",
                                           f"Next try from {e.retry_topic}"]),
    "MessageBounced": _simple("Bounced", lambda e: [f"For {_list(e.recipients)}", f"Reason: {e.reason}"]
                              + ([f"DSN sent as {e.dsn_message_id}"] if e.dsn_message_id else [])),
    "MessageExpired": _simple("Expired in the queue",
                              lambda e: [f"For {_list(e.recipients)}", f"Last reason: {e.last_reason}"]),
    "MessageQuarantined": _quarantined,
    "QuarantineReleased": _simple("Released from quarantine by {e.operator}",
                                  lambda e: ["Held for malware: release confirmed"] if e.malware_confirmed else []),
    "MessageDiscarded": _simple("Discarded", lambda e: [f"Reason: {e.reason}"]
                                + ([f"By {e.operator}"] if e.operator else [])),
    "DuplicateSuppressed": _simple("Not delivered again (already delivered)",
                                   lambda e: [f"For {_list(e.recipients)}", f"Reason: {e.reason}"]),
    "RecipientRejected": _simple("Recipient {e.recipient} refused at {e.stage}",
                                 lambda e: [f"Replied {e.reply_code} {e.enhanced_code} ({e.reason})"] + _domain(e)),
    "RecipientVerified": _simple("Recipient {e.recipient} verified at {e.stage}",
                                 lambda e: [f"By {e.method}" + (" (cached)" if e.cached else "")
                                            + (" (stale answer)" if e.stale else "")]),
    "TempfailedMessageStored": _simple("Stored after the client was told 451 (it may send a second copy)",
                                       lambda e: [f"Client {e.client_address}"]),
}


def readable(e) -> dict:
    name = event_name(e)
    describe = _DESCRIBE.get(name)
    title, lines = describe(e) if describe else (name, [])
    return {"occurred_at": e.occurred_at, "type": name, "node": e.node, "title": title, "details": lines}
