"""Questions operators ask, answered from the tracking store: a message's events, search, queue, quarantine, charts.

Reads: the store `mailgate tracker` keeps (`Store`, SQLite or PostgreSQL; one SQL text for both). Emits: decoded
events (the very records of mail.events), message rows as dicts, queue rows shaped like `mailgate.ops.queue.view`,
and dashboard series. Every function is blocking; async callers run it in a thread.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from mailgate.ops.queue.view import QueueView, Waiting
from mailgate.ops.tracking.projector import PARTIAL, REFUSED, domain_of
from mailgate.ops.tracking.store import Store
from schemas import decode

STATES = ("queued", "deferred", "quarantined", "delivered", "bounced", "expired", "discarded", "rejected", "partial",
          "refused")
"""Values of `--state`: a message matches when one of its recipients is in that state ('queued' includes
recipients accepted and not yet routed); 'partial' matches the message state (some recipients delivered, the others
bounced or expired); 'refused' matches connections ingress refused before any transaction (ConnectionRefused) and
messages it refused at DATA after their virus scan (scan_at_data: MessageScanned with a reply)."""
SEARCH_COLUMNS = ("message_id", "direction", "mail_from", "recipients", "client_address", "inbound_gateway",
                  "outbound_gateway", "destination", "header_message_id", "subject", "spam_level", "spam_score",
                  "state", "attempts", "last_reply", "last_reason", "received_at", "finished_at", "size_bytes",
                  "dsn_request", "virus")
VIRUS_RESULTS = ("clean", "infected", "unscannable", "error")
"""Values of `--virus`: the virus scan's result (MessageScanned.result)."""


def events(store: Store, message_id: str) -> list:
    """The message's events as typed records, in the order they occurred (log order on ties)."""
    rows = store.rows("SELECT record FROM events WHERE message_id = ? ORDER BY occurred_at, part, kafka_offset",
                      (message_id,))
    return [decode(bytes(r["record"])) for r in rows]


def message(store: Store, message_id: str) -> dict | None:
    found = store.rows("SELECT * FROM messages WHERE message_id = ?", (message_id,))
    if not found:
        return None
    m = found[0]
    m["recipient_states"] = store.rows("SELECT recipient, state, reply, updated_at FROM recipients "
                                       "WHERE message_id = ? ORDER BY recipient", (message_id,))
    return m


@dataclass
class Search:
    """Filters of `mailgate search` and the admin page; unset ones do not filter. Times are epoch ms."""

    sender: str | None = None
    recipient: str | None = None
    domain: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    state: str | None = None
    client: str | None = None
    gateway: str | None = None
    header_message_id: str | None = None
    virus: str | None = None
    limit: int = 100
    offset: int = 0
    where: list[str] = field(default_factory=list, init=False)
    params: list = field(default_factory=list, init=False)

    def _add(self, sql: str, *params) -> None:
        self.where.append(sql)
        self.params.extend(params)

    def clauses(self) -> tuple[str, list]:
        self.where, self.params = [], []
        if self.sender is not None:
            self._add("lower(m.mail_from) = ?", self.sender.lower())
        if self.recipient:
            self._add("m.message_id IN (SELECT r.message_id FROM recipients r WHERE lower(r.recipient) = ?)",
                      self.recipient.lower())
        if self.domain:
            d = self.domain.lower().lstrip("@")
            self._add("(m.sender_domain = ? OR m.message_id IN (SELECT r.message_id FROM recipients r "
                      "WHERE r.domain = ?))", d, d)
        if self.since_ms is not None:
            self._add("m.received_at >= ?", self.since_ms)
        if self.until_ms is not None:
            self._add("m.received_at <= ?", self.until_ms)
        if self.state in (PARTIAL, REFUSED):
            self._add("m.state = ?", self.state)
        elif self.state:
            states = ("received", "queued") if self.state == "queued" else (self.state,)
            marks = ", ".join("?" for _ in states)
            self._add(f"EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.message_id AND r.state IN ({marks}))",
                      *states)
        if self.client:
            self._add("m.client_address = ?", self.client)
        if self.gateway:
            self._add("(m.inbound_gateway = ? OR m.outbound_gateway = ?)", self.gateway, self.gateway)
        if self.header_message_id:
            hid = self.header_message_id.strip()
            hid = hid if hid.startswith("<") else f"<{hid}>"
            self._add("m.header_message_id = ?", hid)
        if self.virus:
            self._add("(m.virus = ? OR m.virus LIKE ?)", self.virus, self.virus + ":%")
        return (" WHERE " + " AND ".join(self.where)) if self.where else "", self.params


def search(store: Store, s: Search) -> list[dict]:
    """Messages matching every filter, newest first, one page (`limit`, `offset`), each with `recipient_states`
    (recipient, state, reply per recipient)."""
    where, params = s.clauses()
    cols = ", ".join(f"m.{c}" for c in SEARCH_COLUMNS)
    rows = store.rows(f"SELECT {cols} FROM messages m{where} ORDER BY m.received_at DESC, m.message_id DESC "
                      f"LIMIT ? OFFSET ?", [*params, s.limit, s.offset])
    by_id = {r["message_id"]: r for r in rows}
    for r in rows:
        r["recipient_states"] = []
    if by_id:
        marks = ", ".join("?" for _ in by_id)
        for rc in store.rows(f"SELECT message_id, recipient, state, reply FROM recipients "
                             f"WHERE message_id IN ({marks}) ORDER BY message_id, recipient", list(by_id)):
            by_id[rc.pop("message_id")]["recipient_states"].append(rc)
    return rows


