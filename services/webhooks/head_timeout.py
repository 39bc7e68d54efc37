"""A deadline for the request head, so slow-header (slowloris) and silent clients are cut off.

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
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any, Literal

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from services.core import metrics

log = logging.getLogger("wedmesh.shim")

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
    is replaced when a request head is complete, and ``on_response_complete`` runs after
    each response.
    """

    head_timeout_s: float = 10.0
    _head_timer: asyncio.TimerHandle | None = None
    _head_bytes = False  # bytes arrived since the timer was armed

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
    timeout_s: float, http: Literal["httptools", "h11"] = "httptools"
) -> type[asyncio.Protocol]:
    """uvicorn's ``http`` protocol class with a ``timeout_s`` deadline for each request head.

    httptools is what uvicorn's "auto" picks, and the shim depends on ``uvicorn[standard]``.
    h11 is here so the mechanism can be tested on both.
    """
    if timeout_s <= 0:
        raise ValueError(f"head timeout must be positive, got {timeout_s}")
    base = _BASES[http]
    return type(base.__name__.lstrip("_"), (base,), {"head_timeout_s": timeout_s})
