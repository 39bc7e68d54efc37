"""A ``grpc_health_probe`` equivalent: one health Check, answered by an exit code.

Exit codes (the same as grpc_health_probe's):

====  ==========================================================
0     SERVING
1     bad arguments (including unreadable TLS files)
2     connection failed (nothing listening, TLS handshake failed, connect timeout)
3     RPC failed (timeout, unknown service NOT_FOUND, no health service UNIMPLEMENTED)
4     the service answered but is not SERVING (NOT_SERVING, UNKNOWN, SERVICE_UNKNOWN)
====  ==========================================================
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.core.settings_base import ClientTls, ConfigError
from services.core.tls import channel_credentials, channel_options

OK, BAD_ARGUMENTS, CONNECTION_FAILED, RPC_FAILED, NOT_SERVING = 0, 1, 2, 3, 4


@dataclass(frozen=True)
class ProbeResult:
    code: int
    message: str


def probe(
    address: str,
    service: str = "",
    *,
    connect_timeout: float = 1.0,
    rpc_timeout: float = 1.0,
    tls: ClientTls | None = None,
) -> ProbeResult:
    """Check ``service`` at ``address``; never raises for network trouble."""
    try:
        channel = _channel(address, tls)
    except ConfigError as exc:
        return ProbeResult(BAD_ARGUMENTS, f"error: cannot use the TLS files: {exc}")
    with channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=connect_timeout)
        except grpc.FutureTimeoutError:
            return ProbeResult(
                CONNECTION_FAILED,
                f"timeout: failed to connect service {address!r} within {connect_timeout}s",
            )
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=rpc_timeout)
        except grpc.RpcError as exc:
            code = exc.code() if isinstance(exc, grpc.Call) else None
            if code == grpc.StatusCode.UNIMPLEMENTED:
                why = "this server does not implement the grpc health protocol"
            elif code == grpc.StatusCode.NOT_FOUND:
                why = f"service {service!r} is unknown to the server"
            elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
                why = f"timeout: health rpc did not complete within {rpc_timeout}s"
            else:
                why = f"health rpc failed: {code.name if code else 'unknown'}"
            return ProbeResult(RPC_FAILED, f"error: {why}")
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        return ProbeResult(NOT_SERVING, f"service unhealthy (responded with {name!r})")
    return ProbeResult(OK, f"status: {name}")


def _channel(address: str, tls: ClientTls | None) -> grpc.Channel:
    if tls is None:
        return grpc.insecure_channel(address)
    return grpc.secure_channel(address, channel_credentials(tls), options=channel_options(tls))
