"""The caller's gRPC deadline, carried to outgoing calls.

The interceptor records when the current RPC must be answered; any outgoing call (an
upstream HTTP request, a Redis wait, a downstream gRPC call) asks :func:`time_left` so it
never runs past the point where the caller has given up.
"""

from __future__ import annotations

import contextvars
import time

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("deadline", default=None)


def set_deadline(seconds_left: float | None) -> contextvars.Token[float | None]:
    at = None if seconds_left is None else time.monotonic() + seconds_left
    return _deadline.set(at)


def reset_deadline(token: contextvars.Token[float | None]) -> None:
    _deadline.reset(token)


def time_left(default: float | None = None) -> float | None:
    """Seconds until the caller's deadline (never negative); ``default`` when none is set."""
    at = _deadline.get()
    if at is None:
        return default
    left = max(0.0, at - time.monotonic())
    return left if default is None else min(left, default)
