"""Building blocks of the configuration model, shared by core and each service's section.

Kept apart from :mod:`services.core.config` so that a service's own section model
(``services/<area>/settings.py``) can extend them without an import cycle.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

Port = Annotated[int, Field(ge=1, le=65535)]
OptionalPort = Annotated[int, Field(ge=0, le=65535, description="0 turns it off")]
Host = Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9.\-:\[\]]+$")]
Seconds = Annotated[float, Field(ge=0, le=3600)]


class ConfigError(Exception):
    """The configuration cannot be used; the message names the key and the reason."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerTls(Section):
    """TLS on a listening port; with ``client_ca_file`` it is mutual TLS.

    Files are PEM. With mutual TLS a client must present a certificate signed by the
    client CA, or the handshake fails before any RPC runs.
    """

    cert_file: str
    key_file: str
    client_ca_file: str | None = None


class ClientTls(Section):
    """How mesh processes (and ``wedmesh probe``) reach a TLS port.

    ``ca_file`` unset means the system roots; ``cert_file``/``key_file`` are the client
    certificate for mutual TLS; ``server_name`` overrides the name checked in the server's
    certificate (when dialling by IP, for instance).
    """

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None


class GrpcServerConfig(Section):
    """One gRPC service process: where it listens and how it shuts down."""

    host: Host = "127.0.0.1"
    port: Port
    metrics_port: OptionalPort = 0
    advertise_address: str | None = Field(
        default=None, description="host:port other processes use to reach it"
    )
    tls: ServerTls | None = Field(default=None, description="TLS (and mutual TLS) on this port")

    @property
    def address(self) -> str:
        return self.advertise_address or f"{self.host}:{self.port}"
