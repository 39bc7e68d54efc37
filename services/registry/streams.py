"""Streamed delivery: one ``MessageSinkService.DeliverStream`` per sink instance address.

:class:`SinkStream` multiplexes the deliveries of many concurrent tasks onto one
bidirectional stream. A caller's :meth:`SinkStream.deliver` takes a window slot (flow
control: at most ``window`` deliveries unanswered per stream), queues the message under a
fresh ``delivery_id`` and waits for the sink's ack naming it. The writer task sends
whatever was queued during one event-loop turn as one request (up to ``MAX_BATCH``); the
reader task resolves the waiting callers from each response.

Failures keep the unary meanings: no ack within ``timeout`` is DEADLINE_EXCEEDED for that
delivery; a stream that ends (the sink closed it, died, or answered with a status) fails
every delivery still outstanding on it with the stream's status (UNAVAILABLE when it ended
without one), so the dispatcher fails over, retries or falls back to unary ``Deliver``
(UNIMPLEMENTED) exactly as for a unary call. The next delivery to that address opens a
new stream.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import grpc

from wedsync.registry.v1 import message_pb2, sink_pb2, sink_pb2_grpc

DEFAULT_WINDOW = 256
MAX_BATCH = 256


class StreamFailed(Exception):
    """A streamed delivery failed with ``code`` (as a unary call would have)."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


class SinkStream:
    """One open DeliverStream to one sink instance, shared by every delivery to it."""

    def __init__(
        self,
        stub: sink_pb2_grpc.MessageSinkServiceStub,
        *,
        window: int = DEFAULT_WINDOW,
        on_close: Callable[[SinkStream], None] | None = None,
    ) -> None:
        self._call: Any = stub.DeliverStream()
        self._window = asyncio.Semaphore(window)
        self._on_close = on_close
        self._next_id = 0
        self._waiting: dict[int, asyncio.Future[sink_pb2.StreamAck]] = {}
        self._outbox: list[sink_pb2.StreamDelivery] = []
        self._wake = asyncio.Event()
        self.failure: StreamFailed | None = None
        self._writer = asyncio.create_task(self._write_loop(), name="sink-stream-writer")
        self._reader = asyncio.create_task(self._read_loop(), name="sink-stream-reader")

    @property
    def outstanding(self) -> int:
        return len(self._waiting)

    async def deliver(self, message: message_pb2.Message, timeout: float) -> sink_pb2.StreamAck:
        """Send one message and wait for its ack; :class:`StreamFailed` when there is none."""
        async with self._window:
            if self.failure is not None:
                raise self.failure
            self._next_id += 1
            delivery_id = self._next_id
            loop = asyncio.get_running_loop()
            future: asyncio.Future[sink_pb2.StreamAck] = loop.create_future()
            self._waiting[delivery_id] = future
            self._outbox.append(sink_pb2.StreamDelivery(delivery_id=delivery_id, message=message))
            self._wake.set()
            timer = loop.call_later(timeout, _expire, future)
            try:
                return await future
            finally:
                timer.cancel()
                self._waiting.pop(delivery_id, None)

    async def _write_loop(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._outbox:
                    batch = self._outbox[:MAX_BATCH]
                    del self._outbox[:MAX_BATCH]
                    await self._call.write(sink_pb2.DeliverStreamRequest(deliveries=batch))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._outbox.clear()
            if isinstance(exc, grpc.aio.AioRpcError) or self._call.done():
                return  # the call is over: the reader reports its status (e.g. UNIMPLEMENTED)
            self._fail(StreamFailed(grpc.StatusCode.UNAVAILABLE, f"stream write failed: {exc!r}"))

    async def _read_loop(self) -> None:
        failure = StreamFailed(grpc.StatusCode.UNAVAILABLE, "the sink ended the delivery stream")
        try:
            while True:
                response = await self._call.read()
                if response is grpc.aio.EOF:
                    break
                for ack in response.acks:
                    future = self._waiting.get(ack.delivery_id)
                    if future is not None and not future.done():
                        future.set_result(ack)
        except grpc.aio.AioRpcError as exc:
            failure = StreamFailed(exc.code(), exc.details() or "")
        except asyncio.CancelledError:
            failure = StreamFailed(grpc.StatusCode.CANCELLED, "router stopping")
            self._fail(failure)
            raise
        self._fail(failure)

    def _fail(self, failure: StreamFailed) -> None:
        if self.failure is not None:
            return
        self.failure = failure
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(failure)
        if self._on_close is not None:
            self._on_close(self)
        self._writer.cancel()
        self._call.cancel()

    async def close(self) -> None:
        """Cancel the stream (outstanding deliveries fail as CANCELLED)."""
        self._fail(StreamFailed(grpc.StatusCode.CANCELLED, "router stopping"))
        for task in (self._writer, self._reader):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(StreamFailed(grpc.StatusCode.DEADLINE_EXCEEDED, "no ack within the deadline"))
