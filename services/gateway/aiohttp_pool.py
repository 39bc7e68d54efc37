"""The gateway's HTTP/1.1 pool: aiohttp's connector behind httpx's transport interface.

:class:`AiohttpPool` is ``httpx_aiohttp.AiohttpTransport`` (kept by an httpx maintainer)
with two things fixed for a proxy:

* **The session is neutral.** Its own ``ClientSession`` has no cookie jar (one caller's
  ``Set-Cookie`` must never ride along on another caller's request) and adds none of
  aiohttp's automatic headers (``User-Agent``, ``Accept``, ``Accept-Encoding``, and
  ``Content-Type: application/octet-stream`` on a POST without one): the upstream gets the
  headers the gateway built, as with httpx's own pool.
* **Errors say whether the request may have been sent.** ``httpx_aiohttp`` (0.2.0) maps
  every ``aiohttp.ClientConnectionError`` to ``httpx.ConnectTimeout``: a refused
  connection too (its most-specific-wins check keeps ``ConnectTimeout`` over
  ``ConnectError``), and ``ServerDisconnectedError`` and resets that happen *after* the
  request went out; some aiohttp errors (a malformed response) escape unmapped. The gateway decides
  failover and retries by exception type (only ``httpx.ConnectError`` means "never
  reached the upstream"; a timeout bound by the caller's deadline is reported as such), so
  each aiohttp error is translated here, chained, to what httpx's own pool raises:

  ====================================================  ==============================
  aiohttp                                               httpx
  ====================================================  ==============================
  ClientConnectorError (refused, DNS, TLS handshake)    ConnectError
  ConnectionTimeoutError (pool wait or connect)         ConnectTimeout
  SocketTimeoutError, other ServerTimeoutError          ReadTimeout
  ServerDisconnectedError                               RemoteProtocolError
  ClientResponseError (a malformed response)            RemoteProtocolError
  ClientPayloadError                                    ReadError
  any other ClientConnectionError (reset, broken pipe)  ReadError
  NonHttpUrlClientError, InvalidUrlClientError          UnsupportedProtocol
  ====================================================  ==============================

aiohttp would also resend an idempotent request once, on a fresh connection, after any
disconnect or reset; that is switched off, so the gateway's retry policy (attempts,
backoff, deadline, metrics, the breaker's count) is the only one, as with httpx's pool.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

# aiohttp adds these unless told not to; a proxy sends only what it was given.
SKIP_AUTO_HEADERS = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")

_MAP: tuple[tuple[type[BaseException], type[httpx.TransportError]], ...] = (
    # Most specific first: aiohttp's classes overlap (ConnectionTimeoutError is a
    # ServerTimeoutError is a ClientConnectionError).
    (aiohttp.ClientConnectorError, httpx.ConnectError),
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (aiohttp.ServerTimeoutError, httpx.ReadTimeout),
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientPayloadError, httpx.ReadError),
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),
    (aiohttp.NonHttpUrlClientError, httpx.UnsupportedProtocol),
    (aiohttp.InvalidUrlClientError, httpx.UnsupportedProtocol),
    (aiohttp.ClientConnectionError, httpx.ReadError),
    (aiohttp.ClientError, httpx.RemoteProtocolError),
)


def translate(exc: BaseException) -> httpx.TransportError | None:
    """The httpx error for an aiohttp one (or for httpx_aiohttp's mapping of one), or None."""
    cause = exc.__cause__ if isinstance(exc, httpx.TransportError) else exc
    if cause is None:
        return None
    for source, target in _MAP:
        if isinstance(cause, source):
            error = target(str(cause) or type(cause).__name__)
            error.__cause__ = cause
            return error
    return None


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except (aiohttp.ClientError, httpx.TransportError) as exc:
        error = translate(exc)
        if error is None:
            raise
        raise error from error.__cause__


class _Stream(httpx.AsyncByteStream):
    """The response body, with body-time errors translated too."""

    def __init__(self, inner: httpx.AsyncByteStream) -> None:
        self._inner = inner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _translated():
            async for chunk in self._inner:
                yield chunk

    async def aclose(self) -> None:
        with _translated():
            await self._inner.aclose()


class AiohttpPool(AiohttpTransport):
    """One upstream's keep-alive pool: aiohttp's ``TCPConnector`` sized by ``limits``."""

    def __init__(self, *, limits: httpx.Limits, verify: ssl.SSLContext | bool) -> None:
        super().__init__(verify=verify, limits=limits, client=self._session)  # SSL_CERT_* honoured, as httpx

    def _session(self) -> aiohttp.ClientSession:
        """Built on first use, inside the running loop (aiohttp binds a session to it)."""
        connector = aiohttp.TCPConnector(
            limit=self.limits.max_connections or 0,
            keepalive_timeout=self.limits.keepalive_expiry,
            ssl=self.ssl_context,
        )
        session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=SKIP_AUTO_HEADERS,
            trust_env=False,
        )
        # No constructor option; aiohttp's own test utilities switch it off the same way.
        session._retry_connection = False
        return session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        with _translated():
            response = await super().handle_async_request(request)
        stream: Any = response.stream
        response.stream = _Stream(stream)
        return response
