"""Per-provider queue gauges: what waits for a worker, what is in flight, what is dead.

On the busiest day the first questions are "is intake falling behind?" and "is a worker
stuck?"; the answers live in Redis, so every webhooks process refreshes them from the
queues' read-only stats script every ``stats_refresh_s`` (one call per provider). All
replicas export the same shared figures: aggregate with ``max`` across them, not ``sum``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping

from services.core.errors import MeshError
from services.webhooks.metrics import BACKLOG, DEAD_LETTERS, IN_FLIGHT, OLDEST_AGE
from services.webhooks.providers import Provider

log = logging.getLogger("wedmesh.webhooks.gauges")


class QueueGauges:
    """Background: keep the queue gauges of every provider fresh."""

    def __init__(self, providers: Mapping[str, Provider], interval_s: float) -> None:
        self.providers = providers
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    async def start(self, host: object = None) -> None:
        self._task = asyncio.create_task(self._run(), name="webhooks-gauges")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def refresh(self) -> None:
        """Set every provider's gauges; a provider whose stats fail keeps its last values."""
        failed: list[str] = []
        for provider in self.providers.values():
            try:
                stats = await provider.queue.stats()
            except MeshError as exc:  # Redis down (or that provider's Cluster node): readiness says why
                failed.append(f"{provider.id}: {exc.message}")
                continue
            ages = [p.oldest_age for p in stats.priorities.values() if p.oldest_age is not None]
            BACKLOG.labels(provider.id).set(stats.backlog)
            IN_FLIGHT.labels(provider.id).set(stats.in_flight)
            DEAD_LETTERS.labels(provider.id).set(stats.dead)
            OLDEST_AGE.labels(provider.id).set(max(ages, default=0.0))
        if failed and not self._failing:
            log.warning("queue gauges not refreshed", extra={"providers": failed})
        self._failing = bool(failed)

    async def _run(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:  # a bug must not stop the gauges for the life of the process
                log.exception("queue gauges refresh failed")
            await asyncio.sleep(self.interval_s)
