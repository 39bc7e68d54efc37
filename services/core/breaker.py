"""The mesh's one circuit-breaker wrapper, around aiobreaker.

aiobreaker keeps the state machine (closed → open after ``failure_threshold`` consecutive
failures → half-open → closed/open); this wrapper fixes what it gets wrong for us:

* **Only classified failures count.** The caller passes ``is_failure(exc)``; anything else
  (a 4xx answer, a caller mistake) counts as a success, as aiobreaker's ``exclude`` does.
  A call whose *result* is a failure (an HTTP 5xx response) is reported with
  :class:`FailedResult` so the breaker counts it while the caller still gets the result.
* **Half-open is gated.** aiobreaker lets every concurrent call through as a trial; here at
  most ``half_open_max_calls`` trials are in flight, the rest fail fast.
* **Time is monotonic.** aiobreaker mixes ``utcnow()`` and ``now()`` (its reopen times are
  wrong or ``None`` outside UTC); the open period is measured here with ``time.monotonic``
  and the move to half-open is made explicitly, so no aiobreaker time arithmetic is used.
* **The tripping call keeps its own error.** aiobreaker raises ``CircuitBreakerError`` from
  the call that opens the circuit; we re-raise the original error (or return the result).
* **Transitions are visible:** logged, counted in ``wedmesh_breaker_transitions_total``,
  exposed as :attr:`Breaker.state`, ``transitions`` and ``last_transition``.

State is per process and per breaker (e.g. one per upstream instance): a breaker
protects this replica's calls; replicas each learn about a dead upstream on their own.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

import aiobreaker
from aiobreaker import CircuitBreakerError, CircuitBreakerListener, CircuitBreakerState
from prometheus_client import Counter, Gauge

log = logging.getLogger("wedmesh.breaker")
T = TypeVar("T")

TRANSITIONS = Counter(
    "wedmesh_breaker_transitions_total",
    "Circuit breaker state changes",
    ["breaker", "from_state", "to_state"],
)
STATE = Gauge("wedmesh_breaker_open", "1 while the breaker is open or half-open", ["breaker"])


class State(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class BreakerOpen(Exception):
    """The breaker refused the call without running it; retry after ``retry_after`` s."""

    def __init__(self, name: str, retry_after: float) -> None:
        super().__init__(f"circuit breaker {name} is open; retry in {retry_after:.1f}s")
        self.name = name
        self.retry_after = retry_after


class FailedResult(Exception):
    """Raised by the guarded function to count a *result* as a failure; carries it out."""

    def __init__(self, result: Any) -> None:
        super().__init__("failed result")
        self.result = result


_FROM_AIO = {
    CircuitBreakerState.CLOSED: State.CLOSED,
    CircuitBreakerState.OPEN: State.OPEN,
    CircuitBreakerState.HALF_OPEN: State.HALF_OPEN,
}


class _Listener(CircuitBreakerListener):  # type: ignore[misc]
    def __init__(self, owner: Breaker) -> None:
        self.owner = owner

    def state_change(self, breaker: Any, old: Any, new: Any) -> None:
        self.owner._changed(_FROM_AIO[old.state] if old else State.CLOSED, _FROM_AIO[new.state])


class Breaker:
    """One circuit breaker; ``await breaker.call(fn)`` runs ``fn`` under it."""

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        reset_timeout_s: float = 30.0,
        half_open_max_calls: int = 1,
        is_failure: Callable[[BaseException], bool] = lambda exc: True,
        on_transition: Callable[[State, State], None] | None = None,
    ) -> None:
        self.name = name
        self.reset_timeout_s = reset_timeout_s
        self.half_open_max_calls = half_open_max_calls
        self._is_failure = is_failure
        self._on_transition = on_transition
        self._opened_at = 0.0
        self._trials = 0
        self.transitions = 0
        self.last_transition: float | None = None  # time.time() of the last change
        self._cb = aiobreaker.CircuitBreaker(
            fail_max=failure_threshold,
            timeout_duration=timedelta(seconds=reset_timeout_s),
            exclude=[self._excluded],
            listeners=[_Listener(self)],
            name=name,
        )

    def _excluded(self, exc: BaseException) -> bool:
        return not isinstance(exc, FailedResult) and not self._is_failure(exc)

    @property
    def state(self) -> State:
        """The state as callers see it: OPEN turns HALF_OPEN once the reset timeout passed."""
        current = _FROM_AIO[self._cb.current_state]
        if current is State.OPEN and self.open_remaining() <= 0:
            return State.HALF_OPEN
        return current

    @property
    def consecutive_failures(self) -> int:
        return int(self._cb.fail_counter)

    def available(self) -> bool:
        """Would a call be let through now (closed, or a free half-open trial slot)?"""
        state = self.state
        return state is State.CLOSED or (state is State.HALF_OPEN and self._trials < self.half_open_max_calls)

    def open_remaining(self) -> float:
        return self._opened_at + self.reset_timeout_s - time.monotonic()

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn`` unless open; count its outcome; raise :class:`BreakerOpen` if refused."""
        state = self.state
        if state is State.CLOSED:
            return await self._run(fn)
        if state is State.OPEN:
            raise BreakerOpen(self.name, max(0.0, self.open_remaining()))
        if self._trials >= self.half_open_max_calls:
            raise BreakerOpen(self.name, min(1.0, self.reset_timeout_s))
        self._trials += 1
        try:
            if self._cb.current_state is CircuitBreakerState.OPEN:
                self._cb.half_open()  # our monotonic clock decides, not aiobreaker's utcnow
            return await self._run(fn)
        finally:
            self._trials -= 1

    async def _run(self, fn: Callable[[], Awaitable[T]]) -> T:
        try:
            return await self._cb.call_async(fn)  # type: ignore[no-any-return]
        except CircuitBreakerError as exc:
            cause = exc.__cause__
            if cause is None:  # refused by aiobreaker itself (a race with another call)
                raise BreakerOpen(self.name, max(0.0, self.open_remaining())) from None
            if isinstance(cause, FailedResult):
                return cause.result  # type: ignore[no-any-return]
            raise cause from None
        except FailedResult as exc:
            return exc.result  # type: ignore[no-any-return]

    def _changed(self, old: State, new: State) -> None:
        if new is State.OPEN:
            self._opened_at = time.monotonic()
        if old is new:
            return
        self.transitions += 1
        self.last_transition = time.time()
        TRANSITIONS.labels(self.name, old.value, new.value).inc()
        STATE.labels(self.name).set(0 if new is State.CLOSED else 1)
        log.warning(
            "breaker state change",
            extra={"breaker": self.name, "from_state": old.value, "to_state": new.value},
        )
        if self._on_transition is not None:
            self._on_transition(old, new)
