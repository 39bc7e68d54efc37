"""The one way mesh processes dial each other's gRPC ports.

Plaintext, TLS or mutual TLS per ``[client_tls]``, and — when auth is on — this process's
own bearer token (``$WEDMESH_SERVICE_TOKEN``) added to every call's metadata.

Every in-mesh dial goes through :func:`open_channel` (or :func:`open_mesh_channel`, which
reads both from the mesh config), so turning on ``[client_tls]`` and ``[auth]`` covers
every hop: gateway → registry, shim → intake, worker → router, router → sinks, the
registry's health checks, the CLI commands and the SDK's calls to the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from pydantic import SecretStr

from services.core.auth import AUTH_METADATA
from services.core.config import MeshConfig, service_token
from services.core.settings_base import ClientTls
from services.core.tls import channel_credentials, channel_options


class _TokenInterceptor(
    grpc.aio.UnaryUnaryClientInterceptor,
    grpc.aio.UnaryStreamClientInterceptor,
    grpc.aio.StreamUnaryClientInterceptor,
    grpc.aio.StreamStreamClientInterceptor,
):
    """Adds ``authorization: Bearer <token>`` to every outgoing call."""

    def __init__(self, token: SecretStr) -> None:
        self._token = token

    def _with_token(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        metadata[AUTH_METADATA] = f"Bearer {self._token.get_secret_value()}"
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )

    async def _call(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return await continuation(self._with_token(details), request)

    intercept_unary_unary = _call
    intercept_unary_stream = _call
    intercept_stream_unary = _call
    intercept_stream_stream = _call


def open_channel(
    address: str,
    tls: ClientTls | None = None,
    *,
    token: SecretStr | None = None,
    options: list[tuple[str, Any]] | None = None,
) -> grpc.aio.Channel:
    """A grpc.aio channel to another mesh process, with TLS and the caller token per config."""
    opts = [*(options or []), *channel_options(tls)]
    interceptors = [_TokenInterceptor(token)] if token is not None else None
    if tls is None:
        return grpc.aio.insecure_channel(address, options=opts, interceptors=interceptors)
    return grpc.aio.secure_channel(address, channel_credentials(tls), options=opts, interceptors=interceptors)


def open_mesh_channel(
    address: str, mesh: MeshConfig, *, options: list[tuple[str, Any]] | None = None
) -> grpc.aio.Channel:
    """:func:`open_channel` as this process's config says: ``[client_tls]`` and, with auth on,
    the token in ``$<auth.token_env>`` (None when that variable is unset: the call then
    goes without one and the server answers UNAUTHENTICATED naming what is missing)."""
    return open_channel(address, mesh.client_tls, token=service_token(mesh.auth), options=options)


def missing_token_hint(mesh: MeshConfig) -> str:
    """What a person should do after UNAUTHENTICATED from a mesh port (no secret in it)."""
    if not mesh.auth.enabled:
        return "the server has auth on but this config has auth.enabled = false, so no token was sent"
    return (
        f"set ${mesh.auth.token_env} to a valid token from `wedmesh token --service NAME` "
        "(add --scope admin for dead-letter replay and purge)"
    )
