"""No CROSSSLOT anywhere: every command, script and transaction of the mesh stays in one slot.

Redis Cluster refuses a command, script or MULTI whose keys live in different hash slots
(CROSSSLOT), and a script that touches a key it did not declare on another node. A single
node accepts both silently, so a key that lost its ``{hash tag}`` would only fail in
production. These tests check it on whatever Redis the session runs (tests/redis_mode.py):
the key builders of every family, and the real traffic of a flow through all three
services, watched with MONITOR on every node.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from services.core import keys
from services.core.config import MeshConfig, with_overrides
from services.core.local_redis import RedisCluster, RedisServer
from services.core.server import ServiceHost
from services.registry.sdk import MeshInstance
from services.registry.testing import RecordingSink
from services.webhooks import layout
from tests.gateway.conftest import upstream_table
from tests.gateway.upstreams import FakeUpstream
from tests.waiting import wait_for
from tests.webhooks.conftest import SECRETS, STRIPE_SECRET, SUPPLIER_SECRET, webhooks_config
from tests.webhooks.payloads import stripe_body, stripe_headers, supplier_body, supplier_headers
from wedsync.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from wedsync.registry.v1 import message_pb2, router_pb2, router_pb2_grpc
from wedsync.webhooks.v1 import webhooks_pb2, webhooks_pb2_grpc

Start = Callable[..., Awaitable[ServiceHost]]
SCRIPT_COMMANDS = {"eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro"}
FAMILIES = ("wm:q:", "wm:wh:", "wm:reg:", "wm:gw:")


def slot(key: str) -> int:
    return int(key_slot(key.encode()))


def key_args(command: str) -> list[str]:
    """The mesh keys among a MONITOR line's arguments (every mesh key starts with ``wm:``)."""
    return [arg for arg in command.split(" ")[1:] if arg.startswith(f"{keys.PREFIX}:")]


def _queue_keys(queue: keys.QueueKeys) -> list[str]:
    return [*queue.streams, queue.delayed, queue.dead, queue.extra("idem", "k-1")]


@pytest.mark.parametrize(
    "group",
    [
        _queue_keys(keys.QueueKeys("router:notification-service")),
        [keys.webhook_key("stripe", "seen", "evt_1"), keys.webhook_key("stripe", "log")],
        [layout.event_key("e-1"), layout.log_key("stripe"), layout.stream_key(), layout.marker_key("e-1")],
        [
            keys.registry_key("notification-service", "instances"),
            keys.registry_key("notification-service", "i"),
        ],
        [keys.registry_global_key("services"), keys.registry_global_key("feed")],
        [keys.gateway_key("stripe_payments", "rl", "client-a"), keys.gateway_key("stripe_payments", "token")],
    ],
    ids=["queue", "webhook", "webhook-history", "registry", "registry-global", "gateway"],
)
def test_every_key_of_one_group_hashes_to_one_slot(group: list[str]) -> None:
    """The keys one script works on (one queue, provider, service, upstream) share a slot."""
    assert len({slot(k) for k in group}) == 1, {k: slot(k) for k in group}


def test_different_groups_spread_over_slots() -> None:
    """The tag is the group's own name, so queues of different services land in different slots."""
    tags = [keys.QueueKeys(f"router:service-{i}").dead for i in range(8)]
    assert len({slot(k) for k in tags}) > 1


@dataclass
class SlotWatch:
    """Reads MONITOR on every node and records each command that spans more than one slot."""

    nodes: list[RedisServer]
    violations: list[str] = field(default_factory=list)
    families: set[str] = field(default_factory=set)
    scripts: int = 0
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _ready: list[asyncio.Event] = field(default_factory=list)

    async def start(self) -> None:
        for node in self.nodes:
            ready = asyncio.Event()
            self._ready.append(ready)
            self._tasks.append(asyncio.create_task(self._watch(node, ready)))
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in self._ready)), 10)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _watch(self, node: RedisServer, ready: asyncio.Event) -> None:
        client = aioredis.Redis(host=node.host, port=node.port)
        in_multi: dict[str, list[str]] = {}
        lua_group: list[str] = []
        try:
            async with client.monitor() as monitor:
                ready.set()
                while True:
                    line = await monitor.next_command()
                    command: str = line["command"]
                    name = command.split(" ", 1)[0].lower()
                    found = key_args(command)
                    self.families.update(f for f in FAMILIES if any(k.startswith(f) for k in found))
                    if line.get("client_type") == "lua":  # a command run by the script just sent
                        lua_group.extend(found)
                        self._check(f"{node.port} script body", lua_group, command)
                        continue
                    lua_group = []
                    who = f"{line.get('client_address')}:{line.get('client_port')}"
                    if name in SCRIPT_COMMANDS:
                        self.scripts += 1
                    if name == "multi":
                        in_multi[who] = []
                    elif name in ("exec", "discard"):
                        self._check(f"{node.port} MULTI", in_multi.pop(who, []), command)
                    elif who in in_multi:
                        in_multi[who].extend(found)
                    self._check(f"{node.port}", found, command)
        finally:
            await client.aclose()

    def _check(self, where: str, found: list[str], command: str) -> None:
        slots = {slot(k) for k in found}
        if len(slots) > 1:
            self.violations.append(f"{where}: {sorted(set(found))} in slots {sorted(slots)}: {command[:200]}")


