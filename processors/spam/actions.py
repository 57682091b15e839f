"""Apply a gateway's spam actions to one classified message.

Reads: the raw message, its `Classification`, the `SpamAction`s configured for its level, and whether the
standard headers are on. Emits: an `ActionOutcome`: the (possibly edited) bytes, what becomes of the message
(deliver, quarantine or delete), and a list of what was done, for the audit event.

Standard headers: when `standard_headers` is on and the message was scored at all (at least one scorer gave a
score, whatever the level, so ham gets them too and downstream filters can read the score), `X-Spam-Score:
<total:.1f>` and `X-Spam-Level: <one '*' per whole point, at most 50>` are set, replacing any a sender forged.
A message no scorer had an opinion on gets none. Actions run in their configured order and combine; of the
dispositions, delete wins over quarantine, which wins over deliver.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Sequence

from mailgate.core.config import SpamAction, SpamActions
from mailgate.mail.headers import add_header, prefix_subject, set_header
from processors.spam.levels import Classification, Level

Disposition = Literal["deliver", "delete", "quarantine"]
_RANK: dict[Disposition, int] = {"deliver": 0, "quarantine": 1, "delete": 2}
MAX_LEVEL_STARS = 50


@dataclass(frozen=True)
class ActionOutcome:
    """What the spam actions made of one message."""

    body: bytes
    """The message to pass on, with any header edits."""
    disposition: Disposition
    """deliver it, hold it in quarantine, or delete it."""
    applied: list[str] = field(default_factory=list)
    """What was done, in order: "standard_headers", "add_header:<name>", "prefix_subject", "quarantine", "delete"."""


def actions_for(level: Level, spam_actions: SpamActions) -> list[SpamAction]:
    """The actions a gateway configured for `level`."""
    return list(getattr(spam_actions, level))


def spam_level_stars(total: float) -> str:
    """X-Spam-Level's value: one '*' per whole point of `total`, none when below 1, at most MAX_LEVEL_STARS."""
    return "*" * min(MAX_LEVEL_STARS, max(0, int(total)))


def check_actions(spam_actions: SpamActions) -> None:
    """Raise ValueError naming the first action that could never be applied (meant for startup, not per message):
    add_header without a valid name or with CR/LF in its value, prefix_subject without text or with CR/LF."""
    probe = b"Subject: x\r\n\r\n"
    for level in ("none", "low", "medium", "high"):
        for i, action in enumerate(getattr(spam_actions, level)):
            try:
                if action.action == "add_header":
                    add_header(probe, action.header_name, action.header_value)
                elif action.action == "prefix_subject":
                    if not action.text:
                        raise ValueError("prefix_subject needs text")
                    prefix_subject(probe, action.text)
            except ValueError as err:
                raise ValueError(f"spam_actions.{level}.{i}: {err}") from None


def apply_actions(msg: bytes, classification: Classification, actions: Sequence[SpamAction],
                  standard_headers: bool) -> ActionOutcome:
    """Apply the standard headers (see the module doc) and then `actions`, in order; ValueError on an action that
    cannot be applied (see `check_actions`)."""
    body = msg
    disposition: Disposition = "deliver"
    applied: list[str] = []
    if standard_headers and classification.scored:
        body = set_header(body, "X-Spam-Score", f"{classification.total:.1f}")
        body = set_header(body, "X-Spam-Level", spam_level_stars(classification.total))
        applied.append("standard_headers")
    for action in actions:
        if action.action == "add_header":
            body = add_header(body, action.header_name, action.header_value)
            applied.append(f"add_header:{action.header_name}")
        elif action.action == "prefix_subject" and action.text:
            body = prefix_subject(body, action.text)
            applied.append("prefix_subject")
        elif action.action in ("delete", "quarantine"):
            if _RANK[action.action] > _RANK[disposition]:
                disposition = action.action
            applied.append(action.action)
    return ActionOutcome(body, disposition, applied)
