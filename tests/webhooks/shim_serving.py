"""The shim served for tests on a real port, and stand-ins for intake behind it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import uvicorn

from tests.waiting import wait_for
from wedsync.webhooks.v1 import webhooks_pb2


@contextlib.asynccontextmanager
async def serving(server: uvicorn.Server) -> AsyncIterator[uvicorn.Server]:
    """Run ``server`` until the block ends (it is started when the block begins)."""
    task = asyncio.create_task(server.serve())
    try:
        await wait_for(lambda: server.started, what="shim started")
        yield server
    finally:
        server.should_exit = True
        await task


class InstantIntake:
    """A shim backend that accepts every webhook at once: the shim, not intake, is under test."""

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def ready(self) -> str | None:
        return None

    async def ingest(
        self, provider_id: str, headers: dict[str, str], body: bytes, remote_addr: str
    ) -> webhooks_pb2.IngestResponse:
        return webhooks_pb2.IngestResponse(event_id="whe_1")