@contextlib.asynccontextmanager
async def watching(backend: RedisServer | RedisCluster) -> AsyncIterator[SlotWatch]:
    watch = SlotWatch(backend.nodes if isinstance(backend, RedisCluster) else [backend])
    await watch.start()
    try:
        yield watch
    finally:
        await watch.stop()


@pytest.fixture
def flow_config(mesh_config: MeshConfig, monkeypatch: pytest.MonkeyPatch) -> MeshConfig:
    """All three services on the session Redis; webhooks publish to this registry's router."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    return webhooks_config(
        mesh_config,
        **{
            "webhooks.router_address": f"127.0.0.1:{mesh_config.registry.port}",
            "registry.health_interval_s": 0.2,
            "registry.retry_initial_backoff_s": 0.05,
            "registry.retry_max_backoff_s": 0.2,
        },
    )


async def test_a_flow_through_every_service_never_spans_two_slots(
    redis_backend: RedisServer | RedisCluster,
    redis_url: str,
    start_service: Start,
    flow_config: MeshConfig,
) -> None:
    """Webhooks → worker → router → sinks, Router.Send with a retry and a dead letter, and a
    rate-limited gateway call: no command, script body or MULTI touches two slots."""
    upstream = await FakeUpstream().start()
    try:
        async with watching(redis_backend) as watch:
            registry = await start_service("registry", flow_config)
            webhooks = await start_service("webhooks", flow_config)
            gateway_config = with_overrides(
                flow_config,
                {"gateway.upstreams": {"svc": upstream_table([upstream.url], rate_limit={"requests": 100})}},
            )
            gateway = await start_service("gateway", gateway_config)
            await _drive(registry.port, webhooks.port, gateway.port)
            await wait_for(lambda: watch.families >= set(FAMILIES), timeout=10, what="every key family seen")
        assert watch.scripts > 0
        assert not watch.violations, f"{len(watch.violations)} cross-slot: " + "\n".join(watch.violations[:5])
    finally:
        await upstream.stop()


async def _drive(registry_port: int, webhooks_port: int, gateway_port: int) -> None:
    registry = f"127.0.0.1:{registry_port}"
    failed_once: set[str] = set()

    async def flaky(message: message_pb2.Message) -> None:
        if message.message_id not in failed_once:
            failed_once.add(message.message_id)
            raise RuntimeError("first delivery fails: the router retries it")

    async def broken(message: message_pb2.Message) -> None:
        raise RuntimeError("never delivered: dead letter")

    notification, analytics, calendar = RecordingSink(), RecordingSink(flaky), RecordingSink()
    async with (
        MeshInstance("notification-service", notification, registry=registry),
        MeshInstance("analytics-service", analytics, registry=registry),
        MeshInstance("calendar-service", calendar, registry=registry),
        MeshInstance("mail-service", RecordingSink(broken), registry=registry),
        grpc.aio.insecure_channel(f"127.0.0.1:{webhooks_port}") as wh_channel,
        grpc.aio.insecure_channel(registry) as reg_channel,
        grpc.aio.insecure_channel(f"127.0.0.1:{gateway_port}") as gw_channel,
    ):
        intake = webhooks_pb2_grpc.WebhookIntakeServiceStub(wh_channel)
        _, body = stripe_body(wedding_id="wed_slots")
        request = webhooks_pb2.IngestRequest(
            provider_id="stripe", body=body, headers=stripe_headers(body, STRIPE_SECRET)
        )
        first = await intake.Ingest(request, timeout=10)
        again = await intake.Ingest(request, timeout=10)
        assert again.outcome == webhooks_pb2.INGEST_OUTCOME_DUPLICATE and again.event_id == first.event_id
        _, body = supplier_body("availability.updated", wedding_id="wed_slots")
        await intake.Ingest(
            webhooks_pb2.IngestRequest(
                provider_id="supplier_platform", body=body, headers=supplier_headers(body, SUPPLIER_SECRET)
            ),
            timeout=10,
        )
        await notification.wait_for(1, timeout=30)
        await analytics.wait_for(1, timeout=30)
        await calendar.wait_for(1, timeout=30)
        await intake.ListEvents(webhooks_pb2.ListEventsRequest(), timeout=10)

        router = router_pb2_grpc.RouterServiceStub(reg_channel)
        for priority in (message_pb2.MESSAGE_PRIORITY_HIGH, message_pb2.MESSAGE_PRIORITY_LOW):
            message = message_pb2.Message(
                to_service="notification-service",
                payload=b"x",
                priority=priority,
                idempotency_key=f"k{priority}",
            )
            await router.Send(router_pb2.SendRequest(message=message), timeout=10)
        await notification.wait_for(3, timeout=30)
        dead = message_pb2.Message(to_service="mail-service", payload=b"x", max_retries=1)
        await router.Send(router_pb2.SendRequest(message=dead), timeout=10)

        async def dead_letter() -> Any:
            page = await router.ListDeadLetters(router_pb2.ListDeadLettersRequest(), timeout=10)
            return list(page.dead_letters)

        await wait_for(dead_letter, timeout=30, what="a dead letter")
        await router.GetQueueStats(router_pb2.GetQueueStatsRequest(), timeout=10)

        gateway = gateway_pb2_grpc.IntegrationGatewayServiceStub(gw_channel)
        reply = await gateway.Invoke(
            gateway_pb2.InvokeRequest(service_id="svc", path="/v1/thing", client_id="a"), timeout=10
        )
        assert reply.status_code == 200
        await gateway.GetServiceHealth(gateway_pb2.GetServiceHealthRequest(service_id="svc"), timeout=10)
