"""Errors a handler raises to say how its failure should be retried (Temporal style).

::

    Exception
    ├── RetryableError      retry after the policy's backoff, or after ``retry_after``
    └── PermanentError      no retry: straight to dead letters

Any other exception a handler raises counts as retryable. The decision itself lives in
one place, :func:`services.core.queue.decide`. Redis failures inside the queue surface as
``services.core.errors.Unavailable`` (translated at the boundary).
"""

from __future__ import annotations


class RetryableError(Exception):
    """A transient failure; ``retry_after`` (seconds) overrides the backoff when given."""

    def __init__(self, message: str = "", *, retry_after: float | None = None) -> None:
        super().__init__(message)
        if retry_after is not None and retry_after < 0:
            raise ValueError("retry_after must be >= 0")
        self.retry_after = retry_after


class PermanentError(Exception):
    """A failure that retrying cannot fix (bad payload, rejected by the receiver)."""
