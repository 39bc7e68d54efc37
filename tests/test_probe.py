"""``wedmesh probe``: grpc_health_probe's exit codes against real servers."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable

import grpc
import pytest
from grpc_health.v1 import health, health_pb2

from services.cli import main
from services.core import probe
from services.core.local_redis import free_port
from services.core.server import NOT_SERVING, ServiceHost

GATEWAY = "wedsync.gateway.v1.IntegrationGatewayService"


async def run_probe(*args: str) -> int:
    """The probe is a blocking client: run it off the loop that serves the server."""
    return await asyncio.to_thread(main, ["probe", *args])


async def test_serving_server_exits_0(start_service: Callable[..., Awaitable[ServiceHost]]) -> None:
    """SERVING, for the server as a whole and for a named service, is exit 0."""
    host = await start_service("gateway")
    assert await run_probe(f"127.0.0.1:{host.port}") == probe.OK
    assert await run_probe(f"127.0.0.1:{host.port}", "--service", GATEWAY) == probe.OK


async def test_not_serving_exits_4(start_service: Callable[..., Awaitable[ServiceHost]]) -> None:
    """A service that answers NOT_SERVING is exit 4."""
    host = await start_service("gateway")
    await host.set_status(GATEWAY, NOT_SERVING)
    assert await run_probe(f"127.0.0.1:{host.port}", "--service", GATEWAY) == probe.NOT_SERVING


async def test_unknown_service_exits_3(start_service: Callable[..., Awaitable[ServiceHost]]) -> None:
    """NOT_FOUND for an unknown service name is an RPC failure, exit 3."""
    host = await start_service("gateway")
    assert await run_probe(f"127.0.0.1:{host.port}", "--service", "no.such.Service") == probe.RPC_FAILED


async def test_server_without_health_service_exits_3() -> None:
    """A gRPC server that does not implement grpc.health.v1 is exit 3 (UNIMPLEMENTED)."""
    server = grpc.aio.server()
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        assert await run_probe(f"127.0.0.1:{port}") == probe.RPC_FAILED
    finally:
        await server.stop(None)


async def test_health_rpc_that_hangs_exits_3() -> None:
    """A health Check that does not answer within --timeout is exit 3."""
    release = asyncio.Event()

    class Stuck(health.aio.HealthServicer):
        async def Check(self, request: health_pb2.HealthCheckRequest, context: object) -> None:
            await release.wait()

    server = grpc.aio.server()
    from grpc_health.v1 import health_pb2_grpc

    health_pb2_grpc.add_HealthServicer_to_server(Stuck(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        assert await run_probe(f"127.0.0.1:{port}", "--timeout", "0.3") == probe.RPC_FAILED
    finally:
        release.set()
        await server.stop(None)


async def test_nothing_listening_exits_2() -> None:
    """A closed port is a connection failure, exit 2."""
    assert await run_probe(f"127.0.0.1:{free_port()}", "--connect-timeout", "0.3") == probe.CONNECTION_FAILED


async def test_silent_tcp_listener_exits_2() -> None:
    """A port that accepts TCP but never speaks HTTP/2 fails to connect in time, exit 2."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert await run_probe(f"127.0.0.1:{port}", "--connect-timeout", "0.3") == probe.CONNECTION_FAILED


@pytest.mark.parametrize(
    "args",
    [
        ["127.0.0.1:1", "--timeout", "0"],
        ["127.0.0.1:1", "--timeout", "abc"],
        ["127.0.0.1:1", "--tls-ca-cert", "/x"],
        ["127.0.0.1:1", "--tls", "--tls-client-cert", "/x"],
        ["127.0.0.1:1", "--tls", "--tls-ca-cert", "/does/not/exist"],
        [],
    ],
)
def test_bad_arguments_exit_1(args: list[str]) -> None:
    """Usage mistakes (and unreadable TLS files) are exit 1, as in grpc_health_probe."""
    with pytest.raises(SystemExit) as exited:
        code = main(["probe", *args])
        raise SystemExit(code)
    assert exited.value.code == probe.BAD_ARGUMENTS


def test_cli_subprocess_reports_the_exit_code() -> None:
    """The installed entry point exits with the probe's code (2 for a closed port)."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.cli",
            "probe",
            f"127.0.0.1:{free_port()}",
            "--connect-timeout",
            "0.3",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == probe.CONNECTION_FAILED
    assert "failed to connect" in result.stderr
