"""The router's dispatcher: one durable queue and one Worker per target service.

Each target service ``S`` has a :class:`DurableQueue` named ``router:S`` (priority streams,
delayed retries, dead letters; see ``services.core.queue``). Its Worker claims in batches
(one script call hands out up to ``max_in_flight`` entries, weighted 70/20/10 across
HIGH/NORMAL/LOW with unused share flowing down, so HIGH drains first and LOW is never
starved) and delivers them concurrently. The Worker's ``ready`` predicate is false while
no instance of ``S`` is healthy: it then stops claiming (one cheap check per
``IDLE_WAIT_S``, no busy loop) and messages wait, persisted, in Redis.

One delivery (:meth:`Dispatcher.deliver`): pick a healthy instance round-robin and hand
it the message (with its attempt) under ``deliver_timeout_s``: on the instance's
``DeliverStream`` (one long-lived stream per instance shared by every delivery, batched
per event-loop turn, at most ``max_in_flight`` unanswered; see ``streams.py``), or, for a
sink that answers UNIMPLEMENTED to the stream, a unary ``Deliver`` with the message id
and attempt also in gRPC metadata. A stream failure means, for each delivery outstanding
on it, what the same status means for a unary call. UNAVAILABLE (refused, reset, the
instance died mid-call) fails over to another healthy instance within the same attempt,
up to ``MAX_FAILOVERS`` instances; INVALID_ARGUMENT/UNIMPLEMENTED and a REJECT ack dead-letter
at once (UNIMPLEMENTED of the stream only switches that instance to unary); anything
else (a RETRY ack, DEADLINE_EXCEEDED, other errors) is a failed attempt,
retried with exponential backoff until ``max_retries`` is spent. A message claimed just
as its last instance went away is held (lease renewed) until one is healthy again rather
than spending an attempt. A router replica killed mid-delivery stops renewing; its
messages are reclaimed by another replica after ``queue_lease_s``.

Sinks are dialled per ``[client_tls]`` (the mesh's client certificate is how a sink with
mutual TLS knows the caller is the router) and without a bearer token: a sink is a user
service, which cannot verify a mesh token without the mesh's signing secret, so a token
would prove nothing there and only hand every sink a credential it could replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from typing import Any

import grpc

from services.core.autopipeline import batching
from services.core.channels import open_channel
from services.core.errors import MeshError, translate_redis_errors
from services.core.queue import Delivery, DurableQueue, PermanentError, RetryableError, RetryPolicy, Worker
from services.core.redis_client import AnyRedis
from services.core.server import ServiceHost
from services.core.settings_base import ClientTls
from services.registry import metrics
from services.registry.admin import RouterAdmin, services_key
from services.registry.codec import METADATA_ATTEMPT, METADATA_MESSAGE_ID, queue_name
from services.registry.routes import RoutesTable
from services.registry.settings import RegistryConfig
from services.registry.streams import SinkStream, StreamFailed
from services.registry.timeutil import seconds_of
from services.registry.view import InstanceViews
from wedsync.registry.v1 import message_pb2, sink_pb2, sink_pb2_grpc

log = logging.getLogger("wedmesh.router")

Reply = sink_pb2.DeliverResponse | sink_pb2.StreamAck

IDLE_WAIT_S = 0.5
MAX_FAILOVERS = 3
DISCOVER_SERVICES_S = 1.0
STATS_EXPORT_S = 5.0
CHANNEL_OPTIONS = [("grpc.keepalive_time_ms", 30_000), ("grpc.keepalive_permit_without_calls", 1)]


class Dispatcher:
    """Background task: serve every target service's queue from this replica."""

    def __init__(
        self,
        client: AnyRedis,
        views: InstanceViews,
        config: RegistryConfig,
        routes: RoutesTable,
        *,
        tls: ClientTls | None = None,
    ) -> None:
        self.client = client
        self.tls = tls
        self.views = views
        self.config = config
        self.routes = routes
        self.policy = RetryPolicy(
            max_attempts=1 + config.default_max_retries,
            initial_backoff=config.retry_initial_backoff_s,
            max_backoff=max(config.retry_max_backoff_s, config.retry_initial_backoff_s),
        )
        self._batching = batching(client)
        self.admin = RouterAdmin(client, self.queue)
        self._queues: dict[str, DurableQueue] = {}
        self._workers: dict[str, Worker] = {}
        self._known: set[str] = set()
        self._stubs: dict[str, sink_pb2_grpc.MessageSinkServiceStub] = {}
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._streams: dict[str, SinkStream] = {}
        self._unary_only: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._running = False

    def queue(self, service: str) -> DurableQueue:
        q = self._queues.get(service)
        if q is None:
            q = self._queues[service] = DurableQueue(self._batching, queue_name(service), policy=self.policy)
        return q

    async def note_service(self, service: str) -> None:
        """Remember that ``service`` has a queue (once per replica), and serve it."""
        if service in self._known:
            return
        with translate_redis_errors("note router service"):
            await self.client.sadd(services_key(), service)
        self._known.add(service)
        self._serve(service)

    def _serve(self, service: str) -> None:
        if not self._running or service in self._workers:
            return

        async def ready() -> bool:
            return await self.views.ready(service)

        async def handle(delivery: Delivery) -> None:
            await self.deliver(service, delivery)

        worker = Worker(
            self.queue(service),
            handle,
            lease=self.config.queue_lease_s,
            max_in_flight=self.config.max_in_flight,
            ready=ready,
            idle_wait=IDLE_WAIT_S,
        )
        self._workers[service] = worker
        worker.start()

    async def start(self, host: ServiceHost | None = None) -> None:
        self._running = True
        for service in self.routes.services:
            await self.note_service(service)
        self._tasks = [
            asyncio.create_task(self._follow_services(), name="router-services"),
            asyncio.create_task(self._export_stats(), name="router-stats"),
        ]

    async def stop(self) -> None:
        self._running = False
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.gather(*(w.stop(grace=self.config.deliver_timeout_s) for w in self._workers.values()))
        self._workers.clear()
        for stream in list(self._streams.values()):
            await stream.close()
        self._streams.clear()
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
        self._stubs.clear()

    async def _follow_services(self) -> None:
        while True:
            try:
                for service in await self.admin.services():
                    self._known.add(service)
                    self._serve(service)
            except MeshError as exc:
                log.warning("router: %s", exc)
            await asyncio.sleep(DISCOVER_SERVICES_S)

    async def _export_stats(self) -> None:
        while True:
            await asyncio.sleep(STATS_EXPORT_S)
            try:
                await self.admin.stats()
            except MeshError as exc:
                log.warning("router stats: %s", exc)

    def _stub(self, address: str) -> sink_pb2_grpc.MessageSinkServiceStub:
        stub = self._stubs.get(address)
        if stub is None:
            channel = open_channel(address, self.tls, options=CHANNEL_OPTIONS)
            self._channels[address] = channel
            stub = self._stubs[address] = sink_pb2_grpc.MessageSinkServiceStub(channel)
        return stub

    def _stream(self, address: str) -> SinkStream:
        stream = self._streams.get(address)
        if stream is None:

            def closed(which: SinkStream) -> None:
                if self._streams.get(address) is which:
                    del self._streams[address]

            stream = self._streams[address] = SinkStream(
                self._stub(address), window=self.config.max_in_flight, on_close=closed
            )
        return stream

    async def _call(self, address: str, message: message_pb2.Message, attempt: int) -> Reply:
        """One attempt on one instance: streamed when it supports it, else unary Deliver."""
        timeout = self.config.deliver_timeout_s
        if address not in self._unary_only:
            try:
                return await self._stream(address).deliver(message, timeout)
            except StreamFailed as exc:
                if exc.code != grpc.StatusCode.UNIMPLEMENTED:
                    raise
                self._unary_only.add(address)  # an older sink: unary from now on
        metadata = ((METADATA_MESSAGE_ID, message.message_id), (METADATA_ATTEMPT, str(attempt)))
        try:
            return await self._stub(address).Deliver(
                sink_pb2.DeliverRequest(message=message), timeout=timeout, metadata=metadata
            )
        except grpc.aio.AioRpcError as exc:
            raise StreamFailed(exc.code(), exc.details() or "") from None

    async def deliver(self, service: str, delivery: Delivery) -> None:
        """Deliver one claimed message; raise to have the queue retry or dead-letter it."""
        message = message_pb2.Message.FromString(delivery.payload)
        message.attempt = delivery.attempt
        _check_ttl(message)
        tried: set[str] = set()
        last_error = ""
        while True:
            instance = await self.views.choose(service, tried)
            if instance is None:
                if tried:
                    raise RetryableError(last_error)
                await self.views.wait_change(service, IDLE_WAIT_S)  # hold it: nobody to take it
                continue
            tried.add(instance.instance_id)
            try:
                reply = await self._call(instance.address, message, delivery.attempt)
            except StreamFailed as exc:
                code = exc.code
                last_error = f"instance={instance.instance_id} {code.name}: {exc.details}"
                _count(service, code.name.lower())
                if code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNIMPLEMENTED):
                    raise PermanentError(last_error) from None
                if code == grpc.StatusCode.UNAVAILABLE:
                    self.views.suspend(instance)
                    if len(tried) < MAX_FAILOVERS:
                        continue
                raise RetryableError(last_error) from None
            self._settle_reply(service, message, reply, instance.instance_id, delivery.attempt)
            return

    def _settle_reply(
        self,
        service: str,
        message: message_pb2.Message,
        reply: Reply,
        instance_id: str,
        attempt: int,
    ) -> None:
        if reply.ack == sink_pb2.DELIVERY_ACK_ACCEPTED:
            _count(service, "accepted")
            created = _created_ms(message)
            if created:
                _latency(service).observe(max(0.0, time.time() - created / 1000))
            return
        reason = f"instance={instance_id} {reply.reason}".strip()
        if reply.ack == sink_pb2.DELIVERY_ACK_REJECT:
            _count(service, "rejected")
            raise PermanentError(f"rejected: {reason}")
        _count(service, "retry")
        retry_after = None
        if reply.HasField("retry_after"):
            retry_after = max(seconds_of(reply.retry_after), self.policy.backoff(attempt))
        raise RetryableError(f"retry requested: {reason}", retry_after=retry_after)


@functools.cache
def _counter(service: str, outcome: str) -> Any:
    return metrics.DELIVERIES.labels(service, outcome)


def _count(service: str, outcome: str) -> None:
    _counter(service, outcome).inc()


@functools.cache
def _latency(service: str) -> Any:
    return metrics.DELIVERY_LATENCY.labels(service)


def _created_ms(message: message_pb2.Message) -> int | None:
    """``created_at`` in ms, or None when it is outside protobuf's range.

    Send refuses such a time, but a message queued before it did must not make the code
    after a sink's ACCEPTED raise (which turned into redelivery until dead-lettered).
    """
    try:
        return int(message.created_at.ToMilliseconds())
    except ValueError:
        return None


def _check_ttl(message: message_pb2.Message) -> None:
    if not message.HasField("ttl") or not message.HasField("created_at"):
        return
    ttl = seconds_of(message.ttl)
    created = _created_ms(message)
    if ttl > 0 and created is not None and time.time() > created / 1000 + ttl:
        raise PermanentError("expired: not delivered within its ttl")