def count(store: Store, s: Search) -> int:
    where, params = s.clauses()
    return int(store.rows(f"SELECT count(*) AS n FROM messages m{where}", params)[0]["n"])


def waiting(store: Store) -> QueueView:
    """What `mailgate queue` shows, from the store: messages with routed recipients not yet finished."""
    view = QueueView()
    rows = store.rows("SELECT m.message_id, m.destination, m.tier, m.received_at, m.last_reason, r.recipient "
                      "FROM messages m JOIN recipients r ON r.message_id = m.message_id "
                      "WHERE m.state IN ('queued', 'deferred') AND r.state IN ('queued', 'deferred')")
    for r in rows:
        w = view.waiting.get(r["message_id"])
        if w is None:
            w = view.waiting[r["message_id"]] = Waiting(r["destination"] or "unrouted", r["tier"] or "active",
                                                        r["received_at"], set(), r["last_reason"] or "")
        w.recipients.add(r["recipient"])
    return view


def queue_list(store: Store, limit: int = 1000) -> list[dict]:
    """Per waiting message, oldest first: id, size, arrival, sender, destination, tier, reason, recipients."""
    rows = store.rows("SELECT m.message_id, m.size_bytes, m.received_at, m.mail_from, m.destination, m.tier, "
                      "m.last_reason, m.next_attempt_at, m.attempts, r.recipient, r.state, r.reply "
                      "FROM messages m JOIN recipients r ON r.message_id = m.message_id "
                      "WHERE m.state IN ('queued', 'deferred') AND r.state IN ('queued', 'deferred') "
                      "ORDER BY m.received_at, m.message_id, r.recipient")
    out: dict[str, dict] = {}
    for row in rows:
        m = out.get(row["message_id"])
        if m is None:
            if len(out) >= limit:
                break
            m = out[row["message_id"]] = {k: v for k, v in row.items() if k not in ("recipient", "state", "reply")}
            m["recipients"] = []
        m["recipients"].append({"recipient": row["recipient"], "state": row["state"], "reply": row["reply"]})
    return list(out.values())


def quarantined(store: Store) -> list[dict]:
    """Messages held in quarantine now (not released, not deleted), oldest first."""
    return store.rows("SELECT message_id, quarantined_at, quarantine_level, quarantine_score, quarantine_headers, "
                      "mail_from, recipients, inbound_gateway FROM messages WHERE quarantine = 'held' "
                      "ORDER BY quarantined_at, message_id")


def lag(store: Store, ends: dict[int, int], topic: str) -> int:
    """Records of `topic` not yet projected, given its partitions' end offsets."""
    pos = store.positions(topic)
    return sum(max(end - pos.get(p, 0), 0) for p, end in ends.items())


__all__ = ["STATES", "Search", "count", "dashboard", "domain_of", "events", "lag", "message", "quarantined",
           "queue_list", "search", "waiting"]


# --- dashboard -----------------------------------------------------------------------------------------------

PER_MINUTE = {"MessageReceived": "accepted", "MessageDelivered": "delivered", "DeliveryDeferred": "deferred",
              "MessageBounced": "bounced"}


def _percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def dashboard(store: Store, now_ms: int, minutes: int = 60) -> dict:
    """Series for the admin dashboard over the last `minutes`: events per minute, queue per destination, spam
    levels, and delivery latency (accepted -> delivered) percentiles per minute and overall, in seconds."""
    start = (now_ms // 60000 - minutes + 1) * 60000
    slots = [start + i * 60000 for i in range(minutes)]
    series = {name: [0] * minutes for name in PER_MINUTE.values()}
    types = list(PER_MINUTE)
    for r in store.rows(f"SELECT type, occurred_at / 60000 AS minute, count(*) AS n FROM events "
                        f"WHERE occurred_at >= ? AND type IN ({', '.join('?' for _ in types)}) "
                        f"GROUP BY type, occurred_at / 60000", [start, *types]):
        i = int(r["minute"]) * 60000 - start
        if 0 <= i // 60000 < minutes:
            series[PER_MINUTE[r["type"]]][i // 60000] += int(r["n"])
    by_minute: list[list[float]] = [[] for _ in slots]
    for r in store.rows("SELECT delivered_at, received_at FROM messages WHERE delivered_at >= ?", (start,)):
        by_minute[min((r["delivered_at"] - start) // 60000, minutes - 1)].append(
            max(r["delivered_at"] - r["received_at"], 0) / 1000)
    latency = {q: [_percentile(sorted(v), p) for v in by_minute] for q, p in (("p50", .5), ("p90", .9),
                                                                              ("p99", .99))}
    everything = sorted(x for v in by_minute for x in v)
    queue: dict[str, int] = {}
    for row in waiting(store).shape(now_ms):
        queue[row["destination"]] = queue.get(row["destination"], 0) + row["messages"]
    spam = {r["spam_level"]: int(r["n"]) for r in store.rows(
        "SELECT spam_level, count(*) AS n FROM messages WHERE received_at >= ? AND spam_level IS NOT NULL "
        "GROUP BY spam_level", (start,))}
    return {"minutes": slots, **series, "latency_s": latency,
            "latency_overall_s": {q: _percentile(everything, p) for q, p in (("p50", .5), ("p90", .9), ("p99", .99))},
            "delivered_count": len(everything),
            "queue": sorted(({"destination": d, "messages": n} for d, n in queue.items()),
                            key=lambda r: -r["messages"]),
            "spam_levels": {lvl: spam.get(lvl, 0) for lvl in ("none", "low", "medium", "high")}}
