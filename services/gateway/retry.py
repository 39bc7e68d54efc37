"""When an upstream call may be retried, and how long to wait first.

Retried: connection errors, timeouts, 502/503/504 and 429 — and only when repeating the
request is safe: an idempotent method (GET, HEAD, PUT, DELETE, OPTIONS) or a request with
an idempotency key (sent upstream as ``Idempotency-Key``). A request that never reached
the upstream (connect refused) is always safe to send to another instance.

Waits grow exponentially with full jitter (``uniform(0, base·m^n)``, capped); after a 429
the wait is at least the upstream's ``Retry-After`` — never sooner. Nothing waits past
the caller's deadline or ``max_backoff_s``: the caller of :func:`backoff` checks the result
against both, and returns the 429 when the upstream asks for a longer wait.
"""

from __future__ import annotations

import email.utils
import random
import time

from services.gateway.hygiene import IDEMPOTENT_METHODS
from services.gateway.settings import RetryConfig

RETRYABLE_STATUS = frozenset({429, 502, 503, 504})


def may_retry(method: str, idempotency_key: str) -> bool:
    """Is repeating this request safe?"""
    return method in IDEMPOTENT_METHODS or bool(idempotency_key)


def backoff(policy: RetryConfig, retry_number: int, retry_after: float | None = None) -> float:
    """Seconds to wait before retry ``retry_number`` (1 = the first retry)."""
    ceiling = min(policy.max_backoff_s, policy.backoff_s * policy.multiplier ** (retry_number - 1))
    wait = random.uniform(0, ceiling) if policy.jitter else ceiling
    if retry_after is not None:
        wait = max(wait, retry_after)
    return wait


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date; None if absent/garbled.

    delta-seconds is ASCII digits only (RFC 9110 §10.2.3): ``str.isdigit`` also accepts "²"
    and "٣". The result may be huge (``inf`` for 400 digits); callers compare it with their
    own maximum rather than sleep it."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - (time.time() if now is None else now))
    except (TypeError, ValueError, OverflowError, IndexError):  # garbled, or a date out of range
        return None
