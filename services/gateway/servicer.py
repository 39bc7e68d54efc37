"""``wedsync.gateway.v1.IntegrationGatewayService``: proto in, policy, proto out.

Wire types stop here: the request is checked (:mod:`.hygiene`) into an
:class:`~services.gateway.upstream.Outgoing`, the upstream runs its policy, and the
result is rendered with its normalised form. Errors are :class:`MeshError`\\ s rendered
by the shared interceptor; RESOURCE_EXHAUSTED is rendered here so that it also carries
the ``retry-after-ms`` trailer the proto promises (next to ``google.rpc.RetryInfo``).
"""

from __future__ import annotations

import datetime
import json
import logging
import time
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from services.core.auth import current_caller
from services.core.errors import FailedPrecondition, NotFound, ResourceExhausted
from services.core.server import MAX_MESSAGE_BYTES as MAX_REPLY_BYTES
from services.gateway import health, hygiene
from services.gateway.gateway import Gateway
from services.gateway.normalizers import NORMALIZERS, Document
from services.gateway.upstream import Outgoing, Result, Upstream
from wedsync.gateway.v1 import gateway_pb2, gateway_pb2_grpc

log = logging.getLogger("wedmesh.gateway")
ANONYMOUS = "anonymous"


class GatewayServicer(gateway_pb2_grpc.IntegrationGatewayServiceServicer):
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def _upstream(self, service_id: str) -> Upstream:
        up = self.gateway.upstreams.get(service_id)
        if up is None:
            known = ", ".join(sorted(self.gateway.upstreams)) or "none"
            raise NotFound(f"unknown service_id {service_id!r}; configured upstreams: {known}")
        return up

    async def Invoke(
        self, request: gateway_pb2.InvokeRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.InvokeResponse:
        await self.gateway.ensure_built()
        up = self._upstream(request.service_id)
        # Everything the caller controls is checked here, before rate limits and breakers.
        headers = hygiene.clean_headers(dict(request.headers), up.dropped_headers) if request.headers else {}
        out = Outgoing(
            method=hygiene.check_method(request.method),
            path=hygiene.check_path(request.path),
            query=hygiene.check_query([(q.key, q.value) for q in request.query]),
            headers=headers,
            body=request.body,
            idempotency_key=hygiene.check_idempotency_key(request.idempotency_key),
            client_id=request.client_id or _peer_identity(context),
        )
        hygiene.check_body(out.body, up.config.max_body_bytes, up.service_id)
        try:
            result = await up.call(out)
        except ResourceExhausted as exc:
            await _abort_rate_limited(context, exc)
            raise
        return render(result, up, out, raw_only=request.raw_only)

    async def ListServices(
        self, request: gateway_pb2.ListServicesRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.ListServicesResponse:
        await self.gateway.ensure_built()
        # UNAVAILABLE while Redis is down, as the proto promises: no call could be rate-limited.
        await self.gateway.check_redis("ListServices")
        out = gateway_pb2.ListServicesResponse()
        for service_id, up in sorted(self.gateway.upstreams.items()):
            rl = up.config.rate_limit
            summary = gateway_pb2.ServiceSummary(
                service_id=service_id,
                display_name=up.config.display_name or service_id,
                kind=up.config.kind,
                normalizer=up.config.normalizer,
                instances=up.urls,
                status=health.status(up),
                breaker_state=health.breaker_state(up),
            )
            if rl.requests:
                summary.rate_limit.CopyFrom(
                    gateway_pb2.RateLimit(requests_per_second=rl.requests / rl.window_s, burst=rl.requests)
                )
            out.services.append(summary)
        return out

    async def GetServiceHealth(
        self, request: gateway_pb2.GetServiceHealthRequest, context: grpc.aio.ServicerContext
    ) -> gateway_pb2.GetServiceHealthResponse:
        await self.gateway.ensure_built()
        up = self._upstream(request.service_id)
        return gateway_pb2.GetServiceHealthResponse(health=health.service_health(up, time.time()))


def _peer_identity(context: grpc.aio.ServicerContext) -> str:
    """The authenticated caller (mesh token ``sub``, then mTLS common name), else "anonymous"."""
    caller = current_caller()
    if caller is not None:
        return caller.service
    try:
        names = context.auth_context().get("x509_common_name") or []
    except (AttributeError, NotImplementedError):
        return ANONYMOUS
    if names:
        name = names[0]
        return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
    return ANONYMOUS


def render(result: Result, up: Upstream, out: Outgoing, *, raw_only: bool) -> gateway_pb2.InvokeResponse:
    """The reply, never past the gRPC message limit (:data:`MAX_REPLY_BYTES`).

    gRPC would refuse a larger one only while sending it, as RESOURCE_EXHAUSTED with no
    hint why. The body is at most ``max_response_bytes`` (at most half the limit), so it
    is the normalised copy that can push a reply over: then it is left out (normalisation
    FAILED, saying so; the body stays). Should the body and headers alone not fit, the
    call is FAILED_PRECONDITION naming the cap to lower.

    ``ByteSize()`` serialises the whole reply (upb encodes to measure), body included, and
    gRPC serialises it again to send it: so it is only called when a cheap upper bound
    (:func:`_rough_size`) comes within :data:`SIZE_CHECK_SLACK` of the limit."""
    reply = _render(result, up, out, raw_only=raw_only)
    if _rough_size(reply) <= MAX_REPLY_BYTES - SIZE_CHECK_SLACK:
        return reply
    size = reply.ByteSize()
    if size <= MAX_REPLY_BYTES:
        return reply
    field = reply.WhichOneof("normalized")
    if field is not None:
        reply.ClearField(field)
        reply.normalization = gateway_pb2.NORMALIZATION_STATUS_FAILED
        reply.normalization_error = (
            f"{up.config.normalizer} normalised form left out: with it the reply would be {size} bytes, "
            f"past the gRPC message limit of {MAX_REPLY_BYTES}; the raw body is complete (ask for "
            "less to get it normalised)"
        )
        size = reply.ByteSize()
        if size <= MAX_REPLY_BYTES:
            return reply
    raise FailedPrecondition(
        f"{up.service_id}: the reply would be {size} bytes ({len(reply.body)} of body), past the gRPC "
        f"message limit of {MAX_REPLY_BYTES}; ask for less (filter or page) or lower "
        f"gateway.upstreams.{up.service_id}.max_response_bytes"
    )


# Below the limit by more than this, a reply's rough size (:func:`_rough_size`) is trusted
# without measuring it: far more than the tags, lengths and small fields it leaves out.
SIZE_CHECK_SLACK = 1024 * 1024


def _rough_size(reply: gateway_pb2.InvokeResponse) -> int:
    """At least the serialised size of ``reply`` less a few KiB of tags, lengths and scalar
    fields, without serialising the body: the body's length, the normalised copy's size
    (measured: it can be larger than the body, e.g. a list's defaults), and each string at
    four bytes per character (UTF-8's most) plus framing."""
    field = reply.WhichOneof("normalized")
    rough = len(reply.body) + (getattr(reply, field).ByteSize() if field is not None else 0)
    texts = [*reply.headers.keys(), *reply.headers.values()]
    texts += [reply.instance, reply.upstream_request_id, reply.normalization_error]
    return rough + sum(4 * len(text) + 16 for text in texts)


def _render(result: Result, up: Upstream, out: Outgoing, *, raw_only: bool) -> gateway_pb2.InvokeResponse:
    response = result.response
    headers = hygiene.response_headers(response.headers.multi_items())
    duration = duration_pb2.Duration()
    duration.FromNanoseconds(round(result.duration * 1e9))
    reply = gateway_pb2.InvokeResponse(
        status_code=response.status_code,
        headers=headers,
        body=response.content,
        instance=result.instance,
        attempts=result.attempts,
        duration=duration,
        upstream_request_id=headers.get("request-id") or headers.get("x-request-id", ""),
        normalization=gateway_pb2.NORMALIZATION_STATUS_RAW,
    )
    normalizer = NORMALIZERS.get(up.config.normalizer)
    if raw_only or normalizer is None or not response.content:
        return reply
    try:
        body: Any = json.loads(response.content)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return reply  # not JSON: nothing to normalise
    except (ValueError, RecursionError) as exc:  # JSON, but an integer too long or nested too deep
        return _failed(reply, up, exc)
    try:
        normalized = normalizer(Document(response.status_code, body, out.method, out.path, out.query))
    except _UNREADABLE as exc:
        return _failed(reply, up, exc)
    if normalized is not None:
        getattr(reply, normalized.field).CopyFrom(normalized.message)
        reply.normalization = gateway_pb2.NORMALIZATION_STATUS_NORMALIZED
    return reply


# What a normaliser raises on an upstream body it cannot read: wrong types, numbers out of
# range (inf, huge ints, times outside years 1-9999), nesting past the recursion limit.
# The body is the upstream's; the answer is FAILED with the reason, never INTERNAL.
_UNREADABLE = (ValueError, TypeError, LookupError, AttributeError, ArithmeticError, RecursionError)
MAX_REASON_CHARS = 200


def _failed(
    reply: gateway_pb2.InvokeResponse, up: Upstream, exc: BaseException
) -> gateway_pb2.InvokeResponse:
    """``reply`` marked NORMALIZATION_STATUS_FAILED with a short reason (the raw body stays)."""
    reason = str(exc) or type(exc).__name__
    if len(reason) > MAX_REASON_CHARS:
        reason = reason[: MAX_REASON_CHARS - 1] + "…"
    reply.normalization = gateway_pb2.NORMALIZATION_STATUS_FAILED
    reply.normalization_error = f"{up.config.normalizer} normaliser could not read the body: {reason}"
    return reply


async def _abort_rate_limited(context: grpc.aio.ServicerContext, error: ResourceExhausted) -> None:
    """RESOURCE_EXHAUSTED with RetryInfo and the ``retry-after-ms`` trailer."""
    seconds = max(0.0, error.retry_after or 0.0)
    delay = duration_pb2.Duration()
    delay.FromTimedelta(datetime.timedelta(seconds=seconds))
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    status = rpc_status.to_status(
        status_pb2.Status(code=error.grpc_code.value[0], message=error.message, details=[detail])
    )
    trailers = (*status.trailing_metadata, ("retry-after-ms", str(max(1, round(seconds * 1000)))))
    await context.abort(status.code, status.details, trailers)
