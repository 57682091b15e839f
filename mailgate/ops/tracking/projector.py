"""The projection of mail.events into the tracking store: one row per message, one per recipient, and the events.

Reads: batches of (partition, offset, record bytes) from `mail.events`, and the rows those records touch. Emits: in
one store transaction per batch, the updated rows, the events (Avro bytes as logged, so a trace from the store
reads exactly what the log holds) and the next offset per partition. A record below the stored position of its
partition was projected before and is skipped, so replaying any range changes nothing; a rebalance in the middle
of a batch cannot apply a record twice either, since the position check runs inside the writing transaction.

Recipient states: received (accepted, not yet routed), queued (routed, waiting in mail.outbound), deferred,
quarantined, then delivered / bounced / expired / discarded / rejected. The message's state is the least finished
of its recipients' (queued, deferred, quarantined); once none waits, `partial` when some recipients were delivered
and others bounced or expired (the sender got a DSN for those only), else the most telling final one (bounced,
expired, discarded, delivered, rejected: a recipient refused at RCPT time was answered in the SMTP session). A
connection refused before any transaction (ConnectionRefused) is a row of its own with no recipients, state
`refused`, its client address and reply: `mailgate search --client IP` lists it; so is a message ingress refused
at DATA after its virus scan (a MessageScanned with a reply: scan_at_data), with its sender and recipients. Queue
fields (destination, tier, reason) follow `mailgate.ops.queue.view.QueueView`'s rules.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable

from mailgate.core import topics
from mailgate.mail.dsn_params import summary
from mailgate.ops.tracking.store import Store
from schemas import UndecodableRecord
from schemas.codec import decode_fields

MESSAGE_COLUMNS = (
    "message_id", "direction", "mail_from", "sender_domain", "recipients", "client_address", "client_helo", "tls",
    "size_bytes", "header_message_id", "subject", "inbound_gateway", "outbound_gateway", "route_kind",
    "destination", "relay_host", "spam_level", "spam_score", "spam_actions", "spam_scores", "state", "attempts",
    "last_reply", "last_reason", "tier", "next_attempt_at", "received_at", "routed_at", "delivered_at",
    "finished_at", "updated_at", "quarantine", "quarantine_level", "quarantine_score", "quarantine_headers",
    "quarantined_at", "dsn_request", "virus")
PENDING = ("received", "queued", "deferred", "quarantined")
WAITING = ("queued", "deferred")
"""Recipient states that `mailgate queue` counts (routed and not finished)."""
FINAL_ORDER = ("bounced", "expired", "discarded", "delivered", "rejected")
REFUSED = "refused"
"""The state of a connection ingress refused before any transaction (ConnectionRefused): a row with no recipients."""
FAILED = ("bounced", "expired")
PARTIAL = "partial"
"""Message state when, with no recipient waiting, some were delivered and others FAILED."""
ACTIVE_TIER = "active"



def upsert_message_sql(columns: tuple[str, ...]) -> str:
    return (f"INSERT INTO messages ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)}) "
            "ON CONFLICT (message_id) DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in columns[1:]))


_UPSERT_MESSAGE = upsert_message_sql(MESSAGE_COLUMNS)
_UPSERT_RECIPIENT = ("INSERT INTO recipients (message_id, recipient, domain, state, reply, updated_at) "
                     "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (message_id, recipient) DO UPDATE SET "
                     "state = excluded.state, reply = excluded.reply, updated_at = excluded.updated_at")
_INSERT_EVENT = ("INSERT INTO events (part, kafka_offset, message_id, type, occurred_at, record) "
                 "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (part, kafka_offset) DO NOTHING")


def domain_of(address: str | None) -> str:
    return address.rpartition("@")[2].lower() if address and "@" in address else ""


def row_state(m: dict, rc: dict[str, list]) -> str:
    """A row's state: its recipients', or `refused` for a refused connection (it has none) or a message refused at
    DATA (its only recipient rows are those refused at RCPT)."""
    if m.get("state") == REFUSED and all(s == "rejected" for s, _, _ in rc.values()):
        return REFUSED
    return message_state(s for s, _, _ in rc.values())


def message_state(states: Iterable[str]) -> str:
    seen = set(states)
    if seen & {"received", "queued"}:
        return "queued"
    for pending in ("deferred", "quarantined"):
        if pending in seen:
            return pending
    if "delivered" in seen and seen.intersection(FAILED):
        return PARTIAL
    for final in FINAL_ORDER:
        if final in seen:
            return final
    return "queued"


class Batch:
    """The rows one batch touches, loaded once, changed in memory by the events, written back together."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.messages: dict[str, dict] = {}
        self.recipients: dict[str, dict[str, list]] = {}
        self.events: list[tuple] = []
        self.dirty: set[str] = set()

    def load(self, message_ids: set[str]) -> None:
        ids = sorted(message_ids - self.messages.keys())
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            marks = ", ".join("?" for _ in chunk)
            for row in self.store.rows(f"SELECT * FROM messages WHERE message_id IN ({marks})", chunk):
                self.messages[row["message_id"]] = row
            for r in self.store.rows(f"SELECT message_id, recipient, state, reply, updated_at FROM recipients "
                                     f"WHERE message_id IN ({marks})", chunk):
                self.recipients.setdefault(r["message_id"], {})[r["recipient"]] = [r["state"], r["reply"],
                                                                                    r["updated_at"]]

    def message(self, mid: str, at: int) -> tuple[dict, dict[str, list]]:
        m = self.messages.get(mid)
        if m is None:
            m = self.messages[mid] = dict.fromkeys(MESSAGE_COLUMNS)
            m.update(message_id=mid, state="queued", attempts=0, received_at=at)
        self.dirty.add(mid)
        return m, self.recipients.setdefault(mid, {})

    def write(self) -> None:
        rows, rcpts = [], []
        for mid in self.dirty:
            m, rc = self.messages[mid], self.recipients.get(mid, {})
            m["state"] = row_state(m, rc)
            rows.append(tuple(m[c] for c in MESSAGE_COLUMNS))
            rcpts += [(mid, r, domain_of(r), s, reply, at) for r, (s, reply, at) in rc.items()]
        self.store.many(_UPSERT_MESSAGE, rows)
        self.store.many(_UPSERT_RECIPIENT, rcpts)
        self.store.many(_INSERT_EVENT, self.events)


