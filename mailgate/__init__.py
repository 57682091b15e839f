"""mailgate: an SMTP mail gateway on Apache Kafka. Layers: `mailgate.core` (plumbing), `mailgate.mail` (mail domain),
`mailgate.ops` (operator tools); the stages are the top-level packages `ingress`, `processors` and `egress`, the
event schemas `schemas`. A regular package (not a namespace), so that this distribution owns the name."""
