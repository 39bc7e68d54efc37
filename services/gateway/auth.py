"""Upstream credentials: the gateway adds them; callers never supply them.

Each auth scheme is a small object with one job: produce the headers for the next
attempt (:meth:`Auth.headers`) and, for schemes with renewable tokens, forget a token the
upstream rejected (:meth:`Auth.invalidate`). Secrets are read once at start from the
environment variables *named* in config (:func:`services.core.config.env_secret`); a
missing variable makes the upstream UNCONFIGURED — it is reported by name, never by value.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import httpx
from pydantic import SecretStr

from services.core.config import env_secret
from services.core.redis_client import AnyRedis
from services.gateway.oauth2 import ClientCredentials
from services.gateway.settings import AuthConfig


class Auth(Protocol):
    """What the upstream caller needs from an auth scheme."""

    @property
    def owned_headers(self) -> frozenset[str]:
        """Header names the scheme sets; a caller's copy of them is dropped."""

    @property
    def renewable(self) -> bool:
        """Whether an upstream 401 is worth one retry with fresh credentials."""

    async def headers(self) -> dict[str, str]: ...

    async def invalidate(self, sent: Mapping[str, str]) -> None: ...


@dataclass
class StaticHeader:
    """Bearer, API key and basic auth: one fixed header built from secrets."""

    name: str
    value: SecretStr
    renewable: bool = False

    @property
    def owned_headers(self) -> frozenset[str]:
        return frozenset({self.name.lower()})

    async def headers(self) -> dict[str, str]:
        return {self.name.lower(): self.value.get_secret_value()}

    async def invalidate(self, sent: Mapping[str, str]) -> None:
        return None


@dataclass
class NoAuth:
    owned_headers: frozenset[str] = frozenset()
    renewable: bool = False

    async def headers(self) -> dict[str, str]:
        return {}

    async def invalidate(self, sent: Mapping[str, str]) -> None:
        return None


class OAuth2Auth:
    """``Authorization: Bearer <token>`` from a shared client-credentials token."""

    owned_headers = frozenset({"authorization"})
    renewable = True

    def __init__(self, tokens: ClientCredentials) -> None:
        self.tokens = tokens

    async def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {await self.tokens.token()}"}

    async def invalidate(self, sent: Mapping[str, str]) -> None:
        value = sent.get("authorization", "")
        if value.startswith("Bearer "):
            await self.tokens.invalidate(value[len("Bearer ") :])


@dataclass(frozen=True)
class AuthSetup:
    """The auth object to use, or the variables that are missing for it."""

    auth: Auth | None
    missing: list[str]


def build_auth(
    service_id: str,
    config: AuthConfig,
    *,
    base_url: str | None,
    redis: AnyRedis,
    client: httpx.AsyncClient,
    timeout_s: float,
    environ: Mapping[str, str] | None = None,
) -> AuthSetup:
    """Read the secrets named in ``config``; report missing variables instead of failing."""
    secrets = {name: env_secret(name, environ) for name in config.variables()}
    missing = [name for name, value in secrets.items() if value is None]
    if missing:
        return AuthSetup(None, missing)

    def secret(name: str | None) -> SecretStr:
        value = secrets[name or ""]
        assert value is not None
        return value

    if config.type == "none":
        return AuthSetup(NoAuth(), [])
    if config.type == "bearer":
        token = secret(config.token_env).get_secret_value()
        return AuthSetup(StaticHeader("authorization", SecretStr(f"Bearer {token}")), [])
    if config.type == "api_key":
        key = secret(config.api_key_env).get_secret_value()
        return AuthSetup(StaticHeader(config.header, SecretStr(config.prefix + key)), [])
    if config.type == "basic":
        user = secret(config.username_env).get_secret_value()
        pair = f"{user}:{secret(config.password_env).get_secret_value()}"
        encoded = base64.b64encode(pair.encode()).decode()
        return AuthSetup(StaticHeader("authorization", SecretStr(f"Basic {encoded}")), [])
    token_url = token_endpoint(config, base_url, environ)
    if token_url is None:
        return AuthSetup(None, [config.token_url_env or "token_url"])
    tokens = ClientCredentials(
        service_id,
        redis=redis,
        client=client,
        token_url=token_url,
        client_id=secret(config.client_id_env),
        client_secret=secret(config.client_secret_env),
        scope=config.scope,
        refresh_margin_s=config.refresh_margin_s,
        timeout_s=timeout_s,
    )
    return AuthSetup(OAuth2Auth(tokens), [])


def token_endpoint(config: AuthConfig, base_url: str | None, environ: Mapping[str, str] | None) -> str | None:
    """``token_url_env`` if set, else ``token_url``, else the first instance + ``token_path``."""
    env = os.environ if environ is None else environ
    if config.token_url_env and env.get(config.token_url_env, "").strip():
        return env[config.token_url_env].strip()
    if config.token_url:
        return config.token_url
    if base_url:
        return base_url.rstrip("/") + config.token_path
    return None
