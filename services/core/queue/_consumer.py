"""Worker: the consumer loop that claims entries, runs a handler and settles the outcome.

Loop: claim (one script: promote due retries, reclaim expired leases, read by priority
weight) → if nothing came, block on the streams (XREADGROUP BLOCK) until the next claim is
due → run each delivery as a task. Claims run back to back while they return work, and
otherwise at least every ``min(idle_wait, lease / 4)`` or when a delayed retry falls due;
a trickle of new entries is read by the blocking read alone.
While handlers run, one renewal task extends all their leases every ``lease / 3`` so a
slow but alive handler keeps its entries; a crashed worker stops renewing and its entries
are reclaimed by another worker about one lease later.

Renewal runs on the event loop: a handler that blocks the loop for longer than a lease
(synchronous CPU work) loses its lease — run such work in a thread.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TypeVar

from services.core.errors import MeshError
from services.core.queue._envelope import Delivery
from services.core.queue._queue import DurableQueue

log = logging.getLogger(__name__)

Handler = Callable[[Delivery], Awaitable[None]]
Ready = Callable[[], bool | Awaitable[bool]]
T = TypeVar("T")

DEFAULT_LEASE_S = 30.0
DEFAULT_MAX_IN_FLIGHT = 16
DEFAULT_IDLE_WAIT_S = 1.0
ERROR_BACKOFF_S = 0.5


def default_consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _slot(delivery: Delivery) -> tuple[int, str]:
    return delivery.stream_index, delivery.entry_id


class Worker:
    """Runs ``handler`` for the entries of ``queue``; at-least-once, leases renewed.

    ``max_in_flight`` caps concurrent deliveries; ``ready()`` (sync or async) is asked
    before every claim, so a router can stop claiming when no target instance is healthy
    instead of burning attempts into dead letters. ``batch_wait`` > 0: after a read that
    brought a trickle (fewer entries than free slots), pause that long before the next, so
    that at moderate rates events are read, finished and acked several at a time.
    """

    def __init__(
        self,
        queue: DurableQueue,
        handler: Handler,
        *,
        consumer: str | None = None,
        lease: float = DEFAULT_LEASE_S,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        ready: Ready | None = None,
        idle_wait: float = DEFAULT_IDLE_WAIT_S,
        batch_wait: float = 0.0,
    ) -> None:
        if max_in_flight < 1 or lease <= 0 or idle_wait <= 0 or batch_wait < 0:
            raise ValueError("max_in_flight >= 1, lease > 0, idle_wait > 0 and batch_wait >= 0 are required")
        self.queue = queue
        self.handler = handler
        self.consumer = consumer or default_consumer_name()
        self.lease = lease
        self.max_in_flight = max_in_flight
        self.ready = ready
        self.idle_wait = idle_wait
        self.batch_wait = batch_wait
        # Keyed by (stream, entry id): two priority streams can hand out the same entry id.
        self._in_flight: dict[tuple[int, str], Delivery] = {}
        # Read past ``max_in_flight`` (XREADGROUP's COUNT is per stream): held, leases
        # renewed, dispatched first as slots free up.
        self._held: collections.deque[Delivery] = collections.deque()
        self._tasks: set[asyncio.Task[None]] = set()
        self._slot_free = asyncio.Event()
        self._stopping = asyncio.Event()
        self._main: asyncio.Task[None] | None = None
        self._idle = False
        self._acks: list[tuple[Delivery, asyncio.Future[bool]]] = []
        self._acks_scheduled = False
        # Claim (promote due retries, reclaim expired leases, read by weight) while busy and
        # at least every min(idle_wait, lease / 4); in between, a trickle of new entries
        # comes from the blocking read alone. A claim scans pending entries: run per event,
        # it cost more Redis time than the events themselves.
        self._busy = True
        self._claim_at = 0.0

    def __repr__(self) -> str:
        return f"Worker(queue={self.queue.name!r}, consumer={self.consumer!r})"

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def start(self) -> asyncio.Task[None]:
        """Run the loop as a task (see :meth:`stop`)."""
        if self._main is None:
            self._main = asyncio.create_task(self.run(), name=f"queue-worker:{self.consumer}")
        return self._main

    async def stop(self, grace: float = 10.0) -> None:
        """Stop claiming, let running handlers finish for ``grace`` s, cancel the rest.

        Cancelled deliveries stay pending and are reclaimed by another worker after a lease.
        """
        self._stopping.set()
        if self._main is not None:
            if self._idle:  # holds nothing claimed right now: interrupt the wait
                self._main.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._main
        if self._tasks:
            _, running = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
        with contextlib.suppress(MeshError):
            await self.queue.forget_consumer(self.consumer)

    async def __aenter__(self) -> Worker:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def run(self) -> None:
        """Claim and dispatch until cancelled or :meth:`stop` is called."""
        renewer = asyncio.create_task(self._renew_forever())
        try:
            while not self._stopping.is_set():
                try:
                    await self._step()
                except MeshError as exc:  # Redis unavailable: back off, keep going
                    log.warning("queue %s: %s", self.queue.name, exc)
                    await self._idle_for(asyncio.sleep(ERROR_BACKOFF_S))
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer

    async def _step(self) -> None:
        free = self.max_in_flight - len(self._in_flight)
        if free <= 0:
            self._slot_free.clear()
            await self._idle_for(self._slot_free.wait())
            return
        if self._held:
            while self._held and free > 0:
                self._dispatch(self._held.popleft())
                free -= 1
            return
        if not await self._is_ready():
            await self._idle_for(asyncio.sleep(self.idle_wait))
            return
        loop = asyncio.get_running_loop()
        deliveries: list[Delivery] = []
        if self._busy or loop.time() >= self._claim_at:
            claimed = await self.queue.claim(self.consumer, free, self.lease)
            deliveries = claimed.deliveries
            self._busy = bool(deliveries)
            self._claim_at = loop.time() + min(self.idle_wait, self.lease / 4)
            if claimed.next_due is not None:
                self._claim_at = min(self._claim_at, loop.time() + max(claimed.next_due, 0.001))
        if not deliveries and not self._stopping.is_set():
            wait = max(self._claim_at - loop.time(), 0.001)
            # A stop may cancel this read; anything it had claimed stays pending and is
            # reclaimed after a lease (late, never lost).
            deliveries = await self._idle_for(self.queue.wait(self.consumer, free, wait))
            self._busy = len(deliveries) >= free  # a backlog: claim (by weight) until it is gone
            trickle = 0 < len(deliveries) < free
        else:
            trickle = False
        for delivery in deliveries:
            if _slot(delivery) in self._in_flight:  # reclaimed to ourselves: one run only
                continue
            if free > 0:
                self._dispatch(delivery)
                free -= 1
            else:
                self._held.append(delivery)
        if trickle and self.batch_wait:
            # Let the next few arrive before reading again: one read, finish batch and ack
            # for several events instead of each (at most ``batch_wait`` more latency).
            await self._idle_for(asyncio.sleep(self.batch_wait))

    async def _idle_for(self, waiting: Awaitable[T]) -> T:
        """Await ``waiting`` while marked idle, so that :meth:`stop` may cancel it."""
        self._idle = True
        try:
            return await waiting
        finally:
            self._idle = False

    async def _is_ready(self) -> bool:
        if self.ready is None:
            return True
        verdict = self.ready()
        if inspect.isawaitable(verdict):
            verdict = await verdict
        return bool(verdict)

    def _dispatch(self, delivery: Delivery) -> None:
        self._in_flight[_slot(delivery)] = delivery
        task = asyncio.create_task(self._deliver(delivery))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, delivery: Delivery) -> None:
        try:
            error: BaseException | None = None
            try:
                await self.handler(delivery)
            except Exception as exc:
                error = exc
            if delivery.lease_lost:
                log.warning("queue %s: lease lost on %s", self.queue.name, delivery.message_id)
            try:
                if error is None:
                    await self._ack(delivery)
                else:
                    await self.queue.settle(delivery, error)
            except MeshError as exc:  # stays pending; reclaimed after a lease
                log.warning("queue %s: could not settle %s: %s", self.queue.name, delivery.message_id, exc)
        finally:
            self._in_flight.pop(_slot(delivery), None)
            self._slot_free.set()

    async def _ack(self, delivery: Delivery) -> bool:
        """Ack with the other deliveries that finish in this event-loop turn (one script)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        self._acks.append((delivery, future))
        if not self._acks_scheduled:
            self._acks_scheduled = True
            loop.call_soon(self._flush_acks)
        return await future

    def _flush_acks(self) -> None:
        self._acks_scheduled = False
        batch, self._acks = self._acks, []
        task = asyncio.create_task(self._send_acks(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_acks(self, batch: list[tuple[Delivery, asyncio.Future[bool]]]) -> None:
        try:
            done = await self.queue.ack_many([d for d, _ in batch])
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        except BaseException:
            for _, future in batch:
                future.cancel()
            raise
        for (_, future), acked in zip(batch, done, strict=True):
            if not future.done():
                future.set_result(acked)

    async def _renew_forever(self) -> None:
        interval = self.lease / 3
        while True:
            await asyncio.sleep(interval)
            held = [*self._in_flight.values(), *self._held]
            if not held:
                continue
            try:
                await self.queue.renew(held)
            except MeshError as exc:
                log.warning("queue %s: lease renewal failed: %s", self.queue.name, exc)
