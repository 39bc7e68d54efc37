"""The helper internal Python services use to join the mesh as message receivers.

A few lines give a service a ``MessageSinkService`` server with the standard health
service, a registration with the registry, a lease kept alive in the background
(re-registering if the registry forgot it), and a clean deregistration on stop::

    async def handle(message: Message) -> None:
        ...  # raise Retry("busy", retry_after=5) or Reject("bad payload") when needed

    async with MeshInstance("notification-service", handle, registry="127.0.0.1:50051"):
        await forever()

Delivery is at-least-once: a handler must be idempotent on ``message.message_id``
(``message.attempt`` says which attempt this is; both also travel as gRPC metadata).
Returning normally accepts the message; :class:`Retry` asks for a later retry;
:class:`Reject` (or INVALID_ARGUMENT) dead-letters it; any other exception is a retry.

In a mesh with TLS and caller auth on, pass ``tls=InstanceTls(...)`` and ``token=...`` (or
set ``WEDMESH_TLS_*`` and ``WEDMESH_SERVICE_TOKEN``; see :mod:`services.registry.sdk_config`):
the instance then serves its port over (mutual) TLS and registers with its own token. The
router calls it without a token: with mutual TLS, the mesh certificate is the proof.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from types import TracebackType

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from pydantic import SecretStr

from services.core.channels import open_channel
from services.core.tls import server_credentials
from services.registry.sdk_config import InstanceTls, tls_from_env, token_from_env
from services.registry.timeutil import dur, seconds_of
from wedsync.registry.v1 import message_pb2, registry_pb2, registry_pb2_grpc, sink_pb2, sink_pb2_grpc

log = logging.getLogger("wedmesh.sdk")

Message = message_pb2.Message
Handler = Callable[[message_pb2.Message], Awaitable[None]]
SINK_SERVICE = sink_pb2.DESCRIPTOR.services_by_name["MessageSinkService"].full_name
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
RPC_TIMEOUT_S = 5.0
RETRY_REGISTER_S = 1.0
ACCEPTED = sink_pb2.DeliverResponse(ack=sink_pb2.DELIVERY_ACK_ACCEPTED)

__all__ = [
    "SINK_SERVICE",
    "Handler",
    "InstanceTls",
    "MeshInstance",
    "Message",
    "Reject",
    "Retry",
    "SinkServicer",
]


class Retry(Exception):
    """Raise from a handler: temporary failure, deliver again later (after ``retry_after`` s)."""

    def __init__(self, reason: str = "", *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class Reject(Exception):
    """Raise from a handler: this message can never succeed; dead-letter it now."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


