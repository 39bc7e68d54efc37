"""Caller credentials: bearer tokens naming the service and its scopes."""

from __future__ import annotations

import logging
import time

import grpc
import jwt
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.cli import main
from services.core.auth import Authenticator, current_caller
from services.core.channels import open_channel
from services.core.config import AuthConfig, ConfigError, ShutdownConfig, build_authenticator
from services.core.local_redis import free_port
from services.core.server import ServiceDef, ServiceHost
from services.core.settings_base import GrpcServerConfig

ROUTER = "wedsync.registry.v1.RouterService"
SECRET, ROTATED = b"first-secret-for-tests-0123456789", b"second-secret-for-tests-987654321"


async def whoami(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    caller = current_caller()
    assert caller is not None
    return f"{caller.service}:{','.join(sorted(caller.scopes))}".encode()


async def start(auth: Authenticator) -> ServiceHost:
    handlers = {
        "GetQueueStats": grpc.unary_unary_rpc_method_handler(whoami),
        "ReplayDeadLetters": grpc.unary_unary_rpc_method_handler(whoami),
    }
    generic = grpc.method_handlers_generic_handler(ROUTER, handlers)
    host = ServiceHost(
        [ServiceDef(ROUTER, lambda server: server.add_generic_rpc_handlers((generic,)))],
        GrpcServerConfig(host="127.0.0.1", port=free_port()),
        ShutdownConfig(drain_delay_s=0),
        auth=auth,
    )
    await host.start()
    return host


async def call(port: int, method: str, token: str | None) -> bytes:
    from pydantic import SecretStr

    async with open_channel(f"127.0.0.1:{port}", token=SecretStr(token) if token else None) as channel:
        reply: bytes = await channel.unary_unary(f"/{ROUTER}/{method}")(b"", timeout=5)
        return reply


@pytest.fixture
async def host() -> ServiceHost:
    host = await start(Authenticator([SECRET, ROTATED]))
    yield host
    await host.stop()


async def test_valid_token_names_the_caller_and_scopes(host: ServiceHost) -> None:
    """A token signed with a mesh secret reaches the handler as current_caller()."""
    token = Authenticator([SECRET]).issue("notification-service", ["send"])
    assert await call(host.port, "GetQueueStats", token) == b"notification-service:send"


async def test_rotated_secret_still_verifies(host: ServiceHost) -> None:
    """A token signed with the second (older or newer) secret is accepted during rotation."""
    token = Authenticator([ROTATED]).issue("analytics-service")
    assert await call(host.port, "GetQueueStats", token) == b"analytics-service:"


@pytest.mark.parametrize(
    ("token", "fragment"),
    [
        (None, "needs a bearer token"),
        (Authenticator([b"not-a-mesh-secret-0123456789abcdef"]).issue("x"), "not signed by a mesh secret"),
        ("garbage", "invalid"),
        (
            jwt.encode(
                {"iss": "wedmesh", "sub": "x", "exp": int(time.time()) - 600}, SECRET, algorithm="HS256"
            ),
            "expired",
        ),
    ],
)
async def test_missing_or_bad_token_is_unauthenticated(
    host: ServiceHost, token: str | None, fragment: str
) -> None:
    """No token, a foreign signature, garbage or an expired token: UNAUTHENTICATED saying which."""
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(host.port, "GetQueueStats", token)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert fragment in (err.value.details() or "")


async def test_admin_rpc_needs_the_admin_scope(host: ServiceHost) -> None:
    """Dead-letter replay without 'admin' is PERMISSION_DENIED naming the scope; with it, allowed."""
    plain = Authenticator([SECRET]).issue("notification-service", ["send"])
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(host.port, "ReplayDeadLetters", plain)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "'admin' scope" in (err.value.details() or "")
    admin = Authenticator([SECRET]).issue("ops", ["admin"])
    assert await call(host.port, "ReplayDeadLetters", admin) == b"ops:admin"


async def test_health_stays_open_for_probes(host: ServiceHost) -> None:
    """Probes need no token: the health service is exempt."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_tokens_never_reach_the_logs(host: ServiceHost, caplog: pytest.LogCaptureFixture) -> None:
    """Neither a good nor a bad token appears in any log record."""
    good = Authenticator([SECRET]).issue("notification-service")
    caplog.set_level(logging.DEBUG)
    await call(host.port, "GetQueueStats", good)
    with pytest.raises(grpc.aio.AioRpcError):
        await call(host.port, "GetQueueStats", good + "x")
    dumped = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert good not in dumped and good[-20:] not in dumped


def test_auth_on_without_secrets_fails_at_start() -> None:
    """auth.enabled with the secrets variable unset stops start-up naming the variable."""
    with pytest.raises(ConfigError, match="WEDMESH_AUTH_SECRETS"):
        build_authenticator(AuthConfig(enabled=True), environ={})
    assert build_authenticator(AuthConfig(enabled=False), environ={}) is None


def test_cli_issues_a_verifiable_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`wedmesh token` signs with the first secret; the mesh verifies it."""
    monkeypatch.setenv("WEDMESH_AUTH_SECRETS", f"{SECRET.decode()},{ROTATED.decode()}")
    assert main(["token", "--service", "ops", "--scope", "admin", "--ttl", "60"]) == 0
    token = capsys.readouterr().out.strip()
    caller = Authenticator([ROTATED, SECRET]).authenticate([("authorization", f"Bearer {token}")], "/x/y")
    assert caller is not None and caller.service == "ops" and caller.is_admin
