"""``wedsync.registry.v1.RouterService``: Send, Publish, stats and dead letters."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass

import grpc

from services.core.errors import InvalidArgument, MeshError, ResourceExhausted
from services.core.ids import unique_id
from services.core.queue import DurableQueue, QueueFull
from services.registry.codec import BY_NAME, TO_QUEUE, max_attempts
from services.registry.dispatcher import Dispatcher
from services.registry.routes import RoutesTable
from services.registry.settings import RegistryConfig
from services.registry.timeutil import ts
from services.registry.validation import check_duration, check_name, check_times, check_timestamp
from wedsync.registry.v1 import message_pb2, router_pb2, router_pb2_grpc

EVENT_CONTENT_TYPE = "application/x-protobuf; messageType=wedsync.events.v1.WeddingEvent"
MAX_KEY_CHARS = 512
MAX_BATCH = 1000
CANONICAL_PREFIXES = ("payment.", "booking.", "availability.", "email.")


log = logging.getLogger("wedmesh.router")


@dataclass(frozen=True)
class Prepared:
    """A validated, stamped message's target: its service, queue and first-attempt delay."""

    service: str
    queue: DurableQueue
    delay: float | None


def _refuse(item: router_pb2.SendBatchResult, error: Exception, index: int) -> None:
    """Record one SendBatch message's failure in its result (the others are unaffected)."""
    if isinstance(error, MeshError):
        item.error_code = error.grpc_code.value[0]
        item.error_message = error.message
        return
    log.error("SendBatch message %d failed", index, exc_info=error)
    item.error_code = grpc.StatusCode.INTERNAL.value[0]
    item.error_message = (
        f"internal error while queueing this message ({type(error).__name__}); see the router log"
    )


