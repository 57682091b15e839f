"""Virus scanning shared by ingress (scan_at_data), the processor's scan step and `mailgate scan`: the clamd
client (`clamd`), the archive walk that finds what clamd cannot be trusted to see (`content`), and one message's
verdict (`scan`)."""
