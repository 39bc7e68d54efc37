"""One upstream: its HTTP client, instances, auth, limits, and the call loop.

:meth:`Upstream.call` is the whole per-request policy, in order: configured? → rate limits
(one Redis script) → pick an instance (least outstanding, breaker closed) → send through
that instance's breaker with timeout = min(configured, caller's time left) → decide:
result, retry (backoff, within the deadline), move to another instance (the connection
failed), or renew credentials once (401 with a renewable token).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from services.core import deadlines
from services.core.breaker import BreakerOpen, FailedResult, State
from services.core.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    ResourceExhausted,
    Unavailable,
)
from services.core.keys import InvalidKeyPart, gateway_key
from services.core.ratelimit import Limit, RateLimiter
from services.gateway import metrics
from services.gateway.auth import Auth
from services.gateway.balancer import Instance, pick
from services.gateway.bodies import BodyError, ResponseTooLarge, content_codings, plan, read_body
from services.gateway.hygiene import MAX_CACHED_PATH_CHARS
from services.gateway.oauth2 import TokenEndpointFailed
from services.gateway.retry import RETRYABLE_STATUS, backoff, may_retry, parse_retry_after
from services.gateway.settings import UpstreamConfig
from services.gateway.stats import RollingStats

log = logging.getLogger("wedmesh.gateway")
MAX_CACHED_CLIENTS = 4096
MAX_CACHED_URLS = 4096


@dataclass(frozen=True)
class Outgoing:
    """A checked request: method, escaped path, query pairs, clean headers, body."""

    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes
    idempotency_key: str
    client_id: str


@dataclass
class Result:
    response: httpx.Response
    instance: str
    attempts: int
    duration: float


class CallerDeadline(Exception):
    """The attempt timed out because the caller's deadline, not the upstream, ran out."""


