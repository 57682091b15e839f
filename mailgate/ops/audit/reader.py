"""Reading the audit log: the timeline of one message from `mail.events`, and a range reader for any topic.

Reads: `mail.events` (or any mailgate topic, for `events`, `queue` and `replay`) through `mailgate.core.topic_reader`
(group-less, so an operator tool never joins or disturbs a stage's consumer group). Emits: decoded events, or
lines / JSON objects for people. A record that does not decode is shown as such (`Undecodable`), never raised.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, AsyncIterator

from mailgate.core import topic_reader, topics
from mailgate.core.config import Config
from mailgate.core.topic_reader import Undecodable
from schemas import event_name, to_json_dict


async def read_topic(cfg: Config, topic: str, *, since_ms: int | None = None, from_offset: int | None = None,
                     until_ms: int | None = None, follow: bool = False) -> AsyncIterator[tuple[Any, Any]]:
    """`topic_reader.read_topic`, skipping records stamped after `until_ms` (Kafka record timestamp)."""
    async for r, e in topic_reader.read_topic(cfg, topic, since_ms=since_ms, from_offset=from_offset, follow=follow):
        if until_ms is None or r.timestamp <= until_ms:
            yield r, e


async def read_events(cfg: Config, message_id: str | None = None) -> list:
    """Every event in mail.events (of one message, if given), ordered by when it occurred."""
    key = message_id.encode() if message_id else None
    out = [e async for r, e in read_topic(cfg, topics.EVENTS) if key is None or r.key == key]
    return sorted(out, key=lambda e: getattr(e, "occurred_at", None) or getattr(e, "timestamp", 0))


def when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _reply(rep) -> str:
    return " ".join(str(p) for p in (rep.code, rep.enhanced_code, rep.text) if p)


def _details(e) -> str:
    """The fields worth a human's attention; SMTP replies and reasons spelled out in full."""
    name = event_name(e)
    if name == "DeliveryAttempted":
        mx = f" mx={e.mx_host}" if e.mx_host else ""  # direct delivery: the recipient domain's MX host
        parts = [f"attempt={e.attempt} via {e.gateway or '-'}{mx} {e.host}:{e.port}"]
        parts += [f"{r.recipient}: {_reply(r.reply)}" for r in e.results]
        if e.error:
            parts.append(f"error: {e.error}")
        if e.tls_version:
            parts.append(f"tls={e.tls_version}")
        return "; ".join(parts)
    if name == "DeliveryDeferred":
        return (f"attempt={e.attempt} {','.join(e.recipients)} reason: {e.reason}; "
                f"next attempt {when(e.next_attempt_at)} via {e.retry_topic}")
    if name == "MessageScanned":
        return scanned_details(e)
    d = to_json_dict(e)
    skip = {"type", "message_id", "occurred_at", "node", "body", "body_sha256"}
    return ", ".join(f"{k}={_value(k, v)}" for k, v in d.items() if k not in skip and _shown(v))


def scanned_details(e) -> str:
    """A virus scan's verdict in one line: the result (signatures, reason), scanner, time, action, findings."""
    what = (f"infected: {', '.join(e.signatures)}" if e.signatures else "dangerous attachment"
            ) if e.result == "infected" else e.result
    parts = [what + (f" ({e.reason})" if e.reason else ""),
             f"scanner {e.scanner or '-'} in {e.duration_ms} ms" + (f" after {e.attempts} tries" if e.attempts > 1
                                                                    else ""),
             f"action {e.action}"]
    parts += [f"failed: {f}" for f in e.failed_scanners]
    parts += [f"rule {f.rule}: {f.path} ({f.why}) -> {f.action}" for f in e.findings]
    if e.body_signature_broken:
        parts.append("a part was stripped: a DKIM signature over the body no longer verifies")
    if e.scanned_at == "ingress":  # scan_at_data: refused at DATA (reply set), or a clean verdict reused
        parts.append(f"at DATA: replied {e.reply}; from=<{e.mail_from}> client={e.client_address} "
                     f"to={','.join(e.rcpt_to)}" if e.reply else "scanned by ingress at DATA, verdict reused")
    return "; ".join(parts)


def _shown(v: Any) -> bool:
    """Whether a field is worth printing: not absent, empty or false (a zero is shown)."""
    return not (v is None or v is False or v == "" or v == [])


TIMES = ("_at", "not_before")
"""Fields holding epoch milliseconds, shown as times."""


def _value(key: str, v: Any) -> str:
    """A field's value for people: times as UTC times, lists comma-separated, records as (key=value ...)."""
    if isinstance(v, dict):
        return "(" + " ".join(f"{k}={_value(k, x)}" for k, x in v.items() if _shown(x)) + ")"
    if isinstance(v, list):
        return (" " if any(isinstance(x, dict) for x in v) else ",").join(_value(key, x) for x in v)
    if isinstance(v, int) and not isinstance(v, bool) and v > 0 and key.endswith(TIMES):
        return when(v)
    return str(v)


def describe(e, with_id: bool = False) -> str:
    if isinstance(e, Undecodable):
        return (f"{when(e.timestamp)}  {'UNDECODABLE':20} {e.topic}[{e.partition}]@{e.offset}: {e.reason}")
    mid = f" {getattr(e, 'message_id', None) or '-'}" if with_id else ""
    return f"{when(e.occurred_at)}  {event_name(e):20}{mid} [{e.node}] {_details(e)}"


def json_of(e) -> dict:
    if isinstance(e, Undecodable):
        return {"type": "Undecodable", "topic": e.topic, "partition": e.partition, "offset": e.offset,
                "timestamp": e.timestamp, "reason": e.reason}
    return to_json_dict(e)


__all__ = ["Undecodable", "json_of", "describe", "read_events", "read_topic", "when"]
