"""Bounded retry with exponential backoff, for database work that is safe to repeat.

A unit of work that dies with its connection (the server restarted, a network blip, the backend
was killed) was rolled back whole; repeating it is safe exactly when the work is idempotent —
reads and upserts. An insert is not: if the commit reached the server before the connection
died, a blind retry would write the row twice. So nothing retries by default;
``DatabaseManager.run_idempotent`` is the one door, and its name says the rule.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from iftb.data.storage.errors import DatabaseConnectionError, QueryTimeoutError, StorageError
from iftb.utils import get_logger

log = get_logger(__name__)

T = TypeVar("T")

# Serialization failure and deadlock: the server rolled the transaction back and asks for a retry.
_RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})
# A lock held by someone else, or a server too busy for now, may be gone at the next attempt.
# (An idle-in-transaction timeout is the caller's own slowness; the pool timeout is bounded
# already by the pool's own wait.)
_RETRYABLE_LIMITS = frozenset(
    {"statement_timeout", "lock_timeout", "busy_timeout", "command_timeout"}
)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to retry: ``attempts`` in all, the delay doubling from
    ``initial_delay`` up to ``max_delay`` seconds, each with up to 20 % random jitter (so that
    many clients do not reconnect in lockstep)."""

    attempts: int = 5
    initial_delay: float = 0.2
    max_delay: float = 5.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.initial_delay < 0 or self.max_delay < self.initial_delay:
            raise ValueError(f"invalid retry policy: {self}")

    def delays(self) -> Iterator[float]:
        """The waits between attempts (one fewer than the attempts)."""
        delay = self.initial_delay
        for _ in range(self.attempts - 1):
            yield delay * (1 + random.random() / 5)
            delay = min(delay * 2, self.max_delay)


NO_RETRY = RetryPolicy(attempts=1)


def is_transient(exc: BaseException) -> bool:
    """Lost connections, statements that timed out waiting, and transactions the server
    aborted asking for a retry."""
    if isinstance(exc, DatabaseConnectionError):
        return True
    if isinstance(exc, QueryTimeoutError):
        return exc.limit in _RETRYABLE_LIMITS
    cause = exc.__cause__
    state = getattr(getattr(cause, "orig", cause), "sqlstate", None)
    return isinstance(exc, StorageError) and state in _RETRYABLE_SQLSTATES


async def retry_transient(
    work: Callable[[], Awaitable[T]], policy: RetryPolicy, *, operation: str
) -> T:
    """Await ``work()``; on a transient error wait and try again, up to ``policy.attempts``."""
    delays = policy.delays()
    attempt = 1
    while True:
        try:
            return await work()
        except StorageError as exc:
            delay = next(delays, None)
            if not is_transient(exc) or delay is None:
                raise
            log.warning(
                "database operation failed; retrying",
                operation=operation,
                attempt=attempt,
                of=policy.attempts,
                retry_in=round(delay, 3),
                error=f"{type(exc).__name__}: {exc}",
            )
            attempt += 1
            await asyncio.sleep(delay)
