"""The spam stage's library: score a message with its scanners, classify it, apply the gateway's actions.

`scorers` asks spamd / rspamd / a trusted upstream header; `levels` sums the weighted scores into a level;
`headers` edits header fields without touching any other byte; `actions` turns a level's actions into an outcome.
"""
from processors.spam.actions import ActionOutcome, Disposition, actions_for, apply_actions, check_actions
from mailgate.mail.headers import add_header, header_block, header_values, prefix_subject, set_header
from processors.spam.levels import Classification, Level, ScorerResult, classify, level_for
from processors.spam.scorers import (RspamdScorer, ScannerUnavailable, Scorer, SpamdReply, SpamdScorer,
                                     TrustedHeaderScorer, build_scorer, build_scorers)

__all__ = [
    "ActionOutcome", "Classification", "Disposition", "Level", "RspamdScorer", "ScannerUnavailable", "Scorer",
    "ScorerResult", "SpamdReply", "SpamdScorer", "TrustedHeaderScorer", "actions_for", "add_header",
    "apply_actions", "build_scorer", "build_scorers", "check_actions", "classify", "header_block", "header_values",
    "level_for", "prefix_subject", "set_header",
]
