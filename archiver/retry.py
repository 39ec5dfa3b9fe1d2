"""Declared retries: bounded attempts, exponential backoff with jitter, and an overall deadline.

Only TransientError is retried; everything else is an answer and goes straight up.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from .config import Config
from .errors import TransientError

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    attempts: int = 5
    initial_delay: float = 1.0
    max_delay: float = 30.0
    total_seconds: float = 300.0
    # Told of every retry (the run counts them for its metrics).
    on_retry: Callable[[], None] | None = field(default=None, compare=False)

    @classmethod
    def from_config(cls, config: Config) -> RetryPolicy:
        return cls(
            attempts=config.retry_attempts,
            initial_delay=config.retry_initial_delay,
            max_delay=config.retry_max_delay,
            total_seconds=config.retry_total_seconds,
        )

    def backoff(self, attempt: int) -> float:
        """Full jitter: a random wait up to the exponential cap, so clients do not march in step."""
        cap = min(self.max_delay, self.initial_delay * 2 ** (attempt - 1))
        return random.uniform(cap / 2, cap)


async def retrying(
    attempt: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    on_retry: Callable[[TransientError, float], None] | None = None,
) -> T:
    """Run `attempt` until it returns, a non-transient error rises, or the budget is spent."""
    deadline = time.monotonic() + policy.total_seconds
    for number in range(1, policy.attempts + 1):
        try:
            return await attempt()
        except TransientError as exc:
            if number == policy.attempts:
                raise
            delay = exc.retry_after if exc.retry_after is not None else policy.backoff(number)
            if time.monotonic() + delay > deadline:
                raise
            if on_retry is not None:
                on_retry(exc, delay)
            if policy.on_retry is not None:
                policy.on_retry()
            await asyncio.sleep(delay)
    raise AssertionError("unreachable: the last attempt returns or raises")
