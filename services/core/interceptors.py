"""The one server interceptor every gRPC service runs.

For each call it: takes the caller's ``x-request-id`` (or makes one) into the log context;
checks the caller's bearer token when auth is on (services/core/auth.py);
records the caller's deadline for outgoing calls and refuses calls whose deadline has
already passed; turns :class:`MeshError` into its status code (with a
``google.rpc.RetryInfo`` when it carries ``retry_after``) and any other exception into
INTERNAL with the request id — never a stack trace to the caller; counts and times the
call in Prometheus and logs it as one JSON line: at INFO when it failed or was slow
(:data:`SLOW_CALL_S`), at DEBUG when it succeeded — one line per call at INFO cost the
gateway more CPU than its own logic.

The wrapped handler and the labelled metric children are built once per method, not per
call: this runs on every RPC of every service.
"""

from __future__ import annotations

import datetime
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from services.core import auth, deadlines, logs, metrics
from services.core.auth import Authenticator
from services.core.errors import MeshError

log = logging.getLogger("wedmesh.rpc")

REQUEST_ID_HEADER = "x-request-id"
_QUIET_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")
# A successful call this slow is logged at INFO like a failed one; others at DEBUG.
SLOW_CALL_S = 1.0
_OK = grpc.StatusCode.OK


class ServerInterceptor(grpc.aio.ServerInterceptor):
    """Request id, caller auth, deadline, error mapping, metrics and access log for every RPC."""

    def __init__(self, auth: Authenticator | None = None) -> None:
        self.auth = auth
        # method -> (the service's handler, our wrapped handler); rebuilt if it changes
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method: str = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(method, handler)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        call = _Call(method, self.auth)
        kind, factory = _kind(handler)
        behaviour = getattr(handler, kind)
        if inspect.isasyncgenfunction(behaviour):
            wrapped: Any = call.wrap_generator(behaviour)
        else:
            wrapped = call.wrap_coroutine(behaviour)
        built: grpc.RpcMethodHandler = factory(
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
        return built


def _kind(handler: grpc.RpcMethodHandler) -> tuple[str, Any]:
    if handler.unary_unary:
        return "unary_unary", grpc.unary_unary_rpc_method_handler
    if handler.unary_stream:
        return "unary_stream", grpc.unary_stream_rpc_method_handler
    if handler.stream_unary:
        return "stream_unary", grpc.stream_unary_rpc_method_handler
    return "stream_stream", grpc.stream_stream_rpc_method_handler


class _Call:
    def __init__(self, method: str, auth: Authenticator | None) -> None:
        self.method = method
        self.auth = auth
        service, _, name = method.lstrip("/").partition("/")
        self.labels = (service, name)
        self.quiet = method.startswith(_QUIET_PREFIXES)
        self._latency = metrics.GRPC_LATENCY.labels(service, name)
        self._counters: dict[grpc.StatusCode, Any] = {}

    def _counter(self, code: grpc.StatusCode) -> Any:
        counter = self._counters.get(code)
        if counter is None:
            counter = self._counters[code] = metrics.GRPC_REQUESTS.labels(*self.labels, code.name)
        return counter

    def wrap_coroutine(self, behaviour: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
            tokens = self._enter(context)
            started, code = time.perf_counter(), _OK
            caller = auth.set_caller(None)
            try:
                await self._check_deadline(context, tokens[2])
                self._authenticate(context)
                return await behaviour(request, context)
            except BaseException as exc:
                code = await self._fail(exc, context)
            finally:
                _reset_caller(caller)
                self._exit(tokens, started, code, context)

        return wrapper

    def wrap_generator(
        self, behaviour: Callable[..., AsyncIterator[Any]]
    ) -> Callable[..., AsyncIterator[Any]]:
        async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            tokens = self._enter(context)
            started, code = time.perf_counter(), _OK
            caller = auth.set_caller(None)
            try:
                await self._check_deadline(context, tokens[2])
                self._authenticate(context)
                async for item in behaviour(request, context):
                    yield item
            except BaseException as exc:
                code = await self._fail(exc, context)
            finally:
                _reset_caller(caller)
                self._exit(tokens, started, code, context)

        return wrapper

    def _enter(self, context: grpc.aio.ServicerContext) -> tuple[Any, Any, float | None]:
        rid = ""
        for key, value in context.invocation_metadata() or ():
            if key == REQUEST_ID_HEADER and isinstance(value, str):
                rid = value[:64]
                break
        left = context.time_remaining()
        return logs.request_id_var.set(rid or logs.new_request_id()), deadlines.set_deadline(left), left

    def _authenticate(self, context: grpc.aio.ServicerContext) -> None:
        if self.auth is not None:
            auth.set_caller(self.auth.authenticate(context.invocation_metadata(), self.method))

    async def _check_deadline(self, context: grpc.aio.ServicerContext, left: float | None) -> None:
        if left is not None and left <= 0:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline passed before the call started")

    async def _fail(self, exc: BaseException, context: grpc.aio.ServicerContext) -> grpc.StatusCode:
        """Render ``exc`` as a status (re-raising what grpc must see); return the code."""
        if isinstance(exc, MeshError):
            await abort_with(context, exc)
        if isinstance(exc, grpc.aio.AbortError | GeneratorExit):
            raise exc
        if isinstance(exc, BaseException) and not isinstance(exc, Exception):
            raise exc  # CancelledError, KeyboardInterrupt: the call is gone
        log.exception("unhandled error in %s", self.method)
        await context.abort(
            grpc.StatusCode.INTERNAL,
            f"internal error while serving {self.method}; request id {logs.request_id_var.get()}",
        )
        raise AssertionError("unreachable")  # abort always raises

    def _exit(
        self,
        tokens: tuple[Any, Any, float | None],
        started: float,
        code: grpc.StatusCode,
        context: grpc.aio.ServicerContext,
    ) -> None:
        elapsed = time.perf_counter() - started
        actual = _code_of(context) or code
        self._counter(actual).inc()
        self._latency.observe(elapsed)
        if actual is not _OK:
            level = logging.INFO
        elif self.quiet:
            level = 0
        else:
            level = logging.INFO if elapsed >= SLOW_CALL_S else logging.DEBUG
        if level and log.isEnabledFor(level):
            log.log(
                level,
                "rpc",
                extra={"method": self.method, "code": actual.name, "ms": round(elapsed * 1000, 3)},
            )
        # A stream cancelled by its client finishes in another context, where the tokens
        # are foreign (ValueError): then clear the values instead.
        try:
            logs.request_id_var.reset(tokens[0])
        except ValueError:
            logs.request_id_var.set("")
        try:
            deadlines.reset_deadline(tokens[1])
        except ValueError:
            deadlines.set_deadline(None)


def _reset_caller(token: Any) -> None:
    try:
        auth.reset_caller(token)
    except ValueError:  # a foreign context (see _Call._exit)
        auth.set_caller(None)


def _code_of(context: grpc.aio.ServicerContext) -> grpc.StatusCode | None:
    try:
        code = context.code()
    except (AttributeError, NotImplementedError):  # older grpcio
        return None
    if code is None or isinstance(code, grpc.StatusCode):
        return code
    if isinstance(code, int):
        return _CODES.get(code)
    return None


_CODES = {member.value[0]: member for member in grpc.StatusCode}


async def abort_with(context: grpc.aio.ServicerContext, error: MeshError) -> None:
    """Abort the call with ``error``'s status; attach RetryInfo when it has a retry delay."""
    if error.retry_after is None:
        await context.abort(error.grpc_code, error.message)
    delay = duration_pb2.Duration()
    delay.FromTimedelta(datetime.timedelta(seconds=max(0.0, error.retry_after or 0.0)))
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    status = rpc_status.to_status(
        status_pb2.Status(code=error.grpc_code.value[0], message=error.message, details=[detail])
    )
    await context.abort(status.code, status.details, status.trailing_metadata)
