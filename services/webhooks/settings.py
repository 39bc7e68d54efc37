"""The `[webhooks]` section: the intake port, providers and the worker.

Each provider is a table ``[webhooks.providers.<id>]``; its secrets are never in the file:
``secrets_env`` names the environment variable holding them (comma-separated = several
active secrets, for rotation). Durations that may exceed an hour use :data:`LongSeconds`.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from services.core.settings_base import GrpcServerConfig, OptionalPort, Section

DAY_S = 24 * 3600.0
# Per provider: events accepted but not yet processed before intake answers 503. About
# 200-400 MB of Redis at typical 2-4 KB webhooks (hours of backlog at busy rates), while
# providers keep retrying a 503 for days (Stripe: 3), so refusing past it loses nothing.
DEFAULT_MAX_QUEUE_DEPTH = 100_000
LongSeconds = Annotated[float, Field(ge=0, le=365 * DAY_S)]
Scheme = Literal["stripe", "standard_webhooks", "hmac_sha256", "hmac_sha1"]

PROVIDER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# Where each scheme reads its signature and the event id when the config does not say.
DEFAULT_SIGNATURE_HEADER: dict[str, str] = {
    "stripe": "stripe-signature",
    "standard_webhooks": "webhook-signature",
    "hmac_sha256": "x-hub-signature-256",
    "hmac_sha1": "x-hub-signature",
}
DEFAULT_EVENT_ID_PATH: dict[str, str | None] = {
    "stripe": "id",
    "standard_webhooks": "header:webhook-id",
    "hmac_sha256": None,
    "hmac_sha1": None,
}


class RetrySettings(Section):
    """Processing retries: attempts in total (first included), exponential full-jitter backoff."""

    max_attempts: Annotated[int, Field(ge=1, le=100)] = 8
    initial_backoff_s: LongSeconds = 1.0
    multiplier: Annotated[float, Field(ge=1, le=10)] = 2.0
    max_backoff_s: LongSeconds = 600.0


class DeadLetterSettings(Section):
    """The provider's dead-letter stream: how long letters are kept, the crash-loop ceiling."""

    retention_s: LongSeconds = 14 * DAY_S
    max_deliveries: Annotated[int, Field(ge=1, le=1000)] = 10


class ProviderConfig(Section):
    """One webhook provider (``[webhooks.providers.<id>]``)."""

    scheme: Scheme
    secrets_env: str = Field(description="NAME of the env var with the secret(s), comma-separated")
    signature_header: str | None = Field(default=None, description="default depends on the scheme")
    timestamp_tolerance_s: Annotated[float, Field(gt=0, le=DAY_S)] = 300.0
    event_types: list[str] = Field(default_factory=list, description="types processed; others: ignored")
    event_type_path: str = Field(default="type", description="'a.b.c' JSON path or 'header:<name>'")
    event_id_path: str | None = Field(default=None, description="unset: the scheme's default, else body hash")
    dedup_window_s: LongSeconds = 7 * DAY_S
    max_queue_depth: Annotated[int, Field(ge=0)] = Field(
        default=DEFAULT_MAX_QUEUE_DEPTH,
        description="503 + Retry-After once this many events wait unprocessed (0 = no limit)",
    )
    retry: RetrySettings = RetrySettings()
    dead_letters: DeadLetterSettings = DeadLetterSettings()

    @field_validator("secrets_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        if not ENV_NAME.match(value):
            raise ValueError("must be the NAME of an environment variable (letters, digits, _)")
        return value

    @field_validator("signature_header")
    @classmethod
    def _lower(cls, value: str | None) -> str | None:
        return value.lower() if value else value

    @property
    def header(self) -> str:
        return self.signature_header or DEFAULT_SIGNATURE_HEADER[self.scheme]

    @property
    def id_path(self) -> str | None:
        return self.event_id_path or DEFAULT_EVENT_ID_PATH[self.scheme]


class WebhooksConfig(GrpcServerConfig):
    """`[webhooks]` in the TOML file; server settings are inherited."""

    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    router_address: str | None = Field(
        default=None, description="RouterService host:port; unset: stream only"
    )
    router_timeout_s: Annotated[float, Field(gt=0, le=60)] = 5.0
    history_retention_s: LongSeconds = 30 * DAY_S
    normalized_retention_s: LongSeconds = 7 * DAY_S
    worker_enabled: bool = True
    worker_lease_s: Annotated[float, Field(gt=0, le=3600)] = 30.0
    worker_max_in_flight: Annotated[int, Field(ge=1, le=1000)] = 32
    # A trickle is read a few events at a time: fewer round trips per event, this much latency.
    worker_batch_wait_s: Annotated[float, Field(ge=0, le=1)] = 0.02
    subscriber_buffer: Annotated[int, Field(ge=1, le=100_000)] = 1000
    stats_refresh_s: Annotated[float, Field(gt=0, le=3600)] = 5.0
    http_port: OptionalPort = Field(default=0, description="serve the shim in this process too (0: off)")

    @model_validator(mode="after")
    def _provider_ids(self) -> WebhooksConfig:
        for provider_id in self.providers:
            if not PROVIDER_ID.match(provider_id):
                raise ValueError(
                    f"webhooks.providers.{provider_id}: provider ids are 1-64 letters, digits, "
                    "'-' or '_', starting with a letter or digit"
                )
        return self
