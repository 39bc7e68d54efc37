"""Load for the fault tests: what was acknowledged, and how often the mesh refused."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import httpx

from tests.mesh_process import SUPPLIER_WEBHOOK_SECRET
from tests.webhooks.payloads import supplier_body, supplier_headers

PACE_S = 0.01  # load generator pacing (~100 requests/s per loop), not a wait for a condition


@dataclass
class Load:
    accepted: set[str] = field(default_factory=set)
    refused: int = 0


async def webhook_load(shim: str, stop: asyncio.Event, load: Load, prefix: str) -> None:
    """Signed supplier availability webhooks at a steady pace; wedding ids ``<prefix><n>``."""
    async with httpx.AsyncClient(timeout=5) as http:
        i = 0
        while not stop.is_set():
            i += 1
            wedding = f"{prefix}{i}"
            _, body = supplier_body("availability.updated", wedding_id=wedding)
            headers = {"content-type": "application/json", **supplier_headers(body, SUPPLIER_WEBHOOK_SECRET)}
            try:
                reply = await http.post(f"{shim}/webhooks/supplier_platform", content=body, headers=headers)
            except httpx.HTTPError:
                load.refused += 1
            else:
                if reply.status_code == 200:
                    load.accepted.add(wedding)
                else:
                    load.refused += 1
            await asyncio.sleep(PACE_S)