@dataclass
class Upstream:
    service_id: str
    config: UpstreamConfig
    urls: list[str]
    missing: list[str]  # environment variables that are unset or empty
    auth: Auth | None
    client: httpx.AsyncClient  # shares `transport`; used for OAuth2 token requests
    transport: httpx.AsyncBaseTransport
    limiter: RateLimiter
    instances: list[Instance] = field(default_factory=list)
    stats: RollingStats = field(default_factory=lambda: RollingStats(60.0))
    _client_keys: dict[str, str] = field(default_factory=dict)
    _parsed_urls: dict[str, httpx.URL] = field(default_factory=dict)
    make_instances: Callable[[list[str]], list[Instance]] = lambda urls: []
    invalid: list[str] = field(default_factory=list)  # "$VAR is unusable: why" (never the value)

    def set_urls(self, urls: list[str]) -> bool:
        """Replace the instance list (registry discovery); keep the state of known URLs.

        Returns whether anything changed."""
        if urls == self.urls:
            return False
        known = {i.url: i for i in self.instances}
        fresh = iter(self.make_instances([u for u in urls if u not in known]))
        self.instances = [known[u] if u in known else next(fresh) for u in urls]
        self.urls = list(urls)
        return True

    @property
    def configured(self) -> bool:
        return not self.missing and not self.invalid

    def _unconfigured(self) -> FailedPrecondition:
        fixes = []
        if self.missing:
            fixes.append(f"set the environment variable(s) {', '.join(self.missing)}")
        fixes += [f"fix {problem}" for problem in self.invalid]
        return FailedPrecondition(
            f"{self.service_id} is not configured: {'; '.join(fixes)} for the gateway and restart it"
        )

    @functools.cached_property
    def dropped_headers(self) -> frozenset[str]:
        """Caller headers never forwarded: the ones the auth scheme sets, and the
        idempotency key (sent from its own field)."""
        owned = self.auth.owned_headers if self.auth else frozenset()
        return owned | {"idempotency-key"}

    @functools.cached_property
    def _service_key(self) -> str:
        return gateway_key(self.service_id, "rl", "service")

    @functools.cached_property
    def _metrics(self) -> tuple[Any, Any, Any]:
        """The labelled metric children of this upstream (ok, failed, latency), built once."""
        return (
            metrics.ATTEMPTS.labels(self.service_id, "ok"),
            metrics.ATTEMPTS.labels(self.service_id, "failed"),
            metrics.LATENCY.labels(self.service_id),
        )

    async def call(self, out: Outgoing) -> Result:
        if not self.configured:
            raise self._unconfigured()
        await self._admit(out.client_id)
        started = time.monotonic()
        retry_ok = may_retry(out.method, out.idempotency_key)
        attempts, retries, renewed = 0, 0, False
        down: set[str] = set()  # instances that refused connections in this request
        while True:
            instance = pick(self.instances, exclude=down)
            if instance is None:
                raise self._no_instance(down)
            left = deadlines.time_left()
            if left is not None and left <= 0:
                raise DeadlineExceeded(f"{self.service_id}: the caller's deadline ran out before the call")
            attempts += 1
            url = self._target(instance, out)  # outside the breaker: a bad URL is not the upstream's fault
            credentials = await self._credentials(instance)
            try:
                response, sent = await instance.breaker.call(
                    functools.partial(self._attempt, instance, out, url, credentials)
                )
            except BreakerOpen:  # lost a race for a half-open trial slot: try another instance
                down.add(instance.url)
                attempts -= 1
                continue
            except CallerDeadline as exc:
                raise DeadlineExceeded(
                    f"{self.service_id}: the caller's deadline ran out waiting for {instance.url}"
                ) from exc
            except ResponseTooLarge as exc:  # the request asks for too much: not retried, not counted
                cap = f"gateway.upstreams.{self.service_id}.max_response_bytes"
                raise FailedPrecondition(
                    f"{self.service_id}: the answer from {instance.url} is larger than {exc.limit} bytes, "
                    f"the most the gateway returns; ask for less (filter or page) or raise {cap}"
                ) from exc
            except httpx.ConnectError as exc:
                down.add(instance.url)  # never reached the upstream: safe to send elsewhere
                if pick(self.instances, exclude=down) is not None:
                    continue
                wait = self._error_wait(instance, exc, True, retries, attempts)
                label = "connect"
            except httpx.TransportError as exc:  # timeouts, resets, protocol errors
                wait = self._error_wait(instance, exc, retry_ok, retries, attempts)
                label = type(exc).__name__
            else:
                if response.status_code == 401 and self.auth and self.auth.renewable and not renewed:
                    renewed = True  # a rejected token: renew once and resend
                    await self.auth.invalidate(sent)
                    continue
                response_wait = self._response_wait(response, retry_ok, retries)
                if response_wait is None:
                    return Result(response, instance.url, attempts, time.monotonic() - started)
                wait, label = response_wait, str(response.status_code)
            retries += 1
            down.clear()
            metrics.RETRIES.labels(self.service_id, label).inc()
            await asyncio.sleep(wait)

    def _response_wait(self, response: httpx.Response, retry_ok: bool, retries: int) -> float | None:
        """Seconds to wait before retrying after this response, or None to return it."""
        if response.status_code not in RETRYABLE_STATUS or not retry_ok:
            return None
        if retries + 1 >= self.config.retry.attempts:
            return None
        retry_after = None
        if response.status_code == 429:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            if retry_after is not None and retry_after > self.config.retry.max_backoff_s:
                # Longer than we ever wait, and retrying sooner would ignore it: the caller decides.
                return None
        wait = backoff(self.config.retry, retries + 1, retry_after)
        return wait if self._fits(wait) else None

    def _error_wait(
        self, instance: Instance, exc: Exception, safe: bool, retries: int, attempts: int
    ) -> float:
        """Seconds to wait before retrying after a transport error; raise if no retry is allowed."""
        reason = f"cannot connect: {exc}" if isinstance(exc, httpx.ConnectError) else _reason(exc)
        if not safe or retries + 1 >= self.config.retry.attempts:
            raise Unavailable(
                f"{self.service_id}: {instance.url} failed ({reason}) after {attempts} attempt(s); "
                "retry later",
                retry_after=1.0,
            ) from exc
        wait = backoff(self.config.retry, retries + 1)
        if not self._fits(wait):
            raise DeadlineExceeded(
                f"{self.service_id}: {reason} from {instance.url}, and the caller's deadline leaves no time "
                "to retry"
            ) from exc
        return wait

    async def _admit(self, client_id: str) -> None:
        rl = self.config.rate_limit
        if not rl.requests and not rl.per_client_requests:
            return
        decision = await self.limiter.acquire(
            [
                Limit(self._service_key, rl.requests),
                Limit(self._client_key(client_id), rl.per_client_requests),
            ]
        )
        if not decision.allowed:
            metrics.RATE_LIMITED.labels(self.service_id).inc()
            raise ResourceExhausted(
                f"{self.service_id}: rate limit reached for client {client_id!r} or the upstream "
                f"({rl.requests or 'unlimited'}/{rl.per_client_requests or 'unlimited'} per "
                f"{rl.window_s:g}s); retry in {decision.retry_after:.2f}s",
                retry_after=decision.retry_after,
            )

    def _client_key(self, client_id: str) -> str:
        key = self._client_keys.get(client_id)
        if key is None:
            try:
                key = gateway_key(self.service_id, "rl", "client", client_id)
            except InvalidKeyPart as exc:
                raise InvalidArgument(
                    f"client_id {client_id[:64]!r} is not usable: give 1-200 letters, digits or . _ - : @ /"
                ) from exc
            if len(self._client_keys) >= MAX_CACHED_CLIENTS:
                self._client_keys.clear()
            self._client_keys[client_id] = key
        return key

    def _target(self, instance: Instance, out: Outgoing) -> httpx.URL:
        """The request URL: instance base + checked path (parsed once) + query.

        Built before the breaker runs: hygiene keeps path and query within httpx's limits,
        and should anything still be refused it is the request's fault (INVALID_ARGUMENT),
        never a breaker failure or success."""
        try:
            url = self._url(instance.url + out.path, cache=len(out.path) <= MAX_CACHED_PATH_CHARS)
            return url.copy_merge_params(tuple(out.query)) if out.query else url
        except httpx.InvalidURL as exc:
            raise InvalidArgument(
                f"{self.service_id}: path and query do not form a valid URL ({exc})"
            ) from exc

    def _url(self, url: str, *, cache: bool) -> httpx.URL:
        """``url`` parsed once (httpx parses and validates every string it is given)."""
        parsed = self._parsed_urls.get(url)
        if parsed is None:
            parsed = httpx.URL(url)
            if cache:  # long caller paths are not kept: bounded memory
                if len(self._parsed_urls) >= MAX_CACHED_URLS:
                    self._parsed_urls.clear()
                self._parsed_urls[url] = parsed
        return parsed

    def _fits(self, wait: float) -> bool:
        left = deadlines.time_left()
        return left is None or wait < left

    def _no_instance(self, down: set[str]) -> Unavailable:
        if not self.instances:
            source = self.config.registry_service
            return Unavailable(
                f"{self.service_id} is unavailable: no live instance of {source!r} in the registry; "
                "register one or retry later",
                retry_after=self.config.registry_refresh_s,
            )
        waits = [
            max(0.0, i.breaker.open_remaining()) for i in self.instances if i.breaker.state is State.OPEN
        ]
        if down and len(down) == len(self.instances) and not waits:
            what = "could not connect to any instance (refused, unreachable or TLS handshake failed)"
        else:
            what = "circuit breaker open for every instance"
            if self.stats.last_error:  # say what opened them (e.g. the OAuth2 token endpoint)
                what += f" (last error: {self.stats.last_error})"
        return Unavailable(
            f"{self.service_id} is unavailable: {what}; retry later",
            retry_after=min(waits) if waits else 1.0,
        )

    async def _credentials(self, instance: Instance) -> dict[str, str]:
        """The auth headers for one attempt, obtained *outside* the instance's breaker.

        Without a token the upstream cannot be called, so a token endpoint that cannot give
        one (:class:`TokenEndpointFailed`) counts against ``instance`` as a failed attempt:
        the breaker opens after ``failure_threshold`` of them and calls fail fast instead
        of hammering the token endpoint. What else can fail here (the caller's deadline,
        Redis) says nothing about the upstream and is not counted at all — inside the
        breaker it would count as a *success*, resetting a failure streak or closing a
        half-open breaker. Nor is a remembered failure handed to one more caller
        (``repeated``): the endpoint failed once, and is counted once."""
        if self.auth is None:
            return {}
        began = time.monotonic()
        try:
            return await self.auth.headers()
        except TokenEndpointFailed as exc:
            if exc.repeated:
                raise
            self._record(instance, False, time.monotonic() - began, exc.message)
            # The breaker counts only what runs through it: run the failure through it.
            with contextlib.suppress(TokenEndpointFailed, BreakerOpen):
                await instance.breaker.call(functools.partial(_fail, exc.message))
            raise

    async def _attempt(
        self, instance: Instance, out: Outgoing, url: httpx.URL, credentials: dict[str, str]
    ) -> tuple[httpx.Response, dict[str, str]]:
        """One HTTP exchange; 5xx is raised as FailedResult so the breaker counts it.

        Runs inside the instance's breaker, so nothing here may fail because of what the
        caller sent: :mod:`.hygiene` has checked headers and the key, :meth:`_target` the URL."""
        configured = self.config.timeout_s
        left = deadlines.time_left()
        bound_by_caller = left is not None and left < configured
        timeout = min(configured, left) if left is not None else configured
        headers = dict(out.headers)
        headers.update(credentials)
        if out.idempotency_key:
            headers["idempotency-key"] = out.idempotency_key
        connect = min(timeout, self.config.connect_timeout_s)
        request = httpx.Request(
            out.method,
            url,
            headers=headers,
            content=out.body or None,
            extensions={"timeout": {"connect": connect, "read": timeout, "write": timeout, "pool": timeout}},
        )
        instance.outstanding += 1
        began = time.monotonic()
        try:
            response = await self._send(request)
        except httpx.TimeoutException as exc:
            if bound_by_caller:  # the caller gave up; says nothing about the upstream
                raise CallerDeadline() from exc
            self._record(instance, False, time.monotonic() - began, f"timeout after {timeout:.1f}s")
            raise
        except ResponseTooLarge:  # the upstream answered: a success for it (the breaker agrees)
            self._record(instance, True, time.monotonic() - began, "")
            raise
        except httpx.TransportError as exc:
            self._record(instance, False, time.monotonic() - began, _reason(exc))
            raise
        finally:
            instance.outstanding -= 1
        failed = response.status_code >= 500
        self._record(instance, not failed, time.monotonic() - began, f"HTTP {response.status_code}")
        if failed:
            raise FailedResult((response, headers))
        return response, headers

    async def _send(self, request: httpx.Request) -> httpx.Response:
        """The one seam to the wire: the transport, the body read decoded within
        ``max_response_bytes`` (:func:`.bodies.read_body`). No cookies, redirects or
        client-level auth: a proxy must not carry one caller's cookies into another's call.

        The returned response holds the decoded body (``content``); ``Content-Encoding``
        is removed when every coding was undone, else it lists the codings still applied
        (``br``, ``zstd``: the caller asked for them), so no compressed body comes back
        unlabelled. Past the cap: :class:`ResponseTooLarge` — unless the upstream answered
        5xx, which is its failure anyway (:class:`.bodies.BodyError`, counted). Whatever
        stops the read before the end (the cap, an undecodable body, a timeout), the rest
        of the body is abandoned there without harming a shared HTTP/2 connection
        (:func:`.bodies.read_body`, :func:`.netbackend.abandon_stream`)."""
        response = await self.transport.handle_async_request(request)
        wire = response.stream
        assert isinstance(wire, httpx.AsyncByteStream)  # an async transport's
        try:
            body = await read_body(response, self.config.max_response_bytes)
        except ResponseTooLarge as exc:
            if response.status_code >= 500:
                raise BodyError(
                    f"HTTP {response.status_code} with an answer larger than {exc.limit} bytes"
                ) from exc
            raise
        finally:
            await wire.aclose()
        response.stream = httpx.ByteStream(body)
        left = plan(content_codings(response))[1]
        response.headers.pop("content-encoding", None)  # else aread() would decode again
        await response.aread()  # sets `content` from the body already read (no copy)
        if left:
            response.headers["content-encoding"] = ", ".join(left)
        return response

    def _record(self, instance: Instance, ok: bool, latency: float, error: str) -> None:
        instance.stats.record(ok, latency, error)
        self.stats.record(ok, latency, f"{instance.url}: {error}" if error else "")
        attempts_ok, attempts_failed, latency_seconds = self._metrics
        (attempts_ok if ok else attempts_failed).inc()
        latency_seconds.observe(latency)


def _reason(exc: Exception) -> str:
    """A transport error for health and messages: its type, or our own wording of it."""
    return str(exc) if isinstance(exc, BodyError) else type(exc).__name__


async def _fail(message: str) -> None:
    """Raise a token-endpoint failure (run through a breaker to count it)."""
    raise TokenEndpointFailed(message)
