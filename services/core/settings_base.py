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


class GrpcServerConfig(Section):
    """One gRPC service process: where it listens and how it shuts down."""

    host: Host = "127.0.0.1"
    port: Port
    metrics_port: OptionalPort = 0
    advertise_address: str | None = Field(
        default=None, description="host:port other processes use to reach it"
    )

    @property
    def address(self) -> str:
        return self.advertise_address or f"{self.host}:{self.port}"
