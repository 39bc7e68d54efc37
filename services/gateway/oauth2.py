"""OAuth2 client-credentials tokens shared by every gateway replica.

The token lives in Redis (``wm:gw:{<service>}:oauth2:token``, expiring with it), so all
replicas use one token and the provider sees one token request per expiry, not one per
replica. Fetching is single-flight at two levels: within a process an ``asyncio.Lock``
makes concurrent calls wait for one fetch; across processes a Redis lock (SET NX PX,
released by compare-and-delete) lets one replica fetch while the others poll the cache.
Tokens are refreshed ``refresh_margin_s`` before they expire (at most half their life),
and a token the upstream rejected with 401 is invalidated — only if it is still the
cached one, so a newer token written by another replica survives.

A token endpoint that gives no token — unreachable, timing out, answering anything but
200 (rejected client credentials too), or with an answer that is no token — raises
:class:`TokenEndpointFailed` (UNAVAILABLE): the upstream cannot be called without a token,
so the caller counts it against the upstream instance's breaker
(:meth:`~services.gateway.upstream.Upstream._credentials`). Messages name the variables
to check, never their values. A token request cut short by the *caller's* deadline is
DEADLINE_EXCEEDED instead, and no endpoint failure. A failure is remembered for
:data:`FAILURE_TTL_S` (at most its ``retry_after``): calls that were waiting for that
fetch, or come right after it, get it again (:attr:`TokenEndpointFailed.repeated`)
instead of each asking the endpoint once more.

A failed *renewal* does not fail calls while the current token is still valid: renewal
starts ``refresh_margin_s`` before expiry precisely so that the token endpoint may be
down for a while; until :data:`EXPIRY_SKEW_S` before expiry the current token is used (a
warning is logged per failed attempt, at most one per :data:`FAILURE_TTL_S`), and only
then do calls fail with the endpoint's error.

The client authenticates with HTTP Basic as RFC 6749 §2.3.1 says: client id and secret
each form-urlencoded, then joined with ``:`` and base64-encoded (a ``:`` or ``+`` in a
secret reaches the provider as the secret, not as a separator or a space). Providers
that do not decode them would refuse a secret holding ``/``, ``+``, ``=`` and the like
(common in base64-style secrets): for them the upstream's ``auth.client_auth_encoding =
"raw"`` sends both as they are.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import urllib.parse
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from pydantic import SecretStr

from services.core import deadlines
from services.core.errors import DeadlineExceeded, Unavailable, translate_redis_errors
from services.core.keys import gateway_key
from services.core.lua import lua_source
from services.core.redis_client import AnyRedis
from services.gateway.bodies import BodyError, ResponseTooLarge, read_body

log = logging.getLogger("wedmesh.gateway.oauth2")

LOCK_TTL_S = 10.0
POLL_INTERVAL_S = 0.05
DEFAULT_EXPIRES_IN_S = 3600
MAX_TOKEN_RESPONSE_BYTES = 64 * 1024  # a token answer is a few KB; read no more than this
FAILURE_TTL_S = 1.0  # a token-endpoint failure is re-raised to callers for this long
EXPIRY_SKEW_S = 1.0  # a token this close to expiry is no longer used when renewal fails
_ACCESS_TOKEN = re.compile(r"[\x21-\x7e]+")  # what `Authorization: Bearer <token>` can carry
_ERROR_CODE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")  # RFC 6749 §5.2 `error`, e.g. invalid_client
_COMPARE_DELETE = lua_source("services.gateway", "compare_delete")


class TokenEndpointFailed(Unavailable):
    """No token could be had from the token endpoint; the message says why and what to check.

    Counted against the upstream instance's breaker (``factory.is_failure``), unlike a
    caller's deadline or a Redis error met while waiting for a token — except when
    ``repeated``: a remembered failure handed to another caller, already counted once."""

    def __init__(self, message: str, *, retry_after: float | None = None, repeated: bool = False) -> None:
        super().__init__(message, retry_after=retry_after)
        self.repeated = repeated


@dataclass(frozen=True)
class Token:
    access_token: str
    expires_at: float  # epoch seconds
    refresh_at: float  # epoch seconds; after this the token is renewed

    def fresh(self, now: float) -> bool:
        return now < self.refresh_at

    def encode(self) -> str:
        return json.dumps({"t": self.access_token, "e": self.expires_at, "r": self.refresh_at})

    @classmethod
    def decode(cls, raw: bytes | str) -> Token:
        data = json.loads(raw)
        return cls(str(data["t"]), float(data["e"]), float(data["r"]))


class ClientCredentials:
    """One upstream's token source: cached locally, shared in Redis, fetched single-flight."""

    def __init__(
        self,
        service_id: str,
        *,
        redis: AnyRedis,
        client: httpx.AsyncClient,
        token_url: str,
        client_id: SecretStr,
        client_secret: SecretStr,
        scope: str = "",
        client_auth_encoding: Literal["form", "raw"] = "form",
        refresh_margin_s: float = 30.0,
        timeout_s: float = 10.0,
        variables: tuple[str, str],
    ) -> None:
        self.service_id = service_id
        self.redis = redis
        self.client = client
        self.token_url = token_url
        self.client_id = client_id
        self.client_secret = client_secret
        self.scope = scope
        self.client_auth_encoding = client_auth_encoding
        self.refresh_margin_s = refresh_margin_s
        self.timeout_s = timeout_s
        self.variables = variables  # names of the client id/secret variables, for messages
        self.cache_key = gateway_key(service_id, "oauth2", "token")
        self.lock_key = gateway_key(service_id, "oauth2", "lock")
        self._local: Token | None = None
        self._failed: tuple[TokenEndpointFailed, float] | None = None  # (failure, until monotonic)
        self._lock = asyncio.Lock()
        self._compare_delete: Any = redis.register_script(_COMPARE_DELETE)
        self.fetches = 0  # token requests this process made (for tests and metrics)

    async def token(self) -> str:
        """A fresh access token; at most one fetch in flight across all replicas.

        While renewal fails, the current token serves until shortly before it expires."""
        local = self._local
        if local and local.fresh(time.time()):
            return local.access_token
        failed = self._recent_failure()
        if failed is not None:
            return self._current_or(failed)
        async with self._lock:
            local = self._local
            if local and local.fresh(time.time()):
                return local.access_token
            failed = self._recent_failure()
            if failed is not None:  # the fetch these callers waited for failed
                return self._current_or(failed)
            try:
                token = await self._shared_token()
            except TokenEndpointFailed as exc:
                ttl = min(FAILURE_TTL_S, exc.retry_after if exc.retry_after is not None else FAILURE_TTL_S)
                self._failed = (exc, time.monotonic() + ttl)
                current = self._still_valid()
                if current is None:
                    raise
                log.warning(
                    "oauth2 token renewal failed; using the current token until it expires",
                    extra={"service_id": self.service_id, "reason": exc.message},
                )
                return current
            self._failed = None
            self._local = token
            return token.access_token

    def _still_valid(self) -> str | None:
        """The current token while it has more than :data:`EXPIRY_SKEW_S` left, else None."""
        local = self._local
        if local is not None and time.time() < local.expires_at - EXPIRY_SKEW_S:
            return local.access_token
        return None

    def _recent_failure(self) -> TokenEndpointFailed | None:
        failed = self._failed
        if failed is not None and time.monotonic() < failed[1]:
            return failed[0]
        return None

    def _current_or(self, failed: TokenEndpointFailed) -> str:
        """The still-valid current token, else ``failed`` again (marked ``repeated``: it was
        counted against the breaker once, when it happened)."""
        current = self._still_valid()
        if current is not None:
            return current
        raise TokenEndpointFailed(failed.message, retry_after=failed.retry_after, repeated=True)

    async def invalidate(self, access_token: str) -> None:
        """Forget ``access_token`` (the upstream said 401), here and in Redis."""
        local = self._local
        if local and local.access_token == access_token:
            self._local = None
            with translate_redis_errors("oauth2 token cache"):
                await self._compare_delete(keys=[self.cache_key], args=[local.encode()])

    async def _shared_token(self) -> Token:
        owner = uuid.uuid4().hex
        while True:
            with translate_redis_errors("oauth2 token cache"):
                raw = await self.redis.get(self.cache_key)
            if raw:
                cached = Token.decode(raw)
                if cached.fresh(time.time()):
                    return cached
            with translate_redis_errors("oauth2 token lock"):
                got = await self.redis.set(self.lock_key, owner, nx=True, px=int(LOCK_TTL_S * 1000))
            if got:
                try:
                    with translate_redis_errors("oauth2 token cache"):
                        raw = await self.redis.get(self.cache_key)
                    if raw and Token.decode(raw).fresh(time.time()):
                        return Token.decode(raw)
                    token = await self._fetch()
                    ttl_ms = max(1, int((token.expires_at - time.time()) * 1000))
                    with translate_redis_errors("oauth2 token cache"):
                        await self.redis.set(self.cache_key, token.encode(), px=ttl_ms)
                    return token
                finally:
                    with translate_redis_errors("oauth2 token lock"):
                        await self._compare_delete(keys=[self.lock_key], args=[owner])
            left = deadlines.time_left()
            if left is not None and left <= POLL_INTERVAL_S:
                raise DeadlineExceeded(f"{self.service_id}: deadline ran out waiting for an OAuth2 token")
            await asyncio.sleep(POLL_INTERVAL_S)

    async def _fetch(self) -> Token:
        left = deadlines.time_left()
        bound_by_caller = left is not None and left < self.timeout_s
        timeout = min(self.timeout_s, left) if left is not None else self.timeout_s
        if timeout <= 0:
            raise DeadlineExceeded(f"{self.service_id}: deadline ran out before the OAuth2 token request")
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        self.fetches += 1
        where = f"{self.service_id}: the OAuth2 token endpoint"
        try:
            async with self.client.stream(
                "POST",
                self.token_url,
                data=form,
                auth=self._basic_auth(),
                timeout=timeout,
            ) as response:
                body = await read_body(response, MAX_TOKEN_RESPONSE_BYTES)
        except httpx.TimeoutException as exc:
            if bound_by_caller:  # the caller gave up, as in Upstream._attempt: not the endpoint's fault
                raise DeadlineExceeded(
                    f"{self.service_id}: the caller's deadline ran out waiting for the OAuth2 token endpoint"
                ) from exc
            raise TokenEndpointFailed(f"{where} timed out; retry later", retry_after=1.0) from exc
        except (httpx.TransportError, ResponseTooLarge) as exc:
            raise TokenEndpointFailed(
                f"{where} cannot be reached or read ({_why(exc)}); check the token URL or retry later",
                retry_after=1.0,
            ) from exc
        if response.status_code != 200:
            raise TokenEndpointFailed(f"{where} {self._refusal(response.status_code, body)}", retry_after=5.0)
        try:
            data = json.loads(body)
            access = data["access_token"]
            if not isinstance(access, str):  # null, a number: no token (str() made "None" one)
                raise TypeError("access_token is not a string")
            expires_in = float(data.get("expires_in") or DEFAULT_EXPIRES_IN_S)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            missing = f"{where} answered 200 without an access_token (a string)"
            raise TokenEndpointFailed(missing, retry_after=5.0) from exc
        if not _ACCESS_TOKEN.fullmatch(access):
            raise TokenEndpointFailed(
                f"{where} sent an access_token no header can carry (spaces, control or non-ASCII characters)",
                retry_after=5.0,
            )
        now = time.time()
        margin = min(self.refresh_margin_s, expires_in / 2)
        log.info("oauth2 token fetched", extra={"service_id": self.service_id, "expires_in": expires_in})
        return Token(access, now + expires_in, now + expires_in - margin)

    def _basic_auth(self) -> tuple[str, str]:
        """Client id and secret for HTTP Basic: form-urlencoded first (RFC 6749 §2.3.1) with
        ``client_auth_encoding = "form"``, as they are with ``"raw"`` (providers that do
        not decode them; such a pair cannot hold ``:`` in the id)."""
        client_id = self.client_id.get_secret_value()
        secret = self.client_secret.get_secret_value()
        if self.client_auth_encoding == "raw":
            return client_id, secret
        return urllib.parse.quote_plus(client_id), urllib.parse.quote_plus(secret)

    def _refusal(self, status: int, body: bytes) -> str:
        """Why a non-200 token answer came, and what to check; the OAuth2 ``error`` code
        (RFC 6749 §5.2) is quoted when it is a plain word, nothing else of the body."""
        try:
            code = json.loads(body).get("error")
        except (ValueError, AttributeError):
            code = None
        named = f" ({code})" if isinstance(code, str) and _ERROR_CODE.fullmatch(code) else ""
        if status in (400, 401, 403):
            client_id, client_secret = self.variables
            return (
                f"refused the client credentials: HTTP {status}{named}; check ${client_id}, "
                f"${client_secret}, the scope and the token URL"
            )
        return f"answered HTTP {status}{named}; check the token URL or retry later"


def _why(exc: httpx.TransportError | ResponseTooLarge) -> str:
    """A transport error in a message: our own wording of a body error, else its type."""
    return str(exc) if isinstance(exc, BodyError | ResponseTooLarge) else type(exc).__name__
