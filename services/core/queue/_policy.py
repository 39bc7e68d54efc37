"""Retry policy and the single retry-or-dead decision."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from services.core.queue._errors import PermanentError, RetryableError

DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_INITIAL_BACKOFF_S = 1.0
DEFAULT_MULTIPLIER = 2.0
DEFAULT_MAX_BACKOFF_S = 300.0
MAX_ERROR_CHARS = 2000


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how far apart a failing message is retried."""

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    """Attempts in total, the first included; a message's own override wins."""
    initial_backoff: float = DEFAULT_INITIAL_BACKOFF_S
    """Backoff ceiling (seconds) after the first failed attempt."""
    multiplier: float = DEFAULT_MULTIPLIER
    """Growth of the ceiling per further attempt."""
    max_backoff: float = DEFAULT_MAX_BACKOFF_S
    """Upper bound of the ceiling."""
    full_jitter: bool = True
    """Wait uniform(0, ceiling) rather than the ceiling, so failed bursts spread out."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if self.initial_backoff < 0 or self.max_backoff < 0 or self.multiplier < 1:
            raise ValueError("backoffs must be >= 0 and multiplier >= 1")

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        ceiling = min(self.max_backoff, self.initial_backoff * self.multiplier ** (attempt - 1))
        if not self.full_jitter:
            return ceiling
        return (rng or random).uniform(0.0, ceiling)


@dataclass(frozen=True)
class Decision:
    """What to do with a failed delivery."""

    action: Literal["retry", "dead"]
    delay: float
    error: str


def describe(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    return text[:MAX_ERROR_CHARS]


def decide(error: BaseException, attempt: int, max_attempts: int, policy: RetryPolicy) -> Decision:
    """Retry or dead letter: the one place this is decided.

    ``PermanentError`` and an exhausted attempt budget go dead; everything else retries,
    after ``RetryableError.retry_after`` when the handler gave one, else the backoff.
    """
    text = describe(error)
    if isinstance(error, PermanentError) or attempt >= max_attempts:
        return Decision("dead", 0.0, text)
    if isinstance(error, RetryableError) and error.retry_after is not None:
        return Decision("retry", error.retry_after, text)
    return Decision("retry", policy.backoff(attempt), text)
