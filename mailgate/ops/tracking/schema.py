"""The tracking store's schema as ordered migrations, in SQL that SQLite and PostgreSQL both accept.

Reads: nothing. Emits: `MIGRATIONS`, a list of (version, statements); `Store.migrate` applies those above the
version recorded in `schema_version`, each in its own transaction, so an existing store is migrated, not recreated.
A new release appends a migration; it never edits one that shipped. `{blob}` is the dialect's byte-string type
(BLOB, BYTEA); nothing else differs.
"""
from __future__ import annotations

_V1 = [
    """CREATE TABLE positions (
        topic TEXT NOT NULL, part INTEGER NOT NULL, next_offset BIGINT NOT NULL,
        PRIMARY KEY (topic, part))""",
    """CREATE TABLE messages (
        message_id TEXT PRIMARY KEY,
        direction TEXT, mail_from TEXT, sender_domain TEXT, recipients TEXT,
        client_address TEXT, client_helo TEXT, tls TEXT, size_bytes BIGINT,
        header_message_id TEXT, subject TEXT,
        inbound_gateway TEXT, outbound_gateway TEXT, route_kind TEXT, destination TEXT, relay_host TEXT,
        spam_level TEXT, spam_score DOUBLE PRECISION, spam_actions TEXT, spam_scores TEXT,
        state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, last_reply TEXT, last_reason TEXT,
        tier TEXT, next_attempt_at BIGINT,
        received_at BIGINT NOT NULL, routed_at BIGINT, delivered_at BIGINT, finished_at BIGINT, updated_at BIGINT,
        quarantine TEXT, quarantine_level TEXT, quarantine_score DOUBLE PRECISION, quarantine_headers TEXT,
        quarantined_at BIGINT)""",
    """CREATE TABLE recipients (
        message_id TEXT NOT NULL, recipient TEXT NOT NULL, domain TEXT NOT NULL, state TEXT NOT NULL,
        reply TEXT, updated_at BIGINT,
        PRIMARY KEY (message_id, recipient))""",
    """CREATE TABLE events (
        part INTEGER NOT NULL, kafka_offset BIGINT NOT NULL, message_id TEXT NOT NULL, type TEXT NOT NULL,
        occurred_at BIGINT NOT NULL, record {blob} NOT NULL,
        PRIMARY KEY (part, kafka_offset))""",
    "CREATE INDEX events_message ON events (message_id, occurred_at)",
    "CREATE INDEX events_time ON events (occurred_at)",
    "CREATE INDEX messages_received ON messages (received_at)",
    "CREATE INDEX messages_sender ON messages (lower(mail_from), received_at)",
    "CREATE INDEX messages_sender_domain ON messages (sender_domain, received_at)",
    "CREATE INDEX messages_state ON messages (state)",
    "CREATE INDEX messages_client ON messages (client_address, received_at)",
    "CREATE INDEX messages_header_id ON messages (header_message_id)",
    "CREATE INDEX messages_quarantine ON messages (quarantine)",
    "CREATE INDEX recipients_address ON recipients (lower(recipient))",
    "CREATE INDEX recipients_domain ON recipients (domain)",
]

_V2 = [
    # Gateway searches look at both ends; delivered-per-minute charts read delivered_at.
    "CREATE INDEX messages_inbound_gateway ON messages (inbound_gateway, received_at)",
    "CREATE INDEX messages_outbound_gateway ON messages (outbound_gateway, received_at)",
    "CREATE INDEX messages_delivered ON messages (delivered_at)",
]

_V3 = [
    # A message with recipients delivered and others bounced or expired was shown as bounced/expired: now `partial`.
    """UPDATE messages SET state = 'partial' WHERE state IN ('bounced', 'expired')
        AND EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = messages.message_id AND r.state = 'delivered')""",
]

_V4 = [
    # Which log the rows were projected from (cluster id, topic ids) and whether a rebuild is under way.
    "CREATE TABLE store_state (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
]

_V5 = [
    # The sender's DSN request (RFC 3461: RET, ENVID, each recipient's NOTIFY and ORCPT), in one line.
    "ALTER TABLE messages ADD COLUMN dsn_request TEXT",
]

_V6 = [
    # The virus scan's verdict (MessageScanned): `<result>` or `<result>: <signatures or reason>`.
    "ALTER TABLE messages ADD COLUMN virus TEXT",
    "CREATE INDEX messages_virus ON messages (virus)",
]

MIGRATIONS: list[tuple[int, list[str]]] = [(1, _V1), (2, _V2), (3, _V3), (4, _V4), (5, _V5), (6, _V6)]
LATEST = MIGRATIONS[-1][0]