class RouterServicer(router_pb2_grpc.RouterServiceServicer):
    """Accept messages into per-service durable queues; the Dispatcher delivers them."""

    def __init__(self, dispatcher: Dispatcher, routes: RoutesTable, config: RegistryConfig) -> None:
        self.dispatcher = dispatcher
        self.routes = routes
        self.config = config

    def prepare(self, message: message_pb2.Message) -> Prepared:
        """Validate and stamp one message, writing nothing; InvalidArgument names the bad field.

        Everything that could refuse the message happens here, before any Redis write, so a
        refused message is never half-queued and one bad message of a SendBatch or Publish
        cannot fail the others after they were persisted. Times are checked against
        protobuf's ranges: one outside them would raise when converted later (in the
        dispatcher after the sink accepted, i.e. redelivered until dead-lettered).
        """
        service = check_name(message.to_service, "message.to_service")
        if message.max_retries < 0:
            raise InvalidArgument("message.max_retries must not be negative")
        if message.priority not in TO_QUEUE:
            raise InvalidArgument(f"message.priority {message.priority} is not a known priority")
        for field in ("ordering_key", "idempotency_key", "message_id"):
            if len(getattr(message, field)) > MAX_KEY_CHARS:
                raise InvalidArgument(f"message.{field} is longer than {MAX_KEY_CHARS} characters")
        # Message's only time fields, checked directly: a generic walk (ListFields) would copy
        # the payload out of every message on the hottest path.
        for field in ("created_at", "deliver_after"):
            if message.HasField(field):
                check_timestamp(getattr(message, field), f"message.{field}")
        if message.HasField("ttl"):
            check_duration(message.ttl, "message.ttl")
        queue = self.dispatcher.queue(service)  # builds the keys: refuses before any write
        now = time.time()
        if not message.message_id:
            message.message_id = unique_id()
        if not message.HasField("created_at"):
            message.created_at.CopyFrom(ts(now * 1000))
        message.attempt = 0
        delay = None
        if message.HasField("deliver_after"):
            delay = max(0.0, message.deliver_after.ToMilliseconds() / 1000 - now)
        return Prepared(service, queue, delay)

    async def submit(
        self, message: message_pb2.Message, prepared: Prepared, attempts: int | None = None
    ) -> tuple[str, bool]:
        """Persist one prepared message; (message id, duplicate).

        ``max_queue_depth`` is enforced by the queue's enqueue script itself (atomic with the
        dedup and the XADD), so concurrent Sends can never overshoot it and a repeated
        idempotency key still answers duplicate when the queue is full.

        Admission happens first: a new target service past ``max_target_services`` is
        refused (RESOURCE_EXHAUSTED) before anything is written.

        ``attempts`` overrides what ``max_retries`` gives (a route may allow 0 retries,
        which a Message cannot say: its 0 means the router default).
        """
        service = prepared.service
        tries = attempts or max_attempts(message.max_retries, self.config.default_max_retries)
        try:
            async with self.dispatcher.sending(service):  # admission; no retirement meanwhile
                added = await prepared.queue.submit(
                    message.SerializeToString(),
                    TO_QUEUE[message.priority],
                    message_id=message.message_id,
                    max_attempts=tries,
                    delay=prepared.delay,
                    idempotency_key=message.idempotency_key or None,
                    ordering_key=message.ordering_key or None,
                    max_depth=self.config.max_queue_depth,
                )
        except QueueFull as exc:
            raise ResourceExhausted(
                f"queue of {service!r} holds {exc.backlog} waiting messages, at registry.max_queue_depth"
                f" = {exc.max_depth}; retry later",
                retry_after=exc.retry_after,
            ) from exc
        return added.message_id, added.duplicate

    async def enqueue(self, message: message_pb2.Message) -> tuple[str, bool]:
        """Validate, stamp and persist one message; (message id, duplicate)."""
        return await self.submit(message, self.prepare(message))

    async def Send(
        self, request: router_pb2.SendRequest, context: grpc.aio.ServicerContext
    ) -> router_pb2.SendResponse:
        message_id, duplicate = await self.enqueue(request.message)
        return router_pb2.SendResponse(message_id=message_id, duplicate=duplicate)

    async def SendBatch(
        self, request: router_pb2.SendBatchRequest, context: grpc.aio.ServicerContext
    ) -> router_pb2.SendBatchResponse:
        """Each message on its own: a refusal, or even an unexpected failure, is that message's result.

        The others may already be persisted by then, so failing the whole call would tell the
        caller to resend messages that were queued (router.proto promises one status each).
        """
        if len(request.messages) > MAX_BATCH:
            raise InvalidArgument(f"a SendBatch holds at most {MAX_BATCH} messages")
        out = router_pb2.SendBatchResponse()
        items = [out.results.add() for _ in request.messages]
        pending: list[tuple[int, Awaitable[tuple[str, bool]]]] = []
        for index, message in enumerate(request.messages):
            try:
                prepared = self.prepare(message)
            except Exception as exc:  # this message's result, not the whole batch's
                _refuse(items[index], exc, index)
                continue
            pending.append((index, self.submit(message, prepared)))
        results = await asyncio.gather(*(work for _, work in pending), return_exceptions=True)
        for (index, _), result in zip(pending, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result  # cancellation and the like: not a per-message outcome
                _refuse(items[index], result, index)
            else:
                items[index].message_id, items[index].duplicate = result
        return out

    async def Publish(
        self, request: router_pb2.PublishRequest, context: grpc.aio.ServicerContext
    ) -> router_pb2.PublishResponse:
        event = request.event
        if not event.id or not event.type:
            raise InvalidArgument("event.id and event.type are required")
        case = event.WhichOneof("payload")
        if event.type.startswith(CANONICAL_PREFIXES) and case is None:
            raise InvalidArgument(f"event.payload is required for a {event.type!r} event")
        check_times(event, "event")  # sinks decode the event: a bad time would poison every one
        payload = event.SerializeToString()
        key = request.idempotency_key or event.id
        messages = []
        for target in self.routes.targets(event.type):
            priority = request.priority or BY_NAME[target.priority]
            messages.append(
                message_pb2.Message(
                    to_service=target.service,
                    from_service=event.source,
                    event_type=event.type,
                    payload=payload,
                    content_type=EVENT_CONTENT_TYPE,
                    priority=priority,  # type: ignore[arg-type]
                    max_retries=target.max_retries,
                    idempotency_key=key,
                )
            )
        prepared = [self.prepare(m) for m in messages]  # all checked before any is queued
        results = await asyncio.gather(
            *(self.submit(m, p, 1 + m.max_retries) for m, p in zip(messages, prepared, strict=True))
        )
        targets = [
            router_pb2.PublishTarget(service_name=m.to_service, message_id=mid, duplicate=dup)
            for m, (mid, dup) in zip(messages, results, strict=True)
        ]
        return router_pb2.PublishResponse(message_ids=[t.message_id for t in targets], targets=targets)

    async def GetQueueStats(
        self, request: router_pb2.GetQueueStatsRequest, context: grpc.aio.ServicerContext
    ) -> router_pb2.GetQueueStatsResponse:
        if request.service_name:
            check_name(request.service_name, "service_name")
        return router_pb2.GetQueueStatsResponse(stats=await self.dispatcher.admin.stats(request.service_name))

    async def ListDeadLetters(
        self, request: router_pb2.ListDeadLettersRequest, context: grpc.aio.ServicerContext
    ) -> router_pb2.ListDeadLettersResponse:
        if request.service_name:
            check_name(request.service_name, "service_name")
        letters, token = await self.dispatcher.admin.list_dead(
            request.service_name, request.page_size, request.page_token
        )
        return router_pb2.ListDeadLettersResponse(dead_letters=letters, next_page_token=token)

    async def ReplayDeadLetters(
        self, request: router_pb2.ReplayDeadLettersRequest, context: grpc.aio.ServicerContext
    ) -> router_pb2.ReplayDeadLettersResponse:
        if request.service_name:
            check_name(request.service_name, "service_name")
        done, missing, count = await self.dispatcher.admin.replay(request.service_name, list(request.ids))
        return router_pb2.ReplayDeadLettersResponse(
            replayed_count=count, replayed_ids=done, not_found_ids=missing
        )

    async def PurgeDeadLetters(
        self, request: router_pb2.PurgeDeadLettersRequest, context: grpc.aio.ServicerContext
    ) -> router_pb2.PurgeDeadLettersResponse:
        if request.service_name:
            check_name(request.service_name, "service_name")
        done, missing, count = await self.dispatcher.admin.purge(
            request.service_name, list(request.ids), request.all
        )
        return router_pb2.PurgeDeadLettersResponse(purged_count=count, purged_ids=done, not_found_ids=missing)
