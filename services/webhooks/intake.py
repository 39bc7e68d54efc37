"""Ingest: verify → parse → dedup + persist (one queue script) → answer; history follows.

The acknowledgement is returned only after the provider's queue stream holds the event:
``DurableQueue.enqueue`` checks the idempotency key (the provider's event id, kept for
the dedup window) and XADDs in one Lua script; ``submit`` says whether the key was seen
(DUPLICATE, with the first event's id). Redis failures surface as Unavailable (HTTP 503).

Backpressure: the same script refuses a new event when the provider's backlog (events
accepted but not yet processed) is at ``webhooks.providers.<id>.max_queue_depth``. Intake
then answers UNAVAILABLE with a retry delay, which the shim renders as 503 + Retry-After —
the status every provider retries — and nothing about the event is kept, so its retry is
accepted once the worker catches up. A repeat of an event the queue already holds is still
DUPLICATE (200): the idempotency key is checked before the limit.

Ignored types (authentic, outside the provider's list) are recorded in history only, under
an id derived from the provider event id, so a repeat does not record them twice: it
answers DUPLICATE with the first delivery's event id.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from services.core import logs, metrics
from services.core.errors import InvalidArgument, MeshError, NotFound, Unauthenticated, Unavailable
from services.core.ids import unique_id
from services.core.queue import Enqueued, QueueFull
from services.webhooks import records
from services.webhooks.history import History, HistoryWriter
from services.webhooks.metrics import INGEST_SECONDS, INGESTED, REJECTED
from services.webhooks.providers import Provider, body_hash, lookup
from wedsync.webhooks.v1 import webhooks_pb2

log = logging.getLogger("wedmesh.webhooks")

# Module constants: attribute lookups on protobuf enum wrappers cost ~3 µs each.
ACCEPTED = webhooks_pb2.INGEST_OUTCOME_ACCEPTED
DUPLICATE = webhooks_pb2.INGEST_OUTCOME_DUPLICATE
IGNORED = webhooks_pb2.INGEST_OUTCOME_IGNORED
RECEIVED_STATUS = webhooks_pb2.WEBHOOK_EVENT_STATUS_RECEIVED
IGNORED_STATUS = webhooks_pb2.WEBHOOK_EVENT_STATUS_IGNORED
MAX_FIELD_CHARS = 256
QUEUE_FULL_RETRY_AFTER_S = 10.0
LOG_EVERY_S = 10.0  # repeated warnings: one per provider per interval
# Metric labels: a refusal's provider label is a configured id or this (config ids cannot
# start with "_"), so requests naming made-up providers cannot grow the series without bound.
UNKNOWN_PROVIDER_LABEL = "_unknown"
QUEUE_FULL_REASON = "QUEUE_FULL"


class BacklogFull(Unavailable):
    """The provider's backlog is at ``max_queue_depth`` (503 + Retry-After, like Redis down,
    but counted apart: one means "add workers", the other "Redis is failing")."""


@dataclass(frozen=True)
class Parsed:
    event_type: str
    provider_event_id: str


def new_event_id() -> str:
    return "whe_" + unique_id()


def ignored_event_id(provider_id: str, provider_event_id: str) -> str:
    return "whi_" + hashlib.sha256(f"{provider_id}\n{provider_event_id}".encode()).hexdigest()[:32]


def parse(provider: Provider, headers: Mapping[str, str], body: bytes) -> Parsed:
    """The event type and provider event id (only ever called on a verified body)."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InvalidArgument("body is not valid JSON (or nested too deeply)") from exc
    if not isinstance(document, dict):
        raise InvalidArgument("body must be a JSON object")
    config = provider.config
    event_type = lookup(config.event_type_path, headers, document)
    if not event_type:
        raise InvalidArgument(f"event type not found at {config.event_type_path!r}")
    path = provider.config.id_path
    if path is None:
        provider_event_id = body_hash(body)
    else:
        found = lookup(path, headers, document)
        if not found:
            raise InvalidArgument(f"event id not found at {path!r}")
        provider_event_id = found
    if len(event_type) > MAX_FIELD_CHARS or len(provider_event_id) > MAX_FIELD_CHARS:
        raise InvalidArgument(f"event type and id must be at most {MAX_FIELD_CHARS} characters")
    return Parsed(event_type, provider_event_id)


