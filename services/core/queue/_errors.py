"""The queue's errors: how a handler's failure should be retried (Temporal style), and a full queue.

::

    Exception
    ├── RetryableError      retry after the policy's backoff, or after ``retry_after``
    ├── PermanentError      no retry: straight to dead letters
    └── MeshError
        └── ResourceExhausted
            └── QueueFull   submit refused: the backlog is at ``max_depth`` (nothing written)

Any other exception a handler raises counts as retryable. The decision itself lives in
one place, :func:`services.core.queue.decide`. Redis failures inside the queue surface as
``services.core.errors.Unavailable`` (translated at the boundary).
"""

from __future__ import annotations

from services.core.errors import ResourceExhausted

QUEUE_FULL_RETRY_AFTER_S = 1.0


class RetryableError(Exception):
    """A transient failure; ``retry_after`` (seconds) overrides the backoff when given."""

    def __init__(self, message: str = "", *, retry_after: float | None = None) -> None:
        super().__init__(message)
        if retry_after is not None and retry_after < 0:
            raise ValueError("retry_after must be >= 0")
        self.retry_after = retry_after


class PermanentError(Exception):
    """A failure that retrying cannot fix (bad payload, rejected by the receiver)."""


class QueueFull(ResourceExhausted):
    """``submit`` refused a new message: the queue's backlog is at its ``max_depth``.

    Nothing was written and the idempotency key was not remembered, so the same message
    may simply be sent again later. Callers usually re-raise it in their own words (naming
    their config knob); as it stands it renders as RESOURCE_EXHAUSTED with a retry delay.
    """

    def __init__(self, queue: str, backlog: int, max_depth: int) -> None:
        super().__init__(
            f"queue {queue!r} holds {backlog} waiting messages, at its limit of {max_depth}; retry later",
            retry_after=QUEUE_FULL_RETRY_AFTER_S,
        )
        self.queue = queue
        self.backlog = backlog
        self.max_depth = max_depth
