"""Wait on a condition with a timeout — never a fixed sleep standing in for one."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any

DEFAULT_TIMEOUT_S = 10.0


async def wait_for(
    condition: Callable[[], Any],
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    interval: float = 0.02,
    what: str = "condition",
) -> Any:
    """Poll ``condition`` (sync or async) until truthy; return its value or fail clearly.

    Exceptions count as "not yet" (a server still starting refuses connections), and the
    last one is shown if time runs out.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = condition()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value
        except Exception as exc:  # not ready yet
            last_error = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last error: {last_error!r}")
        await asyncio.sleep(interval)


def wait_for_sync(
    condition: Callable[[], Any], *, timeout: float = DEFAULT_TIMEOUT_S, what: str = "condition"
) -> Any:
    """The same for code outside an event loop (subprocess tests)."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:
            last_error = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last error: {last_error!r}")
        time.sleep(0.05)
