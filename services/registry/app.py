"""The registry and router process: what it hosts on its gRPC port."""

from __future__ import annotations

from services.core.config import MeshConfig
from services.core.redis_client import AnyRedis
from services.core.runner import ProcessApp
from services.core.server import ServiceDef
from services.core.unimplemented import unimplemented_servicer
from wedsync.registry.v1 import registry_pb2, registry_pb2_grpc, router_pb2, router_pb2_grpc

REGISTRY_NAME = registry_pb2.DESCRIPTOR.services_by_name["RegistryService"].full_name
ROUTER_NAME = router_pb2.DESCRIPTOR.services_by_name["RouterService"].full_name


def build(config: MeshConfig, redis: AnyRedis) -> ProcessApp:
    registry = unimplemented_servicer(
        registry_pb2_grpc.RegistryServiceServicer, REGISTRY_NAME, "the registry/router issue (#5)"
    )
    router = unimplemented_servicer(
        router_pb2_grpc.RouterServiceServicer, ROUTER_NAME, "the registry/router issue (#5)"
    )
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
        ]
    )