def project(store: Store, records: list[tuple[int, int, bytes | None]], topic: str = topics.EVENTS) -> int:
    """Apply one batch of (partition, offset, value) in log order per partition; the number of events applied."""
    with store.transaction():
        positions = store.positions(topic)
        fresh = [(p, o, v) for p, o, v in records if o >= positions.get(p, 0)]
        decoded = []
        for p, o, v in fresh:
            try:
                name, e = decode_fields(v)
            except UndecodableRecord:
                continue  # advances the position; `mailgate events` shows it
            if e.get("message_id"):
                decoded.append((p, o, v, name, e))
        batch = Batch(store)
        batch.load({e["message_id"] for _, _, _, _, e in decoded})
        for p, o, v, name, e in decoded:
            apply(batch, name, e)
            batch.events.append((p, o, e["message_id"], name, e["occurred_at"], v))
        batch.write()
        ends = dict(positions)
        for p, o, _ in fresh:
            ends[p] = max(ends.get(p, 0), o + 1)
        store.save_positions(topic, {p: o for p, o in ends.items() if o != positions.get(p)})
    return len(decoded)


def apply(batch: Batch, name: str, e: dict) -> None:
    """Fold one event (its fields as plain data, see `schemas.codec.decode_fields`) into its message's rows."""
    handler = HANDLERS.get(name)
    at = e["occurred_at"]
    m, rc = batch.message(e["message_id"], at)
    m["updated_at"] = max(m["updated_at"] or 0, at)
    if handler is not None:
        handler(m, rc, e)
    state = row_state(m, rc)
    m["finished_at"] = None if state in PENDING else (m["finished_at"] or at)


def fold(events: Iterable[tuple[str, dict]]) -> tuple[str, dict[str, list]]:
    """One message's state and its recipients' [state, reply, at] from its events alone (no store): what the
    projection keeps, for `trace --from-log` to print the same summary as the store."""
    batch = Batch(None)  # type: ignore[arg-type]  # never loads or writes
    rc: dict[str, list] = {}
    for name, e in events:
        apply(batch, name, e)
        rc = batch.recipients[e["message_id"]]
    return message_state(s for s, _, _ in rc.values()), rc


