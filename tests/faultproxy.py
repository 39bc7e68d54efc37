"""A small TCP fault proxy for tests: latency, blackholes (half-open), resets, refusals.

It sits between a client and a real server on loopback (a service and Redis, the gateway
and an upstream) and misbehaves on command, so tests can prove that the services recover
by themselves once it heals. Runs in the test's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from dataclasses import dataclass, field

CHUNK = 65536


@dataclass(eq=False)
class _Link:
    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class FaultProxy:
    """Forward ``127.0.0.1:<port>`` to ``target``; call the fault methods to misbehave."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.latency_s = 0.0
        self._flowing = asyncio.Event()  # cleared while blackholed: forward nothing until healed
        self._flowing.set()
        self.refusing = False  # accept and close at once
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self.connections = 0

    async def start(self, port: int = 0) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        await self.reset_all()
        if self._handlers:  # let every connection handler finish before the loop closes
            await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    # faults -----------------------------------------------------------------------
    def add_latency(self, seconds: float) -> None:
        """Delay every chunk in both directions by ``seconds``."""
        self.latency_s = seconds

    def blackhole(self) -> None:
        """Keep connections open but pass nothing on until healed (a partition, no FIN)."""
        self._flowing.clear()

    def refuse(self) -> None:
        """Close new connections as soon as they are accepted."""
        self.refusing = True

    async def reset_all(self) -> None:
        """Send RST on every open connection (both sides), as a crashed peer or firewall would."""
        for link in list(self._links):
            for writer in (link.client, link.server):
                _reset(writer)
            for task in link.tasks:
                task.cancel()
        self._links.clear()

    def heal(self) -> None:
        """Back to a well-behaved pipe for new and open connections."""
        self.latency_s = 0.0
        self._flowing.set()
        self.refusing = False

    # plumbing ---------------------------------------------------------------------
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        handler = asyncio.current_task()
        if handler is not None:
            self._handlers.add(handler)
            handler.add_done_callback(self._handlers.discard)
        if self.refusing:
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _reset(writer)
            return
        link = _Link(writer, up_writer)
        self._links.add(link)
        link.tasks = [
            asyncio.create_task(self._pump(reader, up_writer)),
            asyncio.create_task(self._pump(up_reader, writer)),
        ]
        await asyncio.gather(*link.tasks, return_exceptions=True)
        self._links.discard(link)
        for w in (writer, up_writer):
            with contextlib.suppress(Exception):
                w.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await reader.read(CHUNK)
                if not data:
                    break
                await self._flowing.wait()  # held, as TCP would retransmit across a partition
                if self.latency_s:
                    await asyncio.sleep(self.latency_s)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with SO_LINGER 0 so the peer sees a reset, not a clean FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(Exception):
        writer.transport.abort()
