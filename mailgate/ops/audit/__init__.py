"""The audit log for operators: reading `mail.events` and any topic (`reader`), `mailgate events`, and
`mailgate replay` (re-injection, itself audited)."""
