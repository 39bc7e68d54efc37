"""The registry and router process: what it hosts on its gRPC port and runs beside it.

gRPC: ``RegistryService`` and ``RouterService``. Background, in start order: the change
feed tail (every replica; fans registry changes out to Watch streams and the router's
instance views), the health checker (one elected replica probes and reaps), and the
dispatcher (every replica delivers every target's queue; the queue's consumer group
shares the work).
"""

from __future__ import annotations

from dataclasses import dataclass

from services.core.config import MeshConfig
from services.core.redis_client import AnyRedis
from services.core.runner import ProcessApp
from services.core.server import ServiceDef, ServiceHost
from services.registry.dispatcher import Dispatcher
from services.registry.feed import ChangeFeed
from services.registry.health import HealthChecker
from services.registry.registry_service import RegistryServicer
from services.registry.router_service import RouterServicer
from services.registry.routes import RoutesTable
from services.registry.store import RegistryStore
from services.registry.view import InstanceViews
from wedsync.registry.v1 import registry_pb2, registry_pb2_grpc, router_pb2, router_pb2_grpc

REGISTRY_NAME = registry_pb2.DESCRIPTOR.services_by_name["RegistryService"].full_name
ROUTER_NAME = router_pb2.DESCRIPTOR.services_by_name["RouterService"].full_name
MAX_SUSPEND_S = 5.0


@dataclass
class _FeedTask:
    feed: ChangeFeed

    async def start(self, host: ServiceHost) -> None:
        await self.feed.start()

    async def stop(self) -> None:
        await self.feed.stop()


def build(config: MeshConfig, redis: AnyRedis) -> ProcessApp:
    settings = config.registry
    feed = ChangeFeed(redis)
    store = RegistryStore(redis, feed)
    checker = HealthChecker(store, settings, tls=config.client_tls)
    views = InstanceViews(store, settings.view_refresh_s, min(settings.health_interval_s, MAX_SUSPEND_S))
    feed.add_listener(checker.wake)
    feed.add_listener(views.on_change)
    routes = RoutesTable(settings.routes)
    dispatcher = Dispatcher(redis, views, settings, routes, tls=config.client_tls)
    feed.add_listener(dispatcher.on_change)
    registry = RegistryServicer(store, feed, settings)
    router = RouterServicer(dispatcher, routes, settings)
    return ProcessApp(
        [
            ServiceDef(
                REGISTRY_NAME,
                lambda server: registry_pb2_grpc.add_RegistryServiceServicer_to_server(registry, server),
            ),
            ServiceDef(
                ROUTER_NAME,
                lambda server: router_pb2_grpc.add_RouterServiceServicer_to_server(router, server),
            ),
        ],
        [_FeedTask(feed), checker, dispatcher],
    )
