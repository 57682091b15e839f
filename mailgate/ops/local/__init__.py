"""Running mailgate on one machine: `mailgate up` (broker, stages and tracker as child processes) and `mailgate sink`
(a stand-in SMTP server)."""
