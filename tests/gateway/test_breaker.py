"""The shared breaker wrapper (services.core.breaker), under UTC and non-UTC time zones."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY

from services.core.breaker import Breaker, BreakerOpen, FailedResult, State
from tests.waiting import wait_for


class Boom(Exception):
    pass


class ClientMistake(Exception):
    pass


@pytest.fixture(params=["UTC", "Asia/Tokyo", "America/Los_Angeles"], autouse=True)
def timezone(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run every breaker test east and west of UTC too (aiobreaker mixes utcnow/now)."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = request.param
    time.tzset()
    yield request.param
    if saved is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = saved
    time.tzset()


def make(name: str, **kw: object) -> Breaker:
    options: dict[str, object] = {
        "failure_threshold": 3,
        "reset_timeout_s": 0.3,
        "half_open_max_calls": 1,
        "is_failure": lambda exc: not isinstance(exc, ClientMistake),
    }
    options.update(kw)
    return Breaker(name, **options)  # type: ignore[arg-type]


async def fail() -> None:
    raise Boom("down")


async def ok() -> str:
    return "ok"


async def test_opens_after_threshold_and_fails_fast(timezone: str) -> None:
    """Three consecutive failures open it; the tripping call keeps its own error; then calls fail fast."""
    b = make(f"t1-{timezone}")
    for _ in range(3):
        with pytest.raises(Boom):
            await b.call(fail)
    assert b.state is State.OPEN
    ran = False

    async def probe() -> None:
        nonlocal ran
        ran = True

    with pytest.raises(BreakerOpen) as err:
        await b.call(probe)
    assert not ran
    assert 0 < err.value.retry_after <= 0.3


async def test_unclassified_errors_and_results_do_not_count(timezone: str) -> None:
    """Errors not classified as failures (like a 4xx) never open the breaker; failed results do count."""
    b = make(f"t2-{timezone}")

    async def mistake() -> None:
        raise ClientMistake()

    for _ in range(10):
        with pytest.raises(ClientMistake):
            await b.call(mistake)
    assert b.state is State.CLOSED

    async def bad_result() -> str:
        raise FailedResult("HTTP 503")

    for _ in range(3):
        assert await b.call(bad_result) == "HTTP 503"
    assert b.state is State.OPEN


async def test_half_open_admits_bounded_trials(timezone: str) -> None:
    """After the reset timeout only half_open_max_calls trials run concurrently; the rest fail fast."""
    b = make(f"t3-{timezone}", half_open_max_calls=2)
    for _ in range(3):
        with pytest.raises(Boom):
            await b.call(fail)
    await wait_for(lambda: b.state is State.HALF_OPEN, what="half-open")
    started = 0
    release = asyncio.Event()

    async def slow_trial() -> str:
        nonlocal started
        started += 1
        await release.wait()
        return "ok"

    calls = [asyncio.create_task(b.call(slow_trial)) for _ in range(20)]
    await wait_for(lambda: started == 2, what="two trials running")
    release.set()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert started == 2
    assert sum(1 for r in results if r == "ok") == 2
    assert sum(1 for r in results if isinstance(r, BreakerOpen)) == 18
    assert b.state is State.CLOSED


async def test_recovers_after_reset_timeout_with_one_trial(timezone: str) -> None:
    """Open → (reset timeout) → one successful trial closes it; a failed trial reopens it."""
    b = make(f"t4-{timezone}")
    for _ in range(3):
        with pytest.raises(Boom):
            await b.call(fail)
    await wait_for(lambda: b.state is State.HALF_OPEN, timeout=5, what="half-open")
    with pytest.raises(Boom):
        await b.call(fail)
    assert b.state is State.OPEN
    await wait_for(lambda: b.state is State.HALF_OPEN, timeout=5, what="half-open again")
    assert await b.call(ok) == "ok"
    assert b.state is State.CLOSED
    assert b.consecutive_failures == 0


async def test_transitions_are_counted_and_reported(timezone: str) -> None:
    """Every state change is counted in Prometheus and passed to the on_transition hook."""
    name = f"t5-{timezone}"
    seen: list[tuple[State, State]] = []
    b = make(name, on_transition=lambda old, new: seen.append((old, new)))
    for _ in range(3):
        with pytest.raises(Boom):
            await b.call(fail)
    await wait_for(lambda: b.state is State.HALF_OPEN, timeout=5, what="half-open")
    await b.call(ok)
    assert seen == [
        (State.CLOSED, State.OPEN),
        (State.OPEN, State.HALF_OPEN),
        (State.HALF_OPEN, State.CLOSED),
    ]
    assert b.transitions == 3
    labels = {"breaker": name, "from_state": "closed", "to_state": "open"}
    assert REGISTRY.get_sample_value("wedmesh_breaker_transitions_total", labels) == 1.0
