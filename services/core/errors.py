"""The mesh's errors, and the one place that maps them to gRPC and HTTP statuses.

Errors are plain data that say what went wrong and what the caller can do; rendering
them is a separate layer (the interceptor for gRPC, the shim for HTTP)::

    MeshError                      INTERNAL / 500
    ├── InvalidArgument            INVALID_ARGUMENT / 400
    ├── NotFound                   NOT_FOUND / 404
    ├── AlreadyExists              ALREADY_EXISTS / 409
    ├── FailedPrecondition         FAILED_PRECONDITION / 400
    ├── OutOfRange                 OUT_OF_RANGE / 400
    ├── Unauthenticated            UNAUTHENTICATED / 401
    ├── PermissionDenied           PERMISSION_DENIED / 403
    ├── ResourceExhausted          RESOURCE_EXHAUSTED / 429 (carries retry_after)
    ├── Unavailable                UNAVAILABLE / 503 (carries retry_after)
    ├── DeadlineExceeded           DEADLINE_EXCEEDED / 504
    └── Unimplemented              UNIMPLEMENTED / 501

:func:`translate_redis_errors` is the one boundary where ``redis.exceptions`` become ours.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import grpc
import redis.exceptions
from google.rpc import error_details_pb2
from grpc_status import rpc_status


class MeshError(Exception):
    """Base: a message a person can act on, plus how to render it."""

    grpc_code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    @property
    def http_status(self) -> int:
        return http_status_for(self.grpc_code)

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class InvalidArgument(MeshError):
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(MeshError):
    grpc_code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(MeshError):
    grpc_code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(MeshError):
    grpc_code = grpc.StatusCode.FAILED_PRECONDITION


class OutOfRange(MeshError):
    grpc_code = grpc.StatusCode.OUT_OF_RANGE


class Unauthenticated(MeshError):
    grpc_code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(MeshError):
    grpc_code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(MeshError):
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(MeshError):
    grpc_code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(MeshError):
    grpc_code = grpc.StatusCode.DEADLINE_EXCEEDED


class Unimplemented(MeshError):
    grpc_code = grpc.StatusCode.UNIMPLEMENTED


_HTTP_FOR_GRPC = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


def retry_delay_of(error: grpc.aio.AioRpcError) -> float | None:
    """The server's ``google.rpc.RetryInfo`` delay in seconds, if it sent one.

    Clients inside the mesh pass it on (a worker parks the event that long, the shim turns
    it into ``Retry-After``) instead of guessing a backoff of their own.
    """
    try:
        status = rpc_status.from_call(error)  # type: ignore[arg-type]
    except ValueError:  # trailers that contradict the call's code: ignore them
        return None
    for detail in status.details if status is not None else ():
        info = error_details_pb2.RetryInfo()
        if detail.Unpack(info):
            return max(0.0, info.retry_delay.ToTimedelta().total_seconds())
    return None


def http_status_for(code: grpc.StatusCode) -> int:
    """The HTTP status for a gRPC status: the one table both renderings use."""
    return _HTTP_FOR_GRPC.get(code, 500 if code != grpc.StatusCode.OK else 200)


# Errors a failover, a cluster resharding or a busy/full Redis answers with: retry later.
_TRANSIENT = (
    redis.exceptions.ReadOnlyError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
    redis.exceptions.MasterDownError,
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.SlotNotCoveredError,
    redis.exceptions.MaxConnectionsError,
)


@contextlib.contextmanager
def translate_redis_errors(what: str) -> Iterator[None]:
    """Turn Redis failures into :class:`Unavailable` (the caller may retry later)."""
    try:
        yield
    except _TRANSIENT as exc:
        raise Unavailable(f"{what}: Redis is failing over or busy; retry shortly", retry_after=1.0) from exc
    except redis.exceptions.BusyLoadingError as exc:
        raise Unavailable(f"{what}: Redis is loading its data; retry shortly", retry_after=1.0) from exc
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        raise Unavailable(f"{what}: Redis is unreachable; retry later", retry_after=1.0) from exc
    except redis.exceptions.RedisError as exc:
        raise MeshError(f"{what}: unexpected Redis error ({type(exc).__name__})") from exc
