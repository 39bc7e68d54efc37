"""TLS material for gRPC servers, gRPC clients and the shim, read once at start.

Unreadable files fail start-up with the config key and the path (never their contents).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import grpc

from services.core.settings_base import ClientTls, ConfigError, ServerTls


def _read(path: str | None, key: str) -> bytes | None:
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc.strerror or exc}") from exc


def server_credentials(tls: ServerTls) -> grpc.ServerCredentials:
    """TLS for a gRPC port; mutual TLS (client certificate required) with a client CA."""
    cert = _read(tls.cert_file, "tls.cert_file")
    key = _read(tls.key_file, "tls.key_file")
    client_ca = _read(tls.client_ca_file, "tls.client_ca_file")
    assert cert is not None and key is not None
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


def channel_credentials(tls: ClientTls) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=_read(tls.ca_file, "client_tls.ca_file"),
        private_key=_read(tls.key_file, "client_tls.key_file"),
        certificate_chain=_read(tls.cert_file, "client_tls.cert_file"),
    )


def channel_options(tls: ClientTls | None) -> list[tuple[str, Any]]:
    if tls is not None and tls.server_name:
        return [("grpc.ssl_target_name_override", tls.server_name)]
    return []


def uvicorn_ssl(tls: ServerTls | None) -> dict[str, Any]:
    """uvicorn keyword arguments for HTTPS (and mutual TLS) on the shim."""
    if tls is None:
        return {}
    for path, key in ((tls.cert_file, "shim.tls.cert_file"), (tls.key_file, "shim.tls.key_file")):
        _read(path, key)
    options: dict[str, Any] = {"ssl_certfile": tls.cert_file, "ssl_keyfile": tls.key_file}
    if tls.client_ca_file:
        _read(tls.client_ca_file, "shim.tls.client_ca_file")
        options |= {"ssl_ca_certs": tls.client_ca_file, "ssl_cert_reqs": ssl.CERT_REQUIRED}
    return options
