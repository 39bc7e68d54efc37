"""Upstream credentials: the gateway adds them; callers never supply them.

Each auth scheme is a small object with one job: produce the headers for the next
attempt (:meth:`Auth.headers`) and, for schemes with renewable tokens, forget a token the
upstream rejected (:meth:`Auth.invalidate`). Secrets are read once at start from the
environment variables *named* in config (:func:`services.core.config.env_secret`); a
missing variable makes the upstream UNCONFIGURED — it is reported by name, never by value.

So does a variable no request could carry (:func:`secret_problem`): a CR/LF, NUL or other
control character — often a trailing newline from the file the secret came from — or, in
a header value, non-ASCII or surrounding spaces. Unchecked, it would fail every call
inside the HTTP client, as INTERNAL (or, on the HTTP/2 pool, as a protocol error counted
against the breaker); checked at start, it is named once, as a configuration error.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import httpx
from pydantic import SecretStr

from services.core.config import env_secret
from services.core.redis_client import AnyRedis
from services.gateway.hygiene import FIELD_CHAR, HEADER_VALUE, NOT_CONTROL, first_bad_char
from services.gateway.oauth2 import ClientCredentials
from services.gateway.settings import AuthConfig

_TOKEN_URL = re.compile(r"https?://[^\s\x00-\x1f\x7f]+")


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
    """The auth object to use, or what is wrong: variables missing, or unusable (why, never the value)."""

    auth: Auth | None
    missing: list[str]
    invalid: list[str] = field(default_factory=list)


def secret_problem(value: str, *, header: bool) -> str | None:
    """Why ``value`` cannot be sent, or None; says where and what kind, never what it is.

    ``header``: sent as a header value as is (bearer token, API key), so visible ASCII with
    inner spaces or tabs only (:data:`.hygiene.HEADER_VALUE`); otherwise (basic, OAuth2
    client credentials) base64-encoded, where anything but control characters is fine (RFC 7617 §2)."""
    if header and HEADER_VALUE.fullmatch(value):
        return None
    bad = first_bad_char(value, FIELD_CHAR if header else NOT_CONTROL)
    if bad is not None:
        if "at the end" in bad and value[-1] in "\r\n":
            bad += "; a newline from the file it was read from?"
        elif "non-ASCII" in bad:
            bad += "; a header carries only ASCII"
        return f"holds {bad}"
    if header:
        return "starts or ends with a space or tab, which a header value cannot keep"
    return None


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
    """Read the secrets named in ``config``; report missing or unusable variables instead of failing."""
    secrets = {name: env_secret(name, environ) for name in config.variables()}
    missing = [name for name, value in secrets.items() if value is None]
    header = config.type in ("bearer", "api_key")
    invalid = [
        f"${name} is unusable: {why}"
        for name, value in secrets.items()
        if value is not None and (why := secret_problem(value.get_secret_value(), header=header))
    ]
    name = secrets.get(config.username_env or "") if config.type == "basic" else None
    if name is not None and ":" in name.get_secret_value():
        invalid.append(f"${config.username_env} is unusable: a basic-auth user name cannot hold ':'")
    raw = config.type == "oauth2_client_credentials" and config.client_auth_encoding == "raw"
    client_id = secrets.get(config.client_id_env or "") if raw else None
    if client_id is not None and ":" in client_id.get_secret_value():
        invalid.append(
            f"${config.client_id_env} is unusable: a client id holding ':' cannot be sent with "
            'client_auth_encoding = "raw" (use "form")'
        )
    if missing or invalid:
        return AuthSetup(None, missing, invalid)

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
    if not _TOKEN_URL.fullmatch(token_url):  # never echoed: it may carry a credential
        source = f"${config.token_url_env}" if config.token_url_env else "the token URL"
        problem = "is not an http(s) URL without spaces or control characters"
        return AuthSetup(None, [], [f"{source} {problem} (the OAuth2 token endpoint)"])
    tokens = ClientCredentials(
        service_id,
        redis=redis,
        client=client,
        token_url=token_url,
        client_id=secret(config.client_id_env),
        client_secret=secret(config.client_secret_env),
        scope=config.scope,
        client_auth_encoding=config.client_auth_encoding,
        refresh_margin_s=config.refresh_margin_s,
        timeout_s=timeout_s,
        variables=(config.client_id_env or "", config.client_secret_env or ""),
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
