"""The tracking store: one small query layer over SQLite (embedded, WAL mode) and PostgreSQL (psycopg 3).

Reads: `tracking` config. Emits: a `Store` whose `run`/`rows`/`many` take SQL with `?` placeholders (rewritten to
`%s` for PostgreSQL), transactions (`with store.transaction():`), the consumer positions kept next to the data,
and `migrate()` (schema_version + ordered migrations from `schema.py`). Calls are blocking; async callers run
them in a thread. A Store is used by one thread at a time.
"""
from __future__ import annotations

import contextlib
import logging
import sqlite3
from pathlib import Path
from typing import Any, Iterable, Iterator

from mailgate.core.config import Config
from mailgate.ops.tracking.schema import LATEST, MIGRATIONS

log = logging.getLogger("mailgate.ops.tracking.store")

DATA_TABLES = ("events", "recipients", "messages", "positions", "store_state")
"""What `--rebuild` empties (the schema and its version stay)."""


class StoreUnavailable(Exception):
    """The store cannot be opened or reached (file missing, server down); readers can fall back to the log."""


class Store:
    """A connection to the tracking store, SQLite or PostgreSQL, with the same calls for both."""

    def __init__(self, conn: Any, dialect: str, where: str) -> None:
        self.conn = conn
        self.dialect = dialect
        self.where = where
        self._depth = 0

    # --- opening ---------------------------------------------------------------------------------------------

    @classmethod
    def sqlite(cls, path: Path | str, create: bool = True) -> "Store":
        p = Path(path)
        if not create and not p.exists():
            raise StoreUnavailable(f"no tracking store at {p} (is `mailgate tracker` running?)")
        p.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(p), isolation_level=None, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=30000")
        return cls(conn, "sqlite", str(p))

    @classmethod
    def postgresql(cls, dsn: str) -> "Store":
        import psycopg
        try:
            conn = psycopg.connect(dsn, autocommit=True, connect_timeout=10)
        except psycopg.OperationalError as err:
            raise StoreUnavailable(f"cannot reach the PostgreSQL tracking store: {str(err).splitlines()[0]}") from None
        return cls(conn, "postgresql", "postgresql")

    @classmethod
    def open(cls, cfg: Config, create: bool = True) -> "Store":
        """The configured store, migrated to the latest schema when `create` (the tracker), else as it is."""
        t = cfg.tracking
        if t.store == "postgresql":
            if t.postgresql_dsn is None:
                raise StoreUnavailable("tracking.store is postgresql but tracking.postgresql_dsn is not set")
            store = cls.postgresql(t.postgresql_dsn.reveal())
        else:
            store = cls.sqlite(t.sqlite_path, create=create)
        if create:
            store.migrate()
        elif store.version() == 0:
            store.close()
            raise StoreUnavailable(f"the tracking store at {store.where} is empty (is `mailgate tracker` running?)")
        return store

    def close(self) -> None:
        self.conn.close()

    # --- statements ------------------------------------------------------------------------------------------

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.dialect == "postgresql" else sql

    def run(self, sql: str, params: Iterable[Any] = ()) -> None:
        self.conn.execute(self._sql(sql), tuple(params))

    def rows(self, sql: str, params: Iterable[Any] = ()) -> list[dict]:
        cur = self.conn.execute(self._sql(sql), tuple(params))
        if cur.description is None:
            return []
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]

    def many(self, sql: str, seq: list[tuple]) -> None:
        if not seq:
            return
        if self.dialect == "postgresql":
            with self.conn.cursor() as cur:
                cur.executemany(self._sql(sql), seq)
        else:
            self.conn.executemany(sql, seq)

    @contextlib.contextmanager
    def transaction(self) -> Iterator["Store"]:
        """All statements inside commit together or not at all (nested uses join the outer one)."""
        if self._depth:
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1
            return
        self._depth = 1
        if self.dialect == "postgresql":
            try:
                with self.conn.transaction():
                    yield self
            finally:
                self._depth = 0
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")
        finally:
            self._depth = 0

    # --- schema ----------------------------------------------------------------------------------------------

    def version(self) -> int:
        try:
            with self.transaction():
                found = self.rows("SELECT max(version) AS v FROM schema_version")
        except Exception:  # no table yet (each dialect names the error differently)
            return 0
        return int(found[0]["v"] or 0) if found else 0

    def migrate(self, upto: int = LATEST) -> int:
        """Apply every migration above the stored version up to `upto`; the version reached."""
        with self.transaction():
            self.run("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at BIGINT)")
        current = self.version()
        for version, statements in MIGRATIONS:
            if current < version <= upto:
                with self.transaction():
                    for sql in statements:
                        self.run(sql.replace("{blob}", "BYTEA" if self.dialect == "postgresql" else "BLOB"))
                    self.run("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                             (version, _now_ms()))
                log.info("tracking store %s migrated to schema version %d", self.where, version)
                current = version
        return current

    def clear(self) -> None:
        """Forget every projected row and position (for a rebuild from the beginning of the log)."""
        with self.transaction():
            for table in DATA_TABLES:
                self.run(f"DELETE FROM {table}")

    def prune(self, before_ms: int) -> int:
        """Forget messages received before `before_ms` and events that occurred before it: what the log itself no
        longer holds, so the store stays bounded and can always be rebuilt from the log. How many messages went."""
        with self.transaction():
            old = self.rows("SELECT count(*) AS n FROM messages WHERE received_at < ?", (before_ms,))[0]["n"]
            self.run("DELETE FROM recipients WHERE message_id IN "
                     "(SELECT message_id FROM messages WHERE received_at < ?)", (before_ms,))
            self.run("DELETE FROM messages WHERE received_at < ?", (before_ms,))
            self.run("DELETE FROM events WHERE occurred_at < ?", (before_ms,))
        return int(old)

    # --- positions -------------------------------------------------------------------------------------------

    def positions(self, topic: str) -> dict[int, int]:
        """partition -> the next offset to project (everything before it is in the store)."""
        return {r["part"]: r["next_offset"] for r in self.rows(
            "SELECT part, next_offset FROM positions WHERE topic = ?", (topic,))}

    def save_positions(self, topic: str, positions: dict[int, int]) -> None:
        self.many("INSERT INTO positions (topic, part, next_offset) VALUES (?, ?, ?) ON CONFLICT (topic, part) "
                  "DO UPDATE SET next_offset = excluded.next_offset", [(topic, p, o) for p, o in positions.items()])

    # --- which log it belongs to ----------------------------------------------------------------------------

    def state(self) -> dict[str, str]:
        """name -> value: `cluster_id`, `topic_id/<topic>` (the log the rows came from), `rebuild` (JSON progress
        while a rebuild runs), `mismatch` (why the tracker refused to serve)."""
        try:
            return {r["name"]: r["value"] for r in self.rows("SELECT name, value FROM store_state")}
        except Exception:  # a store of an earlier release, not yet migrated by its tracker
            return {}

    def set_state(self, values: dict[str, str | None]) -> None:
        """Set (or, with None, forget) named state values, in one transaction."""
        with self.transaction():
            for name, value in values.items():
                self.run("DELETE FROM store_state WHERE name = ?", (name,))
                if value is not None:
                    self.run("INSERT INTO store_state (name, value) VALUES (?, ?)", (name, value))

    def size_bytes(self) -> int:
        if self.dialect == "postgresql":
            return int(self.rows("SELECT pg_database_size(current_database()) AS n")[0]["n"])
        page = self.rows("PRAGMA page_count")[0]["page_count"] * self.rows("PRAGMA page_size")[0]["page_size"]
        wal = Path(self.where + "-wal")
        return page + (wal.stat().st_size if wal.exists() else 0)


def _now_ms() -> int:
    from mailgate.core.ids import now_ms
    return now_ms()
