"""Caller credentials: every RPC names the calling service and its scopes.

When ``[auth] enabled = true``, each call carries ``authorization: Bearer <token>``
metadata. A token is a JWT (HS256) signed with one of the mesh's shared secrets
(``$WEDMESH_AUTH_SECRETS``, comma-separated: the first signs, all verify, so a secret can be
rotated without downtime); its ``sub`` is the calling service and ``scopes`` its scopes.
Issue one with ``wedmesh token --service notification-service [--scope admin]``.

Rules: no or bad token → UNAUTHENTICATED; an admin RPC (dead-letter replay and purge)
without the ``admin`` scope → PERMISSION_DENIED; both name what is missing. Services check
finer rules themselves through :func:`current_caller` (``Register`` only for the caller's
own service name, deregistering another service's instance needs ``admin``). The health
service and reflection stay open so that probes work. Tokens are never logged.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Sequence
from dataclasses import dataclass

import jwt

from services.core.errors import PermissionDenied, Unauthenticated

ADMIN = "admin"
AUTH_METADATA = "authorization"
ISSUER = "wedmesh"
OPEN_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")
ADMIN_METHODS = frozenset(
    {
        "/wedsync.webhooks.v1.WebhookIntakeService/ReplayDeadLetters",
        "/wedsync.webhooks.v1.WebhookIntakeService/PurgeDeadLetters",
        "/wedsync.registry.v1.RouterService/ReplayDeadLetters",
        "/wedsync.registry.v1.RouterService/PurgeDeadLetters",
    }
)


@dataclass(frozen=True)
class Caller:
    """Who is calling: a service name and its scopes."""

    service: str
    scopes: frozenset[str]

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.scopes


_caller: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("caller", default=None)


def current_caller() -> Caller | None:
    """The authenticated caller of the RPC being served; None when auth is off."""
    return _caller.get()


def set_caller(caller: Caller | None) -> contextvars.Token[Caller | None]:
    return _caller.set(caller)


def reset_caller(token: contextvars.Token[Caller | None]) -> None:
    _caller.reset(token)


def require_admin(what: str) -> None:
    """Raise PERMISSION_DENIED unless auth is off or the caller has the admin scope."""
    caller = current_caller()
    if caller is not None and not caller.is_admin:
        raise PermissionDenied(f"{what} needs the '{ADMIN}' scope; the token of {caller.service!r} lacks it")


class Authenticator:
    """Verifies bearer tokens against the shared secrets and checks the admin rule."""

    def __init__(self, secrets: Sequence[bytes], leeway_s: float = 30.0) -> None:
        if not secrets:
            raise ValueError("auth needs at least one secret")
        self._secrets = list(secrets)
        self._leeway = leeway_s

    def issue(self, service: str, scopes: Sequence[str] = (), ttl_s: float = 3600.0) -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": service,
            "scopes": sorted(set(scopes)),
            "iat": now,
            "exp": now + int(ttl_s),
        }
        return jwt.encode(claims, self._secrets[0], algorithm="HS256")

    def authenticate(self, metadata: Sequence[tuple[str, str | bytes]] | None, method: str) -> Caller | None:
        """The caller for ``method``; None for the open methods (health, reflection)."""
        if method.startswith(OPEN_PREFIXES):
            return None
        token = _bearer(metadata)
        caller = self._verify(token)
        if method in ADMIN_METHODS and not caller.is_admin:
            raise PermissionDenied(
                f"{method.lstrip('/')} needs the '{ADMIN}' scope; the token of {caller.service!r} lacks it"
            )
        return caller

    def _verify(self, token: str) -> Caller:
        last: Exception | None = None
        for secret in self._secrets:
            try:
                claims = jwt.decode(
                    token,
                    secret,
                    algorithms=["HS256"],
                    issuer=ISSUER,
                    leeway=self._leeway,
                    options={"require": ["exp", "sub", "iss"]},
                )
            except jwt.InvalidSignatureError as exc:
                last = exc
                continue
            except jwt.ExpiredSignatureError as exc:
                raise Unauthenticated("the bearer token has expired; issue a new one") from exc
            except jwt.InvalidTokenError as exc:
                raise Unauthenticated(f"the bearer token is invalid: {exc}") from exc
            scopes = claims.get("scopes", [])
            if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
                raise Unauthenticated("the bearer token's 'scopes' claim must be a list of strings")
            return Caller(str(claims["sub"]), frozenset(scopes))
        raise Unauthenticated("the bearer token is not signed by a mesh secret") from last


def _bearer(metadata: Sequence[tuple[str, str | bytes]] | None) -> str:
    for key, value in metadata or ():
        if key == AUTH_METADATA and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            raise Unauthenticated("'authorization' metadata must be 'Bearer <token>'")
    raise Unauthenticated("this call needs a bearer token in 'authorization' metadata (auth is on)")
