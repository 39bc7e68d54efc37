"""The HTTP intake shim: ``POST /webhooks/{provider_id}`` → ``WebhookIntake.Ingest``.

It does the HTTP part only — content type, body limit enforced while reading, status
mapping — and hands the exact raw bytes and headers to intake, so signature checks see what
the provider signed. Intake is reached through a :class:`Backend`: by default one
persistent gRPC channel (``wedmesh serve shim``); inside the webhooks process
(``[webhooks] http_port``) the same app calls the very same intake code path directly,
saving a gRPC hop per webhook. Anything intake cannot answer (down, overloaded, provider
not configured) becomes 503 with ``Retry-After``: the provider retries and nothing is lost,
because intake acknowledges only what it persisted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import resource
from collections.abc import AsyncIterator
from typing import Any, Literal, Protocol

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.core import logs, metrics
from services.core.channels import open_channel
from services.core.config import MeshConfig, ShimConfig, service_token
from services.core.errors import http_status_for, retry_delay_of
from services.core.settings_base import ClientTls
from services.core.tls import uvicorn_ssl
from services.webhooks.records import OUTCOME_NAMES
from wedsync.webhooks.v1 import webhooks_pb2, webhooks_pb2_grpc

log = logging.getLogger("wedmesh.shim")

PROVIDER_ID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
JSON_TYPE = re.compile(r"^application/(?:[\w.+-]+\+)?json\s*(?:;.*)?$", re.IGNORECASE)
MAX_HEADERS = 100
REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,64}")  # anything else is replaced, never forwarded
DEFAULT_RETRY_AFTER_S = 5  # when intake gave no delay of its own
UNAVAILABLE_MESSAGE = "webhook intake is unavailable; retry later"
# Client mistakes keep their own status; everything else means "intake cannot take it now".
_CLIENT_CODES = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.NOT_FOUND,
}


class _BodyTooLarge(Exception):
    pass


class IntakeRefused(Exception):
    """Intake answered with an error: the HTTP status to send and a message for the caller."""

    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


class Backend(Protocol):
    """How the shim reaches intake: ``ingest`` raises :class:`IntakeRefused` on any error."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def ingest(
        self, provider_id: str, headers: dict[str, str], body: bytes, remote_addr: str
    ) -> webhooks_pb2.IngestResponse: ...

    async def ready(self) -> str | None:
        """None when intake can take webhooks, else why not."""
        ...


class GrpcBackend:
    """Intake over one persistent gRPC channel; non-client status codes become 503.

    The channel follows ``[client_tls]`` and, when auth is on, carries this process's token.
    """

    def __init__(
        self, config: ShimConfig, tls: ClientTls | None = None, token: SecretStr | None = None
    ) -> None:
        self.config = config
        self.tls = tls
        self.token = token
        self._channel: grpc.aio.Channel | None = None

    async def open(self) -> None:
        self._channel = open_channel(self.config.intake_address, self.tls, token=self.token)
        self._intake = webhooks_pb2_grpc.WebhookIntakeServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()

    async def ingest(
        self, provider_id: str, headers: dict[str, str], body: bytes, remote_addr: str
    ) -> webhooks_pb2.IngestResponse:
        request = webhooks_pb2.IngestRequest(
            provider_id=provider_id, headers=headers, body=body, remote_addr=remote_addr
        )
        try:
            reply: webhooks_pb2.IngestResponse = await self._intake.Ingest(
                request,
                timeout=self.config.intake_timeout_s,
                metadata=(("x-request-id", logs.request_id_var.get()),),
            )
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            if code in _CLIENT_CODES:
                raise IntakeRefused(http_status_for(code), exc.details() or code.name.lower()) from None
            log.warning("intake unavailable", extra={"code": code.name})
            delay = retry_delay_of(exc)
            # RetryInfo means intake itself refused (queue full, provider not configured): its
            # message is for the provider. Without it the failure is the channel's, whose text
            # names internal addresses.
            message = exc.details() if delay is not None and exc.details() else UNAVAILABLE_MESSAGE
            raise IntakeRefused(503, message, delay) from None
        except Exception:  # a local gRPC failure: the provider retries, nothing was acknowledged
            log.exception("calling intake failed")
            raise IntakeRefused(503, UNAVAILABLE_MESSAGE) from None
        return reply

    async def ready(self) -> str | None:
        try:
            reply = await self._health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
        except grpc.aio.AioRpcError as exc:
            return f"intake not reachable ({exc.code().name})"
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            return "intake is not serving"
        return None


