"""Stand-in upstreams for the gateway tests: real HTTP servers on loopback.

:class:`FakeUpstream` is a small Starlette app run by uvicorn on a free port, told what to
do through plain attributes: answer normally, fail with a status, hang, answer 429 with
Retry-After, demand an auth header, issue OAuth2 tokens with a short expiry (counting
token requests). :class:`ResettingServer` accepts TCP connections and resets them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import socket
import struct
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from services.core.local_redis import free_port
from tests.waiting import wait_for


@dataclass
class Seen:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class FakeUpstream:
    """One stand-in upstream; mutate its attributes to change how it answers."""

    status: int = 200
    body: Any = field(default_factory=lambda: {"ok": True})
    raw: bytes | None = None  # when set, sent as the body instead of json.dumps(body)
    delay_s: float = 0.0
    fail_first: int = 0  # answer `fail_status` to this many requests first
    fail_status: int = 503
    retry_after: str | None = None  # sent with 429 answers
    require: dict[str, str] = field(default_factory=dict)  # header -> exact value
    oauth_client: tuple[str, str] | None = None  # (id, secret) the token endpoint accepts
    oauth_decodes: bool = True  # the token endpoint form-decodes id and secret (RFC 6749 2.3.1)
    token_ttl_s: float = 60.0
    token_delay_s: float = 0.0
    token_status: int = 0  # when set, the token endpoint answers this status (an OAuth2 error body)
    token_answer: Any = None  # when set, the token endpoint answers 200 with this JSON instead
    gzip: bool = False  # compress answers when the request accepts gzip
    gate: asyncio.Event | None = None  # when set, requests wait for it before answering
    requests: list[Seen] = field(default_factory=list)
    token_requests: int = 0
    valid_tokens: set[str] = field(default_factory=set)
    port: int = 0
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None
    _counter: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def app(self) -> ASGIApp:
        app = Starlette(
            routes=[
                Route("/oauth/token", self._token, methods=["POST"]),
                Route("/{path:path}", self._any, methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]),
            ]
        )
        return GZipMiddleware(app, minimum_size=10) if self.gzip else app

    async def _token(self, request: Request) -> Response:
        self.token_requests += 1
        if self.token_delay_s:
            await asyncio.sleep(self.token_delay_s)
        if self.token_status:
            return JSONResponse({"error": "temporarily_unavailable"}, status_code=self.token_status)
        if self.token_answer is not None:
            return JSONResponse(self.token_answer)
        sent = client_credentials(request.headers, decode=self.oauth_decodes)
        if self.oauth_client is None or sent != self.oauth_client:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        token = f"tok-{next(self._counter)}"
        self.valid_tokens.add(token)
        asyncio.get_running_loop().call_later(self.token_ttl_s, self.valid_tokens.discard, token)
        return JSONResponse({"access_token": token, "token_type": "bearer", "expires_in": self.token_ttl_s})

    async def _any(self, request: Request) -> Response:
        body = await request.body()
        self.requests.append(
            Seen(
                request.method,
                request.url.path,
                request.url.query,
                dict(request.headers),
                body,
                time.monotonic(),
            )
        )
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.gate is not None:
            await self.gate.wait()
        for name, value in self.require.items():
            if request.headers.get(name) != value:
                return JSONResponse({"error": {"message": f"bad {name}"}}, status_code=401)
        if self.oauth_client is not None:
            auth = request.headers.get("authorization", "")
            if not auth.startswith("Bearer ") or auth[7:] not in self.valid_tokens:
                return JSONResponse({"error": {"message": "invalid token"}}, status_code=401)
        if self.fail_first > 0:
            self.fail_first -= 1
            headers = {"retry-after": self.retry_after} if self.retry_after else {}
            return JSONResponse(
                {"error": {"message": "failing"}}, status_code=self.fail_status, headers=headers
            )
        headers = {"request-id": f"req_{len(self.requests)}"}
        if self.status == 429 and self.retry_after:
            headers["retry-after"] = self.retry_after
        content = self.raw if self.raw is not None else json.dumps(self.body)
        return Response(content, status_code=self.status, headers=headers, media_type="application/json")

    async def start(self, port: int = 0) -> FakeUpstream:
        self.port = port or free_port()
        config = uvicorn.Config(
            self.app(), host="127.0.0.1", port=self.port, log_level="warning", lifespan="off", ws="none"
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        for _ in range(500):
            if self._server.started:
                return self
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        raise AssertionError("fake upstream did not start")

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            self._server.force_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._server = None


def client_credentials(headers: Any, *, decode: bool = True) -> tuple[str, str] | None:
    """(client id, secret) from HTTP Basic as RFC 6749 §2.3.1 sends them: each
    form-urlencoded, then joined with ':' and base64-encoded; with ``decode=False`` as a
    provider that does not form-decode them reads them."""
    auth = headers.get("authorization", "")
    if not auth.startswith("Basic "):
        return None
    try:
        pair = base64.b64decode(auth[6:], validate=True).decode()
    except ValueError:
        return None
    client_id, colon, secret = pair.partition(":")
    if not colon:
        return None
    if not decode:
        return client_id, secret
    return urllib.parse.unquote_plus(client_id), urllib.parse.unquote_plus(secret)


class ResettingServer:
    """Accepts a connection, reads the request, and resets it (RST, no answer)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.connections = 0
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        with contextlib.suppress(Exception):
            await asyncio.wait_for(reader.read(1024), 2)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    async def start(self) -> ResettingServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


# A handler gets one request (head and body) and writes what it likes; returning False closes.
RawHandler = Callable[[bytes, asyncio.StreamWriter], Awaitable[bool]]


class RawServer:
    """A loopback HTTP/1.1 server scripted by ``handler``; records requests, counts connections."""

    def __init__(self, handler: RawHandler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []
        self.port = free_port()
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []
        self.active = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def header(self, index: int, name: str) -> str | None:
        """The value of header ``name`` in request ``index`` (None if absent)."""
        head = self.requests[index].split(b"\r\n\r\n", 1)[0]
        for line in head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == name.lower().encode():
                return value.strip().decode()
        return None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.active += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length) if length else b""
                self.requests.append(head + body)
                if not await self.handler(head + body, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            self.active -= 1

    async def __aenter__(self) -> RawServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.close()  # the handler sees EOF and ends
        await wait_for(lambda: self.active == 0, what="the raw server's handlers to end")


def answer(raw: bytes, keep_open: bool = True) -> RawHandler:
    """A handler that writes ``raw`` to every request (then closes unless ``keep_open``)."""

    async def handler(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(raw)
        await writer.drain()
        return keep_open

    return handler
