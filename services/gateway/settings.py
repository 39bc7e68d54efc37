"""The `[gateway]` section: the gateway port and its upstreams.

Each upstream is a table ``[gateway.upstreams.<service_id>]``. Credentials never appear
here: auth fields ending in ``_env`` hold the *name* of the environment variable that
holds the secret. Base URLs may come from the environment too: ``base_urls_env`` names a
variable holding one URL or a comma-separated list, and ``base_urls`` is the fallback
used when that variable is unset or empty (so the example config can default Stripe to
``https://api.stripe.com`` while a test points it at a loopback stand-in).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from services.core.settings_base import GrpcServerConfig, Section
from services.gateway.hygiene import first_bad_char

SERVICE_ID = re.compile(r"^[a-z][a-z0-9_\-]{0,62}$")
# An Invoke reply carries the body, its headers and the normalised copy of it: half the
# gRPC message limit (services/core/server.MAX_MESSAGE_BYTES, 8 MiB) leaves the other half
# for the rest (the servicer checks the reply against that limit before sending). Not
# computed from it: services.core.config imports this module and services.core.server
# imports services.core.config, so importing the server here would be circular
# (tests/gateway/test_bodies.py checks the relation).
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
DEFAULT_MAX_RESPONSE_BYTES = MAX_RESPONSE_BYTES
PositiveSeconds = Annotated[float, Field(gt=0, le=3600)]
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class AuthConfig(Section):
    """How the gateway authenticates to the upstream (the caller never does)."""

    type: Literal["none", "bearer", "api_key", "basic", "oauth2_client_credentials"] = "none"
    token_env: EnvName | None = Field(default=None, description="bearer: variable holding the token")
    api_key_env: EnvName | None = Field(default=None, description="api_key: variable holding the key")
    header: str = Field(default="X-Api-Key", description="api_key: header that carries the key")
    prefix: str = Field(default="", description="api_key: text put before the key, e.g. 'Token '")
    username_env: EnvName | None = Field(default=None, description="basic: variable holding the user")
    password_env: EnvName | None = Field(default=None, description="basic: variable holding the password")
    client_id_env: EnvName | None = Field(default=None, description="oauth2: variable holding client id")
    client_secret_env: EnvName | None = Field(default=None, description="oauth2: client secret variable")
    token_url: str | None = Field(default=None, description="oauth2: token endpoint")
    token_url_env: EnvName | None = Field(default=None, description="oauth2: variable overriding token_url")
    token_path: str = Field(default="/oauth/token", description="oauth2: default token URL is base + this")
    scope: str = ""
    client_auth_encoding: Literal["form", "raw"] = Field(
        default="form",
        description=(
            "oauth2: 'form' form-urlencodes client id and secret before HTTP Basic (RFC 6749 "
            "2.3.1); 'raw' sends them as they are, for providers that do not decode them"
        ),
    )
    refresh_margin_s: PositiveSeconds = Field(default=30.0, description="refresh this long before expiry")

    @model_validator(mode="after")
    def _needs_variables(self) -> AuthConfig:
        needed = {
            "none": (),
            "bearer": ("token_env",),
            "api_key": ("api_key_env",),
            "basic": ("username_env", "password_env"),
            "oauth2_client_credentials": ("client_id_env", "client_secret_env"),
        }[self.type]
        missing = [name for name in needed if getattr(self, name) is None]
        if missing:
            raise ValueError(
                f"auth type {self.type!r} needs {', '.join(missing)} (an environment variable name)"
            )
        return self

    def variables(self) -> list[str]:
        """Names of the environment variables this auth reads its secrets from."""
        names = {
            "none": [],
            "bearer": [self.token_env],
            "api_key": [self.api_key_env],
            "basic": [self.username_env, self.password_env],
            "oauth2_client_credentials": [self.client_id_env, self.client_secret_env],
        }[self.type]
        return [n for n in names if n]


class RetryConfig(Section):
    """Retries: exponential backoff with full jitter, within the caller's deadline."""

    attempts: Annotated[int, Field(ge=1, le=10)] = 3
    backoff_s: Annotated[float, Field(ge=0, le=60)] = 1.0
    multiplier: Annotated[float, Field(ge=1, le=10)] = 2.0
    max_backoff_s: Annotated[float, Field(ge=0, le=300)] = 30.0
    jitter: bool = True


class BreakerConfig(Section):
    """Per-instance circuit breaker."""

    failure_threshold: Annotated[int, Field(ge=1, le=1000)] = 5
    reset_timeout_s: PositiveSeconds = 30.0
    half_open_max_calls: Annotated[int, Field(ge=1, le=100)] = 1


class RateLimitConfig(Section):
    """Sliding-window limits shared by every replica through Redis; 0 = unlimited."""

    requests: Annotated[int, Field(ge=0)] = 0
    per_client_requests: Annotated[int, Field(ge=0)] = 0
    window_s: PositiveSeconds = 60.0


class HealthConfig(Section):
    """How service status is derived from recent calls."""

    window_s: PositiveSeconds = 60.0
    degraded_error_rate: Annotated[float, Field(ge=0, le=1)] = 0.2
    min_requests: Annotated[int, Field(ge=1)] = 5