def _error(
    status: int, message: str, *, retry: bool = False, retry_after: float | None = None
) -> JSONResponse:
    seconds = DEFAULT_RETRY_AFTER_S if retry_after is None else max(1, math.ceil(retry_after))
    headers = {"Retry-After": str(seconds)} if retry else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _busy_response() -> JSONResponse:
    """The answer past ``max_connections``: the shim's 503, and the connection closed."""
    response = _error(503, "too many open connections to the webhook endpoint; retry later", retry=True)
    response.headers["connection"] = "close"
    return response


async def _read_body(request: Request, limit: int) -> bytes:
    """Read at most ``limit`` bytes; stop as soon as the body would pass it."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


async def _read_body_within(request: Request, limit: int, timeout_s: float) -> bytes:
    """:func:`_read_body`, or TimeoutError after ``timeout_s``.

    What ``asyncio.timeout`` does, with one timer handle instead of its context manager
    (a third of the cost; this runs once per webhook).
    """
    task = asyncio.current_task()
    assert task is not None
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        task.cancel()

    timer = asyncio.get_running_loop().call_later(timeout_s, expire)
    try:
        return await _read_body(request, limit)
    except asyncio.CancelledError:
        if expired and task.uncancel() == 0:  # our timer, not a shutdown
            raise TimeoutError from None
        raise
    finally:
        timer.cancel()


async def _admitted(slots: asyncio.Semaphore, wait_s: float) -> bool:
    """Take a slot, waiting at most ``wait_s``; no timer at all when one is free."""
    if not slots.locked():
        await slots.acquire()
        return True
    try:
        async with asyncio.timeout(wait_s):
            await slots.acquire()
    except TimeoutError:
        return False
    return True


def create_app(config: ShimConfig, backend: Backend | None = None) -> Starlette:
    """The shim as an ASGI app; by default one gRPC channel to intake for its whole life."""
    intake: Backend = backend or GrpcBackend(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await intake.open()
        try:
            yield
        finally:
            await intake.close()

    # A burst waits its turn (in order) rather than being refused at once: refusing invites
    # every sender back within seconds, and that herd costs more than the webhooks themselves.
    slots = asyncio.Semaphore(config.max_in_flight)

    async def receive_webhook(request: Request) -> Response:
        if await _admitted(slots, config.admission_wait_s):
            try:
                response = await _receive(request)
            finally:
                slots.release()
        else:
            response = _error(
                503,
                f"too many webhooks in flight (waited {config.admission_wait_s:g} s for a slot); retry later",
                retry=True,
            )
        metrics.child(metrics.HTTP_REQUESTS, "webhook", str(response.status_code)).inc()
        return response

    async def _receive(request: Request) -> Response:
        raw_headers = request.scope["headers"]
        headers: dict[str, str] = {}  # read once: Starlette's Headers decodes on every lookup
        for raw_name, raw_value in raw_headers:
            name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        given = headers.get("x-request-id", "")
        token = logs.request_id_var.set(given if REQUEST_ID.fullmatch(given) else logs.new_request_id())
        try:
            provider_id = request.path_params["provider_id"]
            if not PROVIDER_ID.match(provider_id):
                return _error(404, "unknown provider: provider ids are 1-64 letters, digits, '-' or '_'")
            if not JSON_TYPE.match(headers.get("content-type", "")):
                return _error(415, "webhooks must be sent with Content-Type: application/json")
            if len(raw_headers) > MAX_HEADERS:
                return _error(400, f"too many headers (at most {MAX_HEADERS})")
            declared = headers.get("content-length", "")
            limit = config.max_body_bytes
            try:
                if declared.isdigit() and int(declared) > limit:
                    raise _BodyTooLarge
                body = await _read_body_within(request, limit, config.body_timeout_s)
            except _BodyTooLarge:
                return _error(413, f"body larger than {limit} bytes")
            except ClientDisconnect:
                return _error(400, "client disconnected before the body was complete")
            except TimeoutError:
                return _error(408, f"body not received within {config.body_timeout_s:g} s")
            client = request.client
            remote = f"{client.host}:{client.port}" if client else ""
            try:
                reply = await intake.ingest(provider_id, headers, body, remote)
            except IntakeRefused as exc:
                return _error(exc.status, exc.message, retry=exc.status == 503, retry_after=exc.retry_after)
            outcome = OUTCOME_NAMES.get(reply.outcome, "accepted")
            return JSONResponse({"event_id": reply.event_id, "status": outcome})
        finally:
            logs.request_id_var.reset(token)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "alive"})

    async def readyz(request: Request) -> Response:
        problem = await intake.ready()
        if problem:
            return _error(503, problem, retry=True)
        return JSONResponse({"status": "ready"})

    async def prometheus(request: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/webhooks/{provider_id}", receive_webhook, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", prometheus, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


def uvicorn_server(
    config: ShimConfig,
    backend: Backend | None = None,
    *,
    host: str,
    port: int,
    ssl: dict[str, Any] | None = None,
    http: Literal["httptools", "h11"] = "httptools",
) -> Any:
    """The uvicorn server for the shim app (the same settings standalone and embedded).

    Each request head must arrive within ``header_timeout_s``, and past ``max_connections`` a
    request is answered 503 with ``Retry-After`` like every other 503 here (see
    :mod:`.head_timeout`). There is no WebSocket route, so no WebSocket protocol is loaded and
    an upgrade is a plain request. ``http="h11"`` is for tests of the protocol on both parsers.
    """
    import uvicorn

    from services.webhooks.head_timeout import head_timeout_protocol

    raise_open_file_limit(config.max_connections)

    return uvicorn.Server(
        uvicorn.Config(
            create_app(config, backend),
            host=host,
            port=port,
            **(ssl or {}),
            http=head_timeout_protocol(config.header_timeout_s, http, busy_response=_busy_response()),
            ws="none",
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_keep_alive=5,
            timeout_graceful_shutdown=10,
            limit_concurrency=config.max_connections,
        )
    )


def raise_open_file_limit(connections: int) -> int:
    """Let this process hold ``connections`` sockets (plus headroom) if the hard limit allows.

    The usual soft limit (1024) would make accept() fail long before ``max_connections``.
    Returns the soft limit now in force.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + 1024
    if hard != resource.RLIM_INFINITY:
        wanted = min(wanted, hard)
    if wanted > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):
            log.warning("could not raise the open-file limit", extra={"soft": soft, "wanted": wanted})
    return soft


async def run_shim(mesh: MeshConfig) -> None:
    """Serve the shim with uvicorn until SIGTERM/SIGINT (uvicorn handles both).

    HTTPS (and mutual TLS) from ``[shim.tls]``; intake is dialled per ``[client_tls]``
    with this process's token when auth is on.
    """
    config = mesh.shim
    backend = GrpcBackend(config, mesh.client_tls, service_token(mesh.auth))
    from services.core.runner import freeze_startup_objects

    server = uvicorn_server(config, backend, host=config.host, port=config.port, ssl=uvicorn_ssl(config.tls))
    freeze_startup_objects()
    await server.serve()
