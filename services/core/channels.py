"""The one way mesh processes dial each other's gRPC ports.

Plaintext, TLS or mutual TLS per ``[client_tls]``, and — when auth is on — this process's
own bearer token (``$WEDMESH_SERVICE_TOKEN``) added to every call's metadata.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from pydantic import SecretStr

from services.core.auth import AUTH_METADATA
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
