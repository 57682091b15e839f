"""What a recipient directory is: the `UserDirectory` protocol and the errors a directory raises.

Reads: nothing. Emits: nothing. Inbound gateways ask a directory whether an address exists before answering RCPT;
the answer is yes, no, or `DirectoryUnavailable` (cannot tell now: the caller defers with a 4xx, never a 5xx).
"""
from __future__ import annotations

import asyncio
from typing import Protocol, TypeVar, runtime_checkable


class DirectoryError(Exception):
    """Base of every directory failure. `retriable` says whether asking again later may succeed."""

    retriable: bool = False


class DirectoryUnavailable(DirectoryError):
    """The directory cannot answer now (unreachable, timed out, 5xx, unexpected reply); ask again later."""

    retriable = True


class DirectoryAnswerUnrecognised(DirectoryUnavailable):
    """The directory answered, but with something we do not understand (an unknown wording or shape). Unlike an
    unreachable directory this is not "the primary is down": even a Backup MX must tempfail, not accept."""


class DirectoryLoginFailed(DirectoryUnavailable):
    """The directory refused our credentials. Still retriable (an operator may fix them), but worth an alert."""


@runtime_checkable
class UserDirectory(Protocol):
    """A source of truth for which mailboxes exist."""

    async def user_exists(self, address: str) -> bool:
        """True if `address` is a mailbox; raises `DirectoryUnavailable` when it cannot answer."""
        ...

    async def domain_names(self) -> set[str]:
        """The lower-case domain names the directory hosts; raises `DirectoryUnavailable` when it cannot answer."""
        ...

    async def aclose(self) -> None:
        """Release connections; the directory is not used afterwards."""
        ...


T = TypeVar("T")


async def shared_result(task: asyncio.Task[T]) -> T:
    """Await a lookup or fetch shared with other callers (and background refreshes): cancelling this caller leaves
    it running for the others, and one cancelled by the cache's `aclose()` reads as an unavailable directory."""
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if task.cancelled() and current is not None and not current.cancelling():
            raise DirectoryUnavailable("directory request cancelled: the cache is closing") from None
        raise
