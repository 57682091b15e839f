"""Message tracking: a read model of mail.events (one row per message, its recipients and its events) kept by
`mailgate tracker`, and the queries `trace`, `search`, `queue`, `quarantine` and the admin page answer from it."""
