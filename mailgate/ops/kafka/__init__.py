"""Operator tools for Kafka itself: the local broker (`mailgate broker`), the admin connection, `mailgate topics` and
`mailgate status`."""
