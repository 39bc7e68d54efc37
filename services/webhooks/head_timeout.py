"""uvicorn's HTTP protocol as the shim needs it: a request-head deadline, and a 503 with
``Retry-After`` at the connection limit.

**Head deadline**, so slow-header (slowloris) and silent clients are cut off.

uvicorn has no header read timeout. Its httptools and h11 protocols arm ``timeout_keep_alive``
only after a response, and the first byte of the next request cancels it. A fresh connection
gets no timer at all. So a client that connects and says nothing, or sends one header byte a
second, holds a connection (and a ``limit_concurrency`` slot) forever. The shim's
``body_timeout_s`` cannot help, because the app only runs once the head is complete.

:func:`head_timeout_protocol` returns uvicorn's own protocol class with a head timer added.
It is passed as ``http=`` to ``uvicorn.Config``. The timer runs while the connection waits for
a request head: from ``connection_made`` (with TLS that is after the handshake, which the
event loop bounds by its own 60 s handshake timeout), and again after each response on a
kept-alive connection. It stops when a head is complete, which is when uvicorn starts a request
cycle. If it fires first:

- some bytes of a head have arrived: answer 408 with ``Connection: close``, then close. The
  client is mid-request and nothing on the connection is waiting for an answer, so the 408
  answers that request and tells the client (and its logs) why it was cut off;
- nothing has arrived: close without a word, as an expired keep-alive does. There is no request
  to answer, and an unsolicited 408 on an idle connection could be taken by a client as the
  answer to a request it is sending at that moment.

**Connection limit** (``limit_concurrency``, the shim's ``max_connections``): past it uvicorn
answers every request with a bare ``503 Service Unavailable`` in plain text, without the
``Retry-After`` that each other 503 of the shim carries (and that tells a provider when to
come back). The protocol here takes uvicorn's test over: uvicorn's own is switched off for the
connection and the same test (open connections, running requests) is made when the request
starts, answering a JSON error with ``Retry-After`` and ``Connection: close``. Refusals are
counted as ``wedmesh_http_requests_total{route="connection_limit",status="503"}`` and logged
at most once every ``BUSY_LOG_EVERY_S``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from services.core import logs, metrics

log = logging.getLogger("wedmesh.shim")

BUSY_LOG_EVERY_S = 10.0
_busy_log = logs.Throttle(BUSY_LOG_EVERY_S)  # one "connection limit" warning per interval
Asgi = Callable[[Any, Any, Any], Awaitable[None]]

if TYPE_CHECKING:
    _Base = HttpToolsProtocol
else:
    _Base = object


def _timeout_response(timeout_s: float) -> bytes:
    body = json.dumps({"error": f"request head not received within {timeout_s:g} s"}).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class _HeadDeadline(_Base):
    """Mixin for uvicorn's HTTP protocols. It relies on what both of them do: ``self.cycle``
    is replaced when a request head is complete, ``on_response_complete`` runs after each
    response, and a request runs ``self.app`` unless ``self.limit_concurrency`` is exceeded
    (``self.connections`` and ``self.tasks`` are the server's, shared by all connections).
    """

    head_timeout_s: float = 10.0
    busy_response: Asgi | None = None  # the 503 past limit_concurrency (None: uvicorn's own)
    _head_timer: asyncio.TimerHandle | None = None
    _head_bytes = False  # bytes arrived since the timer was armed
    _connection_limit: int | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.limit_concurrency is not None and self.busy_response is not None:
            self._connection_limit = self.limit_concurrency
            self.limit_concurrency = None  # uvicorn's plain 503 off: _app_unless_busy answers instead
            self._asgi_app = self.app
            self.app = self._app_unless_busy

    async def _app_unless_busy(self, scope: Any, receive: Any, send: Any) -> None:
        """The app, or :attr:`busy_response` where uvicorn would send its plain 503.

        uvicorn's test, made as the request starts (its head has arrived): this request's task
        is already one of ``self.tasks``, so "running requests before it >= limit" is ``>``.
        """
        limit = self._connection_limit
        assert limit is not None and self.busy_response is not None
        if len(self.connections) < limit and len(self.tasks) <= limit:
            await self._asgi_app(scope, receive, send)
            return
        if _busy_log.due():
            log.warning(
                "connection limit reached: answering 503",
                extra={"connections": len(self.connections), "max_connections": limit},
            )
        metrics.child(metrics.HTTP_REQUESTS, "connection_limit", "503").inc()
        await self.busy_response(scope, receive, send)

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        if self._head_timer is not None:
            self._head_bytes = True
        before = self.cycle
        super().data_received(data)
        if self.cycle is not before:  # a head is complete: the app (and body_timeout_s) takes over
            self._disarm_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        idle = self.cycle is None or self.cycle.response_complete  # no pipelined request started
        if idle and not self.transport.is_closing():
            self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self._head_bytes = False
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self._head_bytes:
            self.transport.write(_timeout_response(self.head_timeout_s))
            metrics.HTTP_REQUESTS.labels("head_timeout", "408").inc()
        log.debug("request head timed out", extra={"partial": self._head_bytes})
        self.transport.close()


class _HttpToolsHeadDeadline(_HeadDeadline, HttpToolsProtocol):
    pass


class _H11HeadDeadline(_HeadDeadline, H11Protocol):  # type: ignore[misc]  # mypy sees the mixin as httptools
    pass


_BASES: dict[str, type[_HeadDeadline]] = {"httptools": _HttpToolsHeadDeadline, "h11": _H11HeadDeadline}


def head_timeout_protocol(
    timeout_s: float, http: Literal["httptools", "h11"] = "httptools", *, busy_response: Asgi | None = None
) -> type[asyncio.Protocol]:
    """uvicorn's ``http`` protocol class with a ``timeout_s`` deadline for each request head,
    and ``busy_response`` (an ASGI app: the shim's JSON 503 with ``Retry-After``) in place of
    uvicorn's plain 503 past ``limit_concurrency``.

    httptools is what uvicorn's "auto" picks, and the shim depends on ``uvicorn[standard]``.
    h11 is here so the mechanism can be tested on both.
    """
    if timeout_s <= 0:
        raise ValueError(f"head timeout must be positive, got {timeout_s}")
    base = _BASES[http]
    attributes = {"head_timeout_s": timeout_s, "busy_response": busy_response}
    return type(base.__name__.lstrip("_"), (base,), attributes)
