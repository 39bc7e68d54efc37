"""The baseline of bench/peak.py: the shim's own HTTP app and server settings, intake replaced by one XADD.

    .venv/bin/python bench/peak_bare.py --port 8099 --redis-url redis://127.0.0.1:7000/0

``services.webhooks.shim.uvicorn_server`` serves exactly what ``wedmesh serve shim`` serves
(content-type and body checks, the same uvicorn settings, its connection limit included),
but its backend, instead of calling intake over gRPC (signature check, dedup, queue), appends
the body to one Redis stream and answers "accepted". So the same load against it shows what
the HTTP part alone costs on this box, and the mesh figures are read against that ceiling.
(bench/webhooks.py's bare endpoint has no connection limit and a 100-connection Redis pool
that fails rather than waits, so it cannot take 10,000 webhooks at once.)
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis.asyncio as aioredis  # noqa: E402

from services.core.config import ShimConfig  # noqa: E402
from services.core.keys import webhook_key  # noqa: E402
from services.core.runner import loop_factory  # noqa: E402
from services.webhooks.shim import uvicorn_server  # noqa: E402
from wedsync.webhooks.v1 import webhooks_pb2  # noqa: E402

POOL = 64  # requests beyond this wait for a Redis connection (as the mesh's clients do)


class XaddBackend:
    """The shim's Backend with intake replaced by one XADD of the raw body."""

    def __init__(self, url: str) -> None:
        self.client = aioredis.Redis(
            connection_pool=aioredis.BlockingConnectionPool.from_url(url, max_connections=POOL)
        )
        self.key = webhook_key("bench", "bare")

    async def open(self) -> None:
        await self.client.ping()

    async def close(self) -> None:
        await self.client.aclose()

    async def ingest(
        self, provider_id: str, headers: dict[str, str], body: bytes, remote_addr: str
    ) -> webhooks_pb2.IngestResponse:
        entry = await self.client.xadd(self.key, {"b": body})
        event_id = entry.decode() if isinstance(entry, bytes) else str(entry)
        return webhooks_pb2.IngestResponse(event_id=event_id, outcome=webhooks_pb2.INGEST_OUTCOME_ACCEPTED)

    async def ready(self) -> str | None:
        return None


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    args = parser.parse_args()
    server = uvicorn_server(ShimConfig(), XaddBackend(args.redis_url), host="127.0.0.1", port=args.port)
    with asyncio.Runner(loop_factory=loop_factory("shim")) as runner:  # the shim's loop (uvloop)
        runner.run(server.serve())
