"""The HTTP intake shim: ``POST /webhooks/{provider_id}`` → ``WebhookIntake.Ingest``.

It does the HTTP part only — content type, body limit enforced while reading, status
mapping — and forwards the exact raw bytes and headers to intake over one persistent
gRPC channel, so signature checks see what the provider signed. Anything intake cannot
answer (down, overloaded, not yet implemented) becomes 503 with ``Retry-After``: the
provider retries and nothing is lost, because intake acknowledges only what it persisted.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncIterator

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.core import logs, metrics
from services.core.config import ShimConfig
from services.core.errors import http_status_for
from wedsync.webhooks.v1 import webhooks_pb2, webhooks_pb2_grpc

log = logging.getLogger("wedmesh.shim")

PROVIDER_ID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
JSON_TYPE = re.compile(r"^application/(?:[\w.+-]+\+)?json\s*(?:;.*)?$", re.IGNORECASE)
MAX_HEADERS = 100
RETRY_AFTER_S = "5"
_OUTCOME = {
    webhooks_pb2.INGEST_OUTCOME_ACCEPTED: "accepted",
    webhooks_pb2.INGEST_OUTCOME_DUPLICATE: "duplicate",
    webhooks_pb2.INGEST_OUTCOME_IGNORED: "ignored",
}
# Client mistakes keep their own status; everything else means "intake cannot take it now".
_CLIENT_CODES = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.NOT_FOUND,
}


class _BodyTooLarge(Exception):
    pass


def _error(status: int, message: str, *, retry: bool = False) -> JSONResponse:
    headers = {"Retry-After": RETRY_AFTER_S} if retry else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def _read_body(request: Request, limit: int) -> bytes:
    """Read at most ``limit`` bytes; stop as soon as the body would pass it."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _BodyTooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(config: ShimConfig) -> Starlette:
    """The shim as an ASGI app; one gRPC channel to intake for its whole life."""
    state: dict[str, object] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        channel = grpc.aio.insecure_channel(config.intake_address)
        state["intake"] = webhooks_pb2_grpc.WebhookIntakeServiceStub(channel)
        state["health"] = health_pb2_grpc.HealthStub(channel)
        try:
            yield
        finally:
            await channel.close()

    async def receive_webhook(request: Request) -> Response:
        response = await _receive(request)
        metrics.HTTP_REQUESTS.labels("webhook", str(response.status_code)).inc()
        return response

    async def _receive(request: Request) -> Response:
        token = logs.request_id_var.set(request.headers.get("x-request-id", "")[:64] or logs.new_request_id())
        try:
            provider_id = request.path_params["provider_id"]
            if not PROVIDER_ID.match(provider_id):
                return _error(404, "unknown provider: provider ids are 1-64 letters, digits, '-' or '_'")
            content_type = request.headers.get("content-type", "")
            if not JSON_TYPE.match(content_type):
                return _error(415, "webhooks must be sent with Content-Type: application/json")
            if len(request.headers) > MAX_HEADERS:
                return _error(400, f"too many headers (at most {MAX_HEADERS})")
            try:
                body = await _read_body(request, config.max_body_bytes)
            except _BodyTooLarge:
                return _error(413, f"body larger than {config.max_body_bytes} bytes")
            except ClientDisconnect:
                return _error(400, "client disconnected before the body was complete")
            headers: dict[str, str] = {}
            for name, value in request.headers.items():
                headers[name] = f"{headers[name]}, {value}" if name in headers else value
            client = request.client
            ingest = webhooks_pb2.IngestRequest(
                provider_id=provider_id,
                headers=headers,
                body=body,
                remote_addr=f"{client.host}:{client.port}" if client else "",
            )
            try:
                reply = await state["intake"].Ingest(  # type: ignore[attr-defined]
                    ingest,
                    timeout=config.intake_timeout_s,
                    metadata=(("x-request-id", logs.request_id_var.get()),),
                )
            except grpc.aio.AioRpcError as exc:
                return _rpc_error(exc)
            outcome = _OUTCOME.get(reply.outcome, "accepted")
            return JSONResponse({"event_id": reply.event_id, "status": outcome})
        finally:
            logs.request_id_var.reset(token)

    def _rpc_error(exc: grpc.aio.AioRpcError) -> Response:
        code = exc.code()
        if code in _CLIENT_CODES:
            return _error(http_status_for(code), exc.details() or code.name.lower())
        log.warning("intake unavailable", extra={"code": code.name})
        return _error(503, "webhook intake is unavailable; retry later", retry=True)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "alive"})

    async def readyz(request: Request) -> Response:
        try:
            reply = await state["health"].Check(  # type: ignore[attr-defined]
                health_pb2.HealthCheckRequest(service=""), timeout=1.0
            )
        except grpc.aio.AioRpcError as exc:
            return _error(503, f"intake not reachable ({exc.code().name})", retry=True)
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            return _error(503, "intake is not serving", retry=True)
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


async def run_shim(config: ShimConfig) -> None:
    """Serve the shim with uvicorn until SIGTERM/SIGINT (uvicorn handles both)."""
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(
            create_app(config),
            host=config.host,
            port=config.port,
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_keep_alive=5,
            timeout_graceful_shutdown=10,
            limit_concurrency=2048,
        )
    )
    await server.serve()