def _set(rc: dict[str, list], recipients: Iterable[str], state: str, reply: str | None, at: int,
         only: tuple[str, ...] | None = None) -> None:
    for r in recipients:
        cur = rc.get(r)
        if only is not None and (cur is None or cur[0] not in only):
            continue
        rc[r] = [state, reply if reply is not None else (cur[1] if cur else None), at]


def _waiting(rc: dict[str, list]) -> bool:
    return any(s in WAITING for s, _, _ in rc.values())


def _received(m: dict, rc: dict, e: dict) -> None:
    m.update(direction=e["direction"], mail_from=e["mail_from"], sender_domain=domain_of(e["mail_from"]),
             recipients=", ".join(e["rcpt_to"]), client_address=e["client_address"], client_helo=e["client_helo"],
             tls=e["tls"], size_bytes=e["size_bytes"], header_message_id=e.get("header_message_id"),
             subject=e.get("subject"), inbound_gateway=e["inbound_gateway"], received_at=e["occurred_at"],
             dsn_request=summary(e.get("dsn_ret"), e.get("dsn_envid"),
                                 [(d["recipient"], d["notify"], d["orcpt"]) for d in e.get("dsn_recipients") or []]))
    for r in e["rcpt_to"]:
        rc.setdefault(r, ["received", None, e["occurred_at"]])


def _classified(m: dict, rc: dict, e: dict) -> None:
    m.update(spam_level=e["level"], spam_score=e["total_score"], spam_actions=",".join(e["actions"]),
             spam_scores=json.dumps(e["scores"]))


def _scanned(m: dict, rc: dict, e: dict) -> None:
    detail = (", ".join(e["signatures"]) or ", ".join(f"{f['rule']} {f['path']}" for f in e["findings"])
              if e["result"] == "infected" else e["reason"])
    m["virus"] = f"{e['result']}: {detail}" if detail else e["result"]
    if e.get("reply"):  # refused at DATA by ingress (scan_at_data): a refused row, like a ConnectionRefused one
        m.update(client_address=e["client_address"], mail_from=e["mail_from"],
                 sender_domain=domain_of(e["mail_from"]), recipients=", ".join(e["rcpt_to"]), state=REFUSED,
                 last_reply=e["reply"], last_reason=f"virus scan at DATA: {e['action']}",
                 received_at=e["occurred_at"])


def _routed(m: dict, rc: dict, e: dict) -> None:
    route = e["route"]
    if not _waiting(rc):  # a new wait starts (QueueView: a new Waiting)
        m.update(destination=route["destination"] or "unrouted", last_reason="",
                 tier=ACTIVE_TIER if e["retry_tier"] < 0 else f"retry tier {e['retry_tier']}")
    m.update(route_kind=route["kind"], routed_at=e["occurred_at"], direction=e["direction"],
             next_attempt_at=e["not_before"])
    if m["mail_from"] is None:
        m.update(mail_from=e["mail_from"], sender_domain=domain_of(e["mail_from"]))
    if m["recipients"] is None:
        m["recipients"] = ", ".join(e["recipients"])
    # The processor's copy of MessageRouted can land in mail.events after egress's outcome for it (two producers):
    # an outcome that happened later than this routing stands.
    later = {r for r in e["recipients"] if r in rc and rc[r][0] not in PENDING and rc[r][2] > e["occurred_at"]}
    _set(rc, [r for r in e["recipients"] if r not in later], "queued", None, e["occurred_at"])


def _deferred(m: dict, rc: dict, e: dict) -> None:
    if _waiting(rc):
        m.update(tier=e["retry_topic"].removeprefix("mail."), last_reason=e["reason"])
    m.update(next_attempt_at=e["next_attempt_at"], attempts=max(m["attempts"] or 0, e["attempt"]))
    _set(rc, e["recipients"], "deferred", e["reason"], e["occurred_at"], only=WAITING)