class Intake:
    """The one intake code path, shared by the gRPC servicer and an in-process shim."""

    def __init__(self, providers: Mapping[str, Provider], history: History, writer: HistoryWriter) -> None:
        self.providers = providers
        self.history = history
        self.writer = writer
        self._full_log = logs.Throttle(LOG_EVERY_S)  # per provider
        self._refused_log = logs.Throttle(LOG_EVERY_S)

    def count_rejected(self, provider_id: str, exc: MeshError) -> None:
        """One refusal in ``wedmesh_webhooks_rejected_total`` (gRPC code, or QUEUE_FULL)."""
        label = provider_id if provider_id in self.providers else UNKNOWN_PROVIDER_LABEL
        reason = QUEUE_FULL_REASON if isinstance(exc, BacklogFull) else exc.grpc_code.name
        metrics.child(REJECTED, label, reason).inc()

    def provider(self, provider_id: str) -> Provider:
        provider = self.providers.get(provider_id)
        if provider is None:
            raise NotFound(f"unknown provider {provider_id!r}")
        return provider

    async def _submit(self, provider: Provider, payload: bytes, event_id: str, key: str) -> Enqueued:
        """Dedup + persist in one script; a full backlog becomes UNAVAILABLE naming the knob."""
        limit = provider.config.max_queue_depth
        try:
            return await provider.queue.submit(
                payload, message_id=event_id, idempotency_key=key, max_depth=limit
            )
        except QueueFull as exc:
            if self._full_log.due(provider.id):
                log.warning(
                    "webhooks refused: provider queue full",
                    extra={"provider": provider.id, "backlog": exc.backlog, "max_queue_depth": limit},
                )
            raise BacklogFull(
                f"provider {provider.id!r} has {exc.backlog} events waiting to be processed, at its limit "
                f"(webhooks.providers.{provider.id}.max_queue_depth = {limit}); retry later",
                retry_after=QUEUE_FULL_RETRY_AFTER_S,
            ) from exc

    def _log_refused(self, provider_id: str, remote_addr: str, exc: Unauthenticated) -> None:
        """One warning per provider per interval naming the sender (a stale secret, a probe):
        a flood of forged webhooks must not become a flood of log lines."""
        if self._refused_log.due(provider_id):
            log.warning(
                "webhook signature refused",
                extra={
                    "provider": provider_id,
                    "remote_addr": remote_addr or "unknown",
                    "reason": exc.message,
                },
            )

    async def ingest(
        self, provider_id: str, headers: Mapping[str, str], body: bytes, remote_addr: str = ""
    ) -> webhooks_pb2.IngestResponse:
        """``remote_addr`` (the front end's view of the sender, never trusted) is for logs only."""
        started = time.perf_counter()
        provider = self.provider(provider_id)
        if provider.problem:
            raise Unavailable(provider.problem, retry_after=60.0)
        headers = {k.lower(): v for k, v in headers.items()}  # a dict: protobuf maps are slow to read
        try:
            provider.verifier(headers, body, provider.keys, provider.check)
        except Unauthenticated as exc:
            self._log_refused(provider_id, remote_addr, exc)
            raise
        parsed = parse(provider, headers, body)
        received = records.now_ms()
        ignored = parsed.event_type not in provider.accepted
        event_id = ignored_event_id(provider_id, parsed.provider_event_id) if ignored else new_event_id()
        record = records.new_record(
            event_id=event_id,
            provider_id=provider_id,
            event_type=parsed.event_type,
            provider_event_id=parsed.provider_event_id,
            received_ms=received,
            body=body,
            headers=records.stored_headers(headers, provider.check.header),
            status=IGNORED_STATUS if ignored else RECEIVED_STATUS,
        )
        payload = record.SerializeToString()
        if ignored:
            outcome = IGNORED
        else:
            added = await self._submit(provider, payload, event_id, parsed.provider_event_id)
            outcome = DUPLICATE if added.duplicate else ACCEPTED
            event_id = added.message_id
        keep: dict[str, bytes | str | int] = {
            "rec": payload,
            "status": int(record.status),
            "received_ms": received,
        }
        if ignored:  # stored nowhere else: recorded before answering; a repeat is a duplicate
            if not await self.history.record(provider_id, event_id, parsed.event_type, {}, keep):
                outcome = DUPLICATE
        elif outcome == ACCEPTED:  # the queue holds it: history may lag
            self.writer.submit(provider_id, event_id, parsed.event_type, keep)
        name = records.OUTCOME_NAMES[outcome]
        metrics.child(INGESTED, provider_id, name).inc()  # provider ids come from config: bounded
        INGEST_SECONDS.observe(time.perf_counter() - started)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "webhook",
                extra={
                    "provider": provider_id,
                    "event_id": event_id,
                    "type": parsed.event_type,
                    "outcome": name,
                },
            )
        return webhooks_pb2.IngestResponse(
            event_id=event_id,
            outcome=outcome,
            event_type=parsed.event_type,
            provider_event_id=parsed.provider_event_id,
        )