class SinkServicer(sink_pb2_grpc.MessageSinkServiceServicer):
    """``MessageSinkService`` (unary ``Deliver`` and ``DeliverStream``) calling a plain async handler.

    On a stream every delivery runs as its own task (the router's window bounds how many
    are outstanding); acks that complete in the same event-loop turn go back in one
    response. :meth:`drain` (called by :meth:`MeshInstance.stop`) finishes what each
    stream is running, answers it and ends the stream; deliveries arriving after that are
    left unanswered, which the router treats as UNAVAILABLE and fails over.
    """

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self._draining = False
        self._wakers: set[asyncio.Event] = set()

    def drain(self) -> None:
        self._draining = True
        for wake in self._wakers:
            wake.set()

    async def answer(self, message: message_pb2.Message) -> sink_pb2.DeliverResponse:
        """Run the handler on one message; the reply Deliver would give."""
        try:
            await self.handler(message)
        except Retry as exc:
            reply = sink_pb2.DeliverResponse(ack=sink_pb2.DELIVERY_ACK_RETRY, reason=exc.reason)
            if exc.retry_after is not None:
                reply.retry_after.CopyFrom(dur(exc.retry_after))
            return reply
        except Reject as exc:
            return sink_pb2.DeliverResponse(ack=sink_pb2.DELIVERY_ACK_REJECT, reason=exc.reason)
        except Exception as exc:  # the handler's bug or outage: retry later
            log.exception("handler failed", extra={"message_id": message.message_id})
            return sink_pb2.DeliverResponse(ack=sink_pb2.DELIVERY_ACK_RETRY, reason=type(exc).__name__)
        return ACCEPTED

    async def Deliver(
        self, request: sink_pb2.DeliverRequest, context: grpc.aio.ServicerContext
    ) -> sink_pb2.DeliverResponse:
        return await self.answer(request.message)

    async def DeliverStream(  # type: ignore[override]
        self,
        request_iterator: AsyncIterator[sink_pb2.DeliverStreamRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[sink_pb2.DeliverStreamResponse]:
        outbox: list[sink_pb2.StreamAck] = []
        running: set[asyncio.Task[None]] = set()
        wake = asyncio.Event()
        reading = True

        async def one(delivery: sink_pb2.StreamDelivery) -> None:
            reply = await self.answer(delivery.message)
            ack = sink_pb2.StreamAck(
                delivery_id=delivery.delivery_id, message_id=delivery.message.message_id, ack=reply.ack
            )
            if reply.ack != sink_pb2.DELIVERY_ACK_ACCEPTED:
                ack.reason = reply.reason
                if reply.HasField("retry_after"):
                    ack.retry_after.CopyFrom(reply.retry_after)
            outbox.append(ack)
            wake.set()

        async def read() -> None:
            nonlocal reading
            try:
                async for request in request_iterator:
                    if self._draining:
                        continue  # left unanswered: the router fails them over
                    for delivery in request.deliveries:
                        task = asyncio.create_task(one(delivery))
                        running.add(task)
                        task.add_done_callback(running.discard)
            finally:
                reading = False
                wake.set()

        self._wakers.add(wake)
        reader = asyncio.create_task(read())
        try:
            while True:
                await wake.wait()
                wake.clear()
                if outbox:
                    acks = outbox[:]
                    outbox.clear()
                    yield sink_pb2.DeliverStreamResponse(acks=acks)
                if (not reading or self._draining) and not running and not outbox:
                    return
        finally:
            self._wakers.discard(wake)
            reader.cancel()
            for task in list(running):
                task.cancel()


def _default_instance_id(service_name: str) -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}".replace("_", "-")[:200]


class MeshInstance:
    """One running instance of a receiving service: server, registration, lease upkeep.

    ``tls`` and ``token`` not given are read from the environment (``WEDMESH_TLS_*``,
    ``WEDMESH_SERVICE_TOKEN``); with neither, the port is plaintext and calls carry no token.
    """

    def __init__(
        self,
        service_name: str,
        handler: Handler,
        *,
        registry: str,
        host: str = "127.0.0.1",
        port: int = 0,
        advertise_host: str | None = None,
        instance_id: str | None = None,
        ttl: float | None = None,
        version: str = "",
        metadata: Mapping[str, str] | None = None,
        extra_services: Sequence[Callable[[grpc.aio.Server], None]] = (),
        tls: InstanceTls | None = None,
        token: str | SecretStr | None = None,
    ) -> None:
        self.service_name = service_name
        self.tls = tls if tls is not None else tls_from_env()
        if isinstance(token, str):
            token = SecretStr(token) if token else None
        self._token = token if token is not None else token_from_env()
        self.instance_id = instance_id or _default_instance_id(service_name)
        self.registry_address = registry
        self.host = host
        self.port = port
        self.advertise_host = advertise_host or host
        self.ttl = ttl
        self.version = version
        self.metadata = dict(metadata or {})
        self.health = health.aio.HealthServicer()
        self.lease: registry_pb2.Lease | None = None
        self._handler = handler
        self._extra = list(extra_services)
        self._server: grpc.aio.Server | None = None
        self._channel: grpc.aio.Channel | None = None
        self._registry: registry_pb2_grpc.RegistryServiceStub | None = None
        self._keeper: asyncio.Task[None] | None = None
        self._servicer = SinkServicer(handler)

    @property
    def address(self) -> str:
        return f"{self.advertise_host}:{self.port}"

    def _instance(self) -> registry_pb2.ServiceInstance:
        return registry_pb2.ServiceInstance(
            service_name=self.service_name,
            instance_id=self.instance_id,
            address=self.address,
            version=self.version,
            endpoints=[SINK_SERVICE],
            metadata=self.metadata,
        )

    async def start(self) -> MeshInstance:
        """Serve, report SERVING, register and keep the lease alive."""
        server = grpc.aio.server()
        sink_pb2_grpc.add_MessageSinkServiceServicer_to_server(self._servicer, server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        for add in self._extra:
            add(server)
        bind = f"{self.host}:{self.port}"
        if self.tls is not None:
            self.port = server.add_secure_port(bind, server_credentials(self.tls.server()))
        else:
            self.port = server.add_insecure_port(bind)
        await server.start()
        self._server = server
        await self.set_serving(True)
        client_tls = self.tls.client() if self.tls is not None else None
        self._channel = open_channel(self.registry_address, client_tls, token=self._token)
        self._registry = registry_pb2_grpc.RegistryServiceStub(self._channel)
        try:
            await self.register()
        except BaseException:
            await self.stop(grace=0)  # e.g. UNAUTHENTICATED: do not leave the port open
            raise
        self._keeper = asyncio.create_task(self._keep_alive(), name=f"lease:{self.instance_id}")
        return self

    async def set_serving(self, serving: bool) -> None:
        """What the registry's health checks see ('' and the sink's service name)."""
        status = SERVING if serving else NOT_SERVING
        for name in ("", SINK_SERVICE):
            await self.health.set(name, status)

    async def register(self) -> registry_pb2.Lease:
        assert self._registry is not None, "start() first"
        request = registry_pb2.RegisterRequest(instance=self._instance())
        if self.ttl is not None:
            request.ttl.CopyFrom(dur(self.ttl))
        reply = await self._registry.Register(request, timeout=RPC_TIMEOUT_S)
        self.lease = reply.lease
        return reply.lease

    async def _keep_alive(self) -> None:
        while True:
            granted = seconds_of(self.lease.ttl) if self.lease else RETRY_REGISTER_S * 3
            await asyncio.sleep(max(0.05, granted / 3))
            assert self._registry is not None
            try:
                if self.lease is None:
                    await self.register()
                    continue
                reply = await self._registry.Heartbeat(
                    registry_pb2.HeartbeatRequest(lease_id=self.lease.lease_id), timeout=RPC_TIMEOUT_S
                )
                self.lease = reply.lease
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.NOT_FOUND:
                    log.warning("lease lost; registering again", extra={"instance_id": self.instance_id})
                    with contextlib.suppress(grpc.aio.AioRpcError):
                        await self.register()
                else:
                    log.warning("heartbeat failed: %s", exc.code().name)

    async def stop(self, grace: float = 2.0) -> None:
        """Deregister, go NOT_SERVING, then stop the server within ``grace`` s (once).

        Open delivery streams finish the deliveries they are running, answer them and end;
        the router sends the rest to other instances.
        """
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
        if self._registry is not None and self.lease is not None:
            lease, self.lease = self.lease, None
            with contextlib.suppress(grpc.aio.AioRpcError):
                await self._registry.Deregister(
                    registry_pb2.DeregisterRequest(lease_id=lease.lease_id), timeout=RPC_TIMEOUT_S
                )
        server, self._server = self._server, None
        if server is not None:
            await self.health.enter_graceful_shutdown()
            self._servicer.drain()
            await server.stop(grace)
        channel, self._channel = self._channel, None
        if channel is not None:
            await channel.close()

    async def __aenter__(self) -> MeshInstance:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
