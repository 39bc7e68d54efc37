"""Conversions between Redis millisecond clocks and protobuf time types."""

from __future__ import annotations

import asyncio

from google.protobuf import duration_pb2, timestamp_pb2


def ts(ms: int | float) -> timestamp_pb2.Timestamp:
    """A Timestamp from milliseconds since the epoch."""
    out = timestamp_pb2.Timestamp()
    out.FromMilliseconds(int(ms))
    return out


def dur(seconds: float) -> duration_pb2.Duration:
    out = duration_pb2.Duration()
    out.FromMilliseconds(round(seconds * 1000))
    return out


def seconds_of(value: duration_pb2.Duration) -> float:
    return value.seconds + value.nanos / 1e9


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Wait for ``event`` up to ``timeout`` s; True if it was set.

    Unlike ``asyncio.wait_for`` on Python 3.11, this never swallows a cancellation that
    races with the timeout (which left background loops running after stop()).
    """
    waiter = asyncio.ensure_future(event.wait())
    try:
        done, _ = await asyncio.wait({waiter}, timeout=timeout)
    finally:
        waiter.cancel()
    return bool(done)
