"""``wedsync.registry.v1.RouterService``: Send, Publish, stats and dead letters."""

from __future__ import annotations

import asyncio
import time

import grpc

from services.core.errors import InvalidArgument, MeshError, ResourceExhausted
from services.core.ids import unique_id
from services.core.queue import QueueFull
from services.registry.codec import BY_NAME, TO_QUEUE, max_attempts
from services.registry.dispatcher import Dispatcher
from services.registry.routes import RoutesTable
from services.registry.settings import RegistryConfig
from services.registry.timeutil import ts
from services.registry.validation import check_name
from wedsync.registry.v1 import message_pb2, router_pb2, router_pb2_grpc

EVENT_CONTENT_TYPE = "application/x-protobuf; messageType=wedsync.events.v1.WeddingEvent"
MAX_KEY_CHARS = 512
MAX_BATCH = 1000
CANONICAL_PREFIXES = ("payment.", "booking.", "availability.", "email.")


class RouterServicer(router_pb2_grpc.RouterServiceServicer):
    """Accept messages into per-service durable queues; the Dispatcher delivers them."""

    def __init__(self, dispatcher: Dispatcher, routes: RoutesTable, config: RegistryConfig) -> None:
        self.dispatcher = dispatcher
        self.routes = routes
        self.config = config

    async def enqueue(self, message: message_pb2.Message, attempts: int | None = None) -> tuple[str, bool]:
        """Validate, stamp and persist one message; (message id, duplicate).

        ``max_queue_depth`` is enforced by the queue's enqueue script itself (atomic with the
        dedup and the XADD), so concurrent Sends can never overshoot it and a repeated
        idempotency key still answers duplicate when the queue is full.

        ``attempts`` overrides what ``max_retries`` gives (a route may allow 0 retries,
        which a Message cannot say: its 0 means the router default).
        """
        service = check_name(message.to_service, "message.to_service")
        if message.max_retries < 0:
            raise InvalidArgument("message.max_retries must not be negative")
        if message.priority not in TO_QUEUE:
            raise InvalidArgument(f"message.priority {message.priority} is not a known priority")
        for field in ("ordering_key", "idempotency_key", "message_id"):
            if len(getattr(message, field)) > MAX_KEY_CHARS:
                raise InvalidArgument(f"message.{field} is longer than {MAX_KEY_CHARS} characters")
        now = time.time()
        if not message.message_id:
            message.message_id = unique_id()
        if not message.HasField("created_at"):
            message.created_at.CopyFrom(ts(now * 1000))
        message.attempt = 0
        delay = None
        if message.HasField("deliver_after"):
            delay = max(0.0, message.deliver_after.ToMilliseconds() / 1000 - now)
        queue = self.dispatcher.queue(service)
        await self.dispatcher.note_service(service)
        try:
            added = await queue.submit(
                message.SerializeToString(),
                TO_QUEUE[message.priority],
                message_id=message.message_id,
                max_attempts=attempts or max_attempts(message.max_retries, self.config.default_max_retries),
                delay=delay,
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

    async def Send(
        self, request: router_pb2.SendRequest, context: grpc.aio.ServicerContext
    ) -> router_pb2.SendResponse:
        message_id, duplicate = await self.enqueue(request.message)
        return router_pb2.SendResponse(message_id=message_id, duplicate=duplicate)

    async def SendBatch(
        self, request: router_pb2.SendBatchRequest, context: grpc.aio.ServicerContext
    ) -> router_pb2.SendBatchResponse:
        if len(request.messages) > MAX_BATCH:
            raise InvalidArgument(f"a SendBatch holds at most {MAX_BATCH} messages")
        results = await asyncio.gather(*(self.enqueue(m) for m in request.messages), return_exceptions=True)
        out = router_pb2.SendBatchResponse()
        for result in results:
            item = out.results.add()
            if isinstance(result, MeshError):
                item.error_code = result.grpc_code.value[0]
                item.error_message = str(result)
            elif isinstance(result, BaseException):
                raise result
            else:
                item.message_id, item.duplicate = result
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
        results = await asyncio.gather(*(self.enqueue(m, 1 + m.max_retries) for m in messages))
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
