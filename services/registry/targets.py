"""Which services hold a router queue: admission under a cap, and idleness for retirement.

A router queue costs, per service, a Worker task on every replica (which keeps asking the
registry whether an instance is healthy), queue keys in Redis and a set of metric series.
Any syntactically valid ``to_service`` is accepted (a message for a service that is not, or
not yet, registered waits for it), so without a bound a caller inventing names would grow
all of that forever. Two bounds:

* **Admission** (``admit_target.lua``): the set ``wm:reg:{global}:router-services`` lists
  every service with a router queue; it is what every replica serves, what stats, gauges
  and dead-letter listings cover. A service joins it on its first Send/Publish, which is
  refused when the set already holds ``max_target_services`` members — unless the service
  has a live instance or is a route target: operators decide those, so a caller filling
  the set with made-up names can never lock out a real service. Check and add are one
  script, so concurrent admissions through any number of replicas never overshoot; a
  service put back without admission (a retirement undone, see ``Dispatcher``) can.
* **Retirement**: a service (not a route target) whose queue is empty — nothing ready,
  in flight, delayed, waiting behind an ordering key, or dead-lettered — and that has no
  live instance, observed so for ``target_idle_s``, leaves the set; every replica then
  stops its Worker, removes its metric series and closes the sink connections only it
  used (see ``Dispatcher``). The idle clock (:class:`IdleClock`) runs on what the sweep
  reads anyway (the queue's totals) and what the replica knows without asking Redis (a
  Send running, a registration on the change feed, a current view with a healthy
  instance); the registry is asked for live instances once, when the clock says the
  service is due, and a live instance found then starts its clock again. So a registered
  service whose queue stays empty costs one registry read per ``target_idle_s``, not one
  per sweep.
"""

from __future__ import annotations

from services.core.errors import translate_redis_errors
from services.core.redis_client import AnyRedis
from services.registry.admin import services_key
from services.registry.scripts import Scripts


class TargetSet:
    """The Redis set of services with a router queue, under ``cap`` members for callers."""

    def __init__(self, client: AnyRedis, cap: int) -> None:
        self.client = client
        self.cap = cap
        self._scripts = Scripts(client)

    async def admit(self, service: str, *, past_cap: bool = False) -> tuple[bool, int]:
        """(admitted, members): a member is always admitted, a new one while below the cap."""
        with translate_redis_errors("admit router service"):
            admitted, members = await self._scripts.admit_target(
                keys=[services_key()], args=[service, self.cap, "1" if past_cap else "0"]
            )
        return bool(int(admitted)), int(members)

    async def add(self, service: str) -> None:
        """Put back a service whose queue holds messages (never refused: they are accepted already)."""
        with translate_redis_errors("note router service"):
            await self.client.sadd(services_key(), service)

    async def remove(self, service: str) -> None:
        with translate_redis_errors("retire router service"):
            await self.client.srem(services_key(), service)


class IdleClock:
    """Since when each service has been seen idle; due once it has been so for ``idle_s``."""

    def __init__(self, idle_s: float) -> None:
        self.idle_s = idle_s
        self._since: dict[str, float] = {}

    def observe(self, service: str, idle: bool, now: float) -> bool:
        """Record one observation; True when the service has been idle for ``idle_s``."""
        if not idle:
            self._since.pop(service, None)
            return False
        return now - self._since.setdefault(service, now) >= self.idle_s

    def forget(self, service: str) -> None:
        """Start the service's idle time again (seen busy, or retired)."""
        self._since.pop(service, None)

    def retain(self, services: set[str]) -> None:
        """Forget every service but ``services`` (no longer observed: its idle time restarts)."""
        for service in set(self._since) - services:
            del self._since[service]
