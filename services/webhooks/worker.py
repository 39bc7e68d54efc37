"""The event worker: one queue Worker per provider; normalise, hand on, record.

A delivery is handled in steps that are each safe to repeat (the queue is at-least-once):
normalise (``PermanentError`` → dead letters at once); ``RouterService.Publish`` when
``router_address`` is configured (the event id is the idempotency key); then one script
that appends the event to the normalised-events stream that Subscribe tails (once per event
id) and records it in history as PROCESSED. Any other failure retries with the provider's
policy and, after the last attempt, lands in the provider's dead-letter stream with its
attempt count and last error. A worker killed mid-event stops renewing its lease; another
claims the entry after ``worker_lease_s`` and finishes it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import grpc
from pydantic import SecretStr

from services.core import metrics
from services.core.channels import open_channel
from services.core.errors import MeshError, retry_delay_of
from services.core.queue import Delivery, PermanentError, RetryableError, Worker
from services.core.server import NOT_SERVING, SERVING, ServiceHost
from services.core.settings_base import ClientTls
from services.webhooks import records
from services.webhooks.feed import NormalizedStream
from services.webhooks.history import History
from services.webhooks.metrics import PROCESSED
from services.webhooks.normalisers import normalise
from services.webhooks.providers import Provider, health_name
from services.webhooks.settings import WebhooksConfig
from wedsync.events.v1 import events_pb2
from wedsync.registry.v1 import router_pb2, router_pb2_grpc
from wedsync.webhooks.v1 import webhooks_pb2

log = logging.getLogger("wedmesh.webhooks.worker")
# Module constants: attribute lookups on protobuf enum wrappers cost ~3 µs each.
PROCESSED_STATUS = webhooks_pb2.WEBHOOK_EVENT_STATUS_PROCESSED
FAILED_STATUS = webhooks_pb2.WEBHOOK_EVENT_STATUS_FAILED
DEAD_STATUS = webhooks_pb2.WEBHOOK_EVENT_STATUS_DEAD_LETTERED
# The router said the event itself is wrong: retrying cannot help.
_PERMANENT_CODES = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION}
MAX_ERROR_CHARS = 2000
# Calls wait (up to the timeout) for the router to come up rather than fail at once, and a
# restarted router is noticed within a second, not after gRPC's default 2-minute backoff.
CHANNEL_OPTIONS = [("grpc.initial_reconnect_backoff_ms", 200), ("grpc.max_reconnect_backoff_ms", 1000)]


def describe(error: BaseException) -> str:
    """The last-error text stored with an event (type and message, never a payload)."""
    return f"{type(error).__name__}: {error}"[:MAX_ERROR_CHARS]


class RouterPublisher:
    """``RouterService.Publish`` over one persistent channel.

    The channel follows ``[client_tls]`` and, when auth is on, carries the webhooks
    process's own token (``$WEDMESH_SERVICE_TOKEN``): the router sees the webhooks service
    as the caller.
    """

    def __init__(
        self,
        address: str,
        timeout_s: float,
        *,
        tls: ClientTls | None = None,
        token: SecretStr | None = None,
    ) -> None:
        self.address = address
        self.timeout_s = timeout_s
        self._channel = open_channel(address, tls, token=token, options=CHANNEL_OPTIONS)
        self._stub = router_pb2_grpc.RouterServiceStub(self._channel)

    async def publish(self, event: events_pb2.WeddingEvent) -> None:
        request = router_pb2.PublishRequest(event=event, idempotency_key=event.id)
        try:
            await self._stub.Publish(request, timeout=self.timeout_s, wait_for_ready=True)
        except grpc.aio.AioRpcError as exc:
            text = f"router Publish failed: {exc.code().name}: {exc.details()}"
            if exc.code() in _PERMANENT_CODES:
                raise PermanentError(text) from None
            # A full router queue says when to come back (RetryInfo); that wins over our backoff.
            raise RetryableError(text, retry_after=retry_delay_of(exc)) from None

    async def close(self) -> None:
        await self._channel.close()


class EventProcessor:
    """What one delivery goes through (also usable without a Worker, e.g. in tests)."""

    def __init__(
        self, history: History, stream: NormalizedStream, router: RouterPublisher | None = None
    ) -> None:
        self.history = history
        self.stream = stream
        self.router = router

    async def handle(self, delivery: Delivery) -> None:
        record = webhooks_pb2.WebhookEvent.FromString(delivery.payload)
        record.event_id = delivery.message_id
        provider_id = record.provider_id
        try:
            normalized = normalise(record)
            if self.router is not None:
                await self.router.publish(normalized)
            record.status = PROCESSED_STATUS
            record.attempts = delivery.attempt
            record.wedding_id = normalized.wedding_id
            record.normalized.CopyFrom(normalized)
            record.updated_at.CopyFrom(records.timestamp(records.now_ms()))
            record.ClearField("raw_body")  # the raw body stays in history only (in delivery.payload)
            record.ClearField("headers")
            await self.stream.finish(
                record,
                {
                    "status": int(PROCESSED_STATUS),
                    "attempts": delivery.attempt,
                    "last_error": "",
                    "wedding_id": normalized.wedding_id,
                    "normalized": normalized.SerializeToString(),
                },
                {"rec": delivery.payload, "received_ms": record.received_at.ToMilliseconds()},
            )
        except Exception as exc:
            dead = isinstance(exc, PermanentError) or delivery.attempt >= delivery.max_attempts
            status = DEAD_STATUS if dead else FAILED_STATUS
            metrics.child(PROCESSED, provider_id, "dead" if dead else "failed").inc()
            log.warning(
                "webhook processing failed",
                extra={"event_id": record.event_id, "attempt": delivery.attempt, "dead": dead},
            )
            try:
                await self.history.record(
                    provider_id,
                    record.event_id,
                    record.event_type,
                    {"status": int(status), "attempts": delivery.attempt, "last_error": describe(exc)},
                    {"rec": delivery.payload, "received_ms": record.received_at.ToMilliseconds()},
                )
            except MeshError:
                pass  # the queue still holds the event; history catches up on the next attempt
            raise
        metrics.child(PROCESSED, provider_id, "processed").inc()


class EventWorkers:
    """The Background that runs a queue Worker for every configured provider."""

    def __init__(
        self, config: WebhooksConfig, providers: Mapping[str, Provider], processor: EventProcessor
    ) -> None:
        self.config = config
        self.providers = providers
        self.processor = processor
        self.workers: list[Worker] = []

    async def start(self, host: ServiceHost) -> None:
        for provider in self.providers.values():
            await host.health.set(health_name(provider.id), NOT_SERVING if provider.problem else SERVING)
        if not self.config.worker_enabled:
            return
        for provider in self.providers.values():
            worker = Worker(
                provider.queue,
                self.processor.handle,
                lease=self.config.worker_lease_s,
                max_in_flight=self.config.worker_max_in_flight,
                batch_wait=self.config.worker_batch_wait_s,
            )
            worker.start()
            self.workers.append(worker)

    async def stop(self) -> None:
        for worker in self.workers:
            await worker.stop()
        self.workers.clear()
        if self.processor.router is not None:
            await self.processor.router.close()
