"""One delivery of a claimed router message to a healthy instance of its target.

:meth:`Deliverer.deliver`: pick a healthy instance round-robin and hand it the message
(with its attempt) under ``deliver_timeout_s``: on the instance's ``DeliverStream`` (one
long-lived stream per instance shared by every delivery, batched per event-loop turn, at
most ``max_in_flight`` unanswered; see ``streams.py``), or, for a sink that answers
UNIMPLEMENTED to the stream, a unary ``Deliver`` with the message id and attempt also in
gRPC metadata. A stream failure means, for each delivery outstanding on it, what the same
status means for a unary call. UNAVAILABLE (refused, reset, the instance died mid-call)
fails over to another healthy instance within the same attempt, up to ``MAX_FAILOVERS``
instances; INVALID_ARGUMENT/UNIMPLEMENTED and a REJECT ack dead-letter at once
(UNIMPLEMENTED of the stream only switches that instance to unary); anything else (a RETRY
ack, DEADLINE_EXCEEDED, other errors) is a failed attempt, retried with exponential
backoff until ``max_retries`` is spent. A message claimed just as its last instance went
away is held (lease renewed) until one is healthy again rather than spending an attempt.

Sinks are dialled per ``[client_tls]`` (the mesh's client certificate is how a sink with
mutual TLS knows the caller is the router) and without a bearer token: a sink is a user
service, which cannot verify a mesh token without the mesh's signing secret, so a token
would prove nothing there and only hand every sink a credential it could replay.
"""

from __future__ import annotations

import logging
import time

import grpc

from services.core.channels import open_channel
from services.core.queue import Delivery, PermanentError, RetryableError, RetryPolicy
from services.core.settings_base import ClientTls
from services.registry import metrics
from services.registry.codec import METADATA_ATTEMPT, METADATA_MESSAGE_ID
from services.registry.settings import RegistryConfig
from services.registry.streams import SinkStream, StreamFailed
from services.registry.timeutil import seconds_of
from services.registry.view import InstanceViews
from wedsync.registry.v1 import message_pb2, sink_pb2, sink_pb2_grpc

Reply = sink_pb2.DeliverResponse | sink_pb2.StreamAck

log = logging.getLogger("wedmesh.router")

IDLE_WAIT_S = 0.5
MAX_FAILOVERS = 3
CHANNEL_OPTIONS = [("grpc.keepalive_time_ms", 30_000), ("grpc.keepalive_permit_without_calls", 1)]


class Deliverer:
    """The router's connections to sink instances, and one delivery attempt over them."""

    def __init__(
        self, views: InstanceViews, config: RegistryConfig, policy: RetryPolicy, tls: ClientTls | None
    ) -> None:
        self.views = views
        self.config = config
        self.policy = policy
        self.tls = tls
        self._stubs: dict[str, sink_pb2_grpc.MessageSinkServiceStub] = {}
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._streams: dict[str, SinkStream] = {}
        self._unary_only: set[str] = set()
        self._users: dict[str, set[str]] = {}  # address -> services delivered to through it

    def addresses(self) -> set[str]:
        """Addresses this router holds a channel to."""
        return set(self._channels)

    async def forget(self, service: str) -> None:
        """Close the connections no service but ``service`` (retired: no Worker any more) used.

        Called after the service's Worker stopped, so none of its deliveries is running; a
        service still delivering to an address is one of its users, so its connection stays.
        A later delivery to a closed address dials it again.
        """
        unused = []
        for address, users in list(self._users.items()):
            users.discard(service)
            if not users:
                del self._users[address]
                unused.append(address)
        for address in unused:  # taken out first: a delivery meanwhile opens a new connection
            stream = self._streams.pop(address, None)
            channel = self._channels.pop(address, None)
            self._stubs.pop(address, None)
            self._unary_only.discard(address)
            try:
                if stream is not None:
                    await stream.close()
                if channel is not None:
                    await channel.close()
            except Exception:  # it is out of the maps: the next delivery there dials anew
                log.exception("router: closing the connection to %s failed", address)

    async def close(self) -> None:
        for stream in list(self._streams.values()):
            await stream.close()
        self._streams.clear()
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
        self._stubs.clear()
        self._users.clear()

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
            users = self._users.get(instance.address)
            if users is None:
                users = self._users[instance.address] = set()
            users.add(service)
            try:
                reply = await self._call(instance.address, message, delivery.attempt)
            except StreamFailed as exc:
                code = exc.code
                last_error = f"instance={instance.instance_id} {code.name}: {exc.details}"
                metrics.count(service, code.name.lower())
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
            metrics.count(service, "accepted")
            created = _created_ms(message)
            if created:
                metrics.observe_latency(service, max(0.0, time.time() - created / 1000))
            return
        reason = f"instance={instance_id} {reply.reason}".strip()
        if reply.ack == sink_pb2.DELIVERY_ACK_REJECT:
            metrics.count(service, "rejected")
            raise PermanentError(f"rejected: {reason}")
        metrics.count(service, "retry")
        retry_after = None
        if reply.HasField("retry_after"):
            retry_after = max(seconds_of(reply.retry_after), self.policy.backoff(attempt))
        raise RetryableError(f"retry requested: {reason}", retry_after=retry_after)


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
