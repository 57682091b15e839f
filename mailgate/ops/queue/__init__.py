"""The queue for operators: `mailgate queue` (what is waiting, `view`), and queue and destination commands as
audited events that every egress replica applies (`commands`, `cli`)."""