class UpstreamConfig(Section):
    """One upstream service the gateway calls on behalf of internal services."""

    display_name: str = ""
    kind: Literal["payment", "email", "supplier", "generic"] = "generic"
    base_urls: list[str] = Field(default_factory=list, description="instances (fallback of base_urls_env)")
    base_urls_env: EnvName | None = Field(default=None, description="variable with comma-separated URLs")
    registry_service: str | None = Field(
        default=None, description="resolve instances with Registry.Discover (instead of base_urls)"
    )
    registry_refresh_s: PositiveSeconds = Field(default=5.0, description="how often to re-discover")
    auth: AuthConfig = AuthConfig()
    timeout_s: PositiveSeconds = 30.0
    connect_timeout_s: PositiveSeconds = 5.0
    retry: RetryConfig = RetryConfig()
    breaker: BreakerConfig = BreakerConfig()
    rate_limit: RateLimitConfig = RateLimitConfig()
    health: HealthConfig = HealthConfig()
    normalizer: Literal["", "stripe", "postmark", "supplier"] = ""
    max_body_bytes: Annotated[int, Field(ge=0, le=8 * 1024 * 1024)] = 1024 * 1024
    max_response_bytes: Annotated[int, Field(ge=1, le=MAX_RESPONSE_BYTES)] = Field(
        default=DEFAULT_MAX_RESPONSE_BYTES,
        description="largest upstream body (decoded) the gateway reads; past it: FAILED_PRECONDITION",
    )
    max_connections: Annotated[int, Field(ge=1, le=10_000)] = 100
    http2: bool = Field(default=True, description="offer HTTP/2 over TLS (ALPN); needs the h2 package")
    ca_file: str | None = Field(
        default=None, description="CA bundle to verify the upstream (default: system)"
    )

    @field_validator("base_urls")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        for url in value:
            check_base_url(url)
        return value

    @model_validator(mode="after")
    def _one_source(self) -> UpstreamConfig:
        if self.registry_service and (self.base_urls or self.base_urls_env):
            raise ValueError("give either registry_service or base_urls/base_urls_env, not both")
        return self

    def resolved_instances(self, environ: Mapping[str, str] | None = None) -> list[str]:
        """Instance base URLs: from ``base_urls_env`` when set and non-empty, else ``base_urls``.

        ValueError if one is no base URL; for the variable, the message says which entry
        and why, never the value (a URL may carry a credential, ``?api_key=...``)."""
        env = os.environ if environ is None else environ
        raw = env.get(self.base_urls_env, "") if self.base_urls_env else ""
        if not raw.strip():
            return [check_base_url(u).rstrip("/") for u in self.base_urls]
        urls = [u.strip() for u in raw.split(",") if u.strip()]
        for position, url in enumerate(urls, 1):
            why = base_url_problem(url)
            if why is not None:
                which = f"entry {position} of {len(urls)}" if len(urls) > 1 else "the URL"
                raise ValueError(f"{which} {why}")
        return [u.rstrip("/") for u in urls]


_BASE_URL = re.compile(r"https?://[^/?#\s@\x00-\x1f\x7f]+(/[^?#\s\x00-\x1f\x7f]*)?")
_SCHEME = re.compile(r"https?://", re.IGNORECASE)
_URL_CHAR = re.compile(r"[^\s\x00-\x1f\x7f]")  # one character a base URL may hold


def base_url_problem(url: str) -> str | None:
    """Why ``url`` is no upstream base URL (absolute http(s), without user-info, query,
    fragment, whitespace or control characters — also no final newline: ``$`` alone
    would let one through), or None. The reason never quotes the URL: it may come from
    an environment variable and carry a credential."""
    if _BASE_URL.fullmatch(url):
        return None
    if not _SCHEME.match(url):
        return "does not start with http:// or https://"
    bad = first_bad_char(url, _URL_CHAR)
    if bad is not None:
        return f"holds {bad}"
    authority = re.split(r"[/?#]", url.split("://", 1)[1], maxsplit=1)[0]
    if "@" in authority:
        return "must not carry user:password@ (use auth.* with *_env variables)"
    if "?" in url:
        return "has a query ('?...'); a base URL has none (query parameters go in the request)"
    if "#" in url:
        return "has a fragment ('#...')"
    if not url.startswith("https://") and not url.startswith("http://"):
        return "has an upper-case scheme; write http:// or https://"
    return "has no host (scheme://host[:port][/path])"


def check_base_url(url: str) -> str:
    """``url`` if it is an upstream base URL, else ValueError saying why (never echoing it)."""
    why = base_url_problem(url)
    if why is not None:
        raise ValueError(f"a base URL {why}")
    return url


class GatewayConfig(GrpcServerConfig):
    """`[gateway]` in the TOML file; server settings are inherited."""

    upstreams: dict[str, UpstreamConfig] = Field(default_factory=dict)
    health_interval_s: PositiveSeconds = Field(default=1.0, description="how often health is re-published")

    @field_validator("upstreams")
    @classmethod
    def _ids(cls, value: dict[str, UpstreamConfig]) -> dict[str, UpstreamConfig]:
        for service_id in value:
            if not SERVICE_ID.match(service_id):
                raise ValueError(
                    f"upstream id {service_id!r} must be lower-case letters, digits, '_' or '-' "
                    "and start with a letter"
                )
        return value