def _reply(rep: dict) -> str:
    return " ".join(str(p) for p in (rep["code"], rep["enhanced_code"], rep["text"]) if p)


def _attempted(m: dict, rc: dict, e: dict) -> None:
    m.update(attempts=max(m["attempts"] or 0, e["attempt"]), relay_host=f"{e['host']}:{e['port']}")
    if m["direction"] != "inbound" and e["gateway"]:
        m["outbound_gateway"] = e["gateway"]
    replies = [f"{r['recipient']}: {_reply(r['reply'])}" for r in e["results"]]
    m["last_reply"] = "; ".join(replies) if replies else (e["error"] or None)
    for r in e["results"]:
        if r["recipient"] in rc:
            rc[r["recipient"]][1] = _reply(r["reply"])


def _delivered(m: dict, rc: dict, e: dict) -> None:
    m.update(delivered_at=max(m["delivered_at"] or 0, e["occurred_at"]), last_reply=e["reply_text"],
             attempts=max(m["attempts"] or 0, e["attempt"]))
    if m["direction"] != "inbound" and e["gateway"]:
        m["outbound_gateway"] = e["gateway"]
    _set(rc, e["recipients"], "delivered", e["reply_text"], e["occurred_at"])


def _bounced(m: dict, rc: dict, e: dict) -> None:
    m["last_reason"] = e["reason"]
    _set(rc, e["recipients"], "bounced", e["reason"], e["occurred_at"])


def _expired(m: dict, rc: dict, e: dict) -> None:
    m["last_reason"] = e["last_reason"]
    _set(rc, e["recipients"], "expired", e["last_reason"], e["occurred_at"])


def _discarded(m: dict, rc: dict, e: dict) -> None:
    m["last_reason"] = e["reason"]
    if m["quarantine"] == "held":
        m["quarantine"] = "deleted"
    _set(rc, list(rc), "discarded", e["reason"], e["occurred_at"], only=PENDING)


def _duplicate(m: dict, rc: dict, e: dict) -> None:
    _set(rc, e["recipients"], "delivered", None, e["occurred_at"])


def _quarantined(m: dict, rc: dict, e: dict) -> None:
    m.update(quarantine="held", quarantine_level=e["level"], quarantine_score=e["total_score"],
             quarantine_headers=e["headers"], quarantined_at=e["occurred_at"])
    _set(rc, list(rc), "quarantined", None, e["occurred_at"], only=PENDING)


def _released(m: dict, rc: dict, e: dict) -> None:
    m["quarantine"] = "released"
    _set(rc, list(rc), "received", None, e["occurred_at"], only=("quarantined",))


def _rejected(m: dict, rc: dict, e: dict) -> None:
    if m["mail_from"] is None:
        m.update(mail_from=e["mail_from"], sender_domain=domain_of(e["mail_from"]),
                 client_address=e["client_address"])
    rc[e["recipient"]] = ["rejected", f"{e['reply_code']} {e['enhanced_code']} {e['reason']}", e["occurred_at"]]


def _refused(m: dict, rc: dict, e: dict) -> None:
    m.update(client_address=e["client_address"], state=REFUSED, last_reply=e["reply"], last_reason=e["reason"],
             received_at=e["occurred_at"])


def _tempfailed(m: dict, rc: dict, e: dict) -> None:
    if m["mail_from"] is None:
        m.update(mail_from=e["mail_from"], sender_domain=domain_of(e["mail_from"]),
                 client_address=e["client_address"])


HANDLERS: dict[str, Callable[[dict, dict, dict], None]] = {
    "MessageReceived": _received, "MessageClassified": _classified, "MessageScanned": _scanned,
    "MessageRouted": _routed,
    "DeliveryDeferred": _deferred, "DeliveryAttempted": _attempted, "MessageDelivered": _delivered,
    "MessageBounced": _bounced, "MessageExpired": _expired, "MessageDiscarded": _discarded,
    "DuplicateSuppressed": _duplicate, "MessageQuarantined": _quarantined, "QuarantineReleased": _released,
    "RecipientRejected": _rejected, "TempfailedMessageStored": _tempfailed, "ConnectionRefused": _refused,
}
"""What each event type changes; types not listed (RecipientVerified, ...) are kept as events only."""
