"""Building an :class:`~services.gateway.upstream.Upstream` from its config table.

Resolves base URLs and credentials from the environment (a missing variable, or one no
request could carry, makes the upstream UNCONFIGURED instead of failing start-up), creates
its connection pool (one transport per upstream: aiohttp's HTTP/1.1 keep-alive pool, with
httpx's pool for https when HTTP/2 is enabled and ``h2`` is installed; an optional private
CA), and one breaker per instance.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable

import httpx

from services.core.breaker import State
from services.core.ratelimit import RateLimiter
from services.core.redis_client import AnyRedis
from services.core.settings_base import ConfigError
from services.gateway.auth import build_auth
from services.gateway.balancer import make_instances
from services.gateway.netbackend import pooled_transport
from services.gateway.oauth2 import TokenEndpointFailed
from services.gateway.settings import UpstreamConfig
from services.gateway.stats import RollingStats
from services.gateway.upstream import Upstream


def is_failure(exc: BaseException) -> bool:
    """What counts against a breaker: connection errors, upstream timeouts, malformed
    answers, and a token endpoint that gives no token (5xx come as results). Not an
    answer larger than ``max_response_bytes`` (:class:`~.bodies.ResponseTooLarge`): the
    upstream answered, the caller asked for too much."""
    return isinstance(exc, httpx.TransportError | TokenEndpointFailed)


async def build_upstream(
    service_id: str,
    config: UpstreamConfig,
    *,
    redis: AnyRedis,
    on_transition: Callable[[str, str, State, State], None],
) -> Upstream:
    """Create the client, resolve instances and credentials; never raises for missing or
    unusable environment variables (the upstream is UNCONFIGURED, saying which and why)."""
    invalid: list[str] = []
    try:
        urls = config.resolved_instances()
    except ValueError as exc:  # the file's base_urls were checked at load: it is the variable's
        urls = []
        invalid.append(f"${config.base_urls_env} is unusable: {exc}")
    missing = (
        []
        if urls or config.registry_service or invalid
        else [config.base_urls_env or f"gateway.upstreams.{service_id}.base_urls"]
    )
    limits = httpx.Limits(
        max_connections=config.max_connections, max_keepalive_connections=config.max_connections
    )
    verify: ssl.SSLContext | bool = True
    if config.ca_file:
        try:
            verify = ssl.create_default_context(cafile=config.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"gateway.upstreams.{service_id}.ca_file: cannot use {config.ca_file}: {exc}"
            ) from exc
    transport = pooled_transport(limits=limits, http2=config.http2 and _has_h2(), verify=verify)
    client = httpx.AsyncClient(transport=transport, follow_redirects=False)
    setup = build_auth(
        service_id,
        config.auth,
        base_url=urls[0] if urls else None,
        redis=redis,
        client=client,
        timeout_s=config.timeout_s,
    )
    missing += setup.missing
    invalid += setup.invalid
    upstream = Upstream(
        service_id,
        config,
        urls,
        missing,
        setup.auth,
        client,
        transport,
        RateLimiter(redis, config.rate_limit.window_s),
    )
    upstream.invalid = invalid
    upstream.stats = RollingStats(config.health.window_s)
    upstream.make_instances = lambda new_urls: make_instances(
        service_id,
        new_urls,
        config.breaker,
        config.health.window_s,
        is_failure,
        lambda url, old, new: on_transition(service_id, url, old, new),
    )
    upstream.instances = upstream.make_instances(urls)
    return upstream


def _has_h2() -> bool:
    try:
        import h2  # noqa: F401
    except ImportError:
        return False
    return True
