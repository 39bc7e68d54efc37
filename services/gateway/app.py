"""The integration gateway process: what it hosts on its gRPC port."""

from __future__ import annotations

from services.core.config import MeshConfig
from services.core.redis_client import AnyRedis
from services.core.runner import ProcessApp
from services.core.server import ServiceDef
from services.core.unimplemented import unimplemented_servicer
from wedsync.gateway.v1 import gateway_pb2, gateway_pb2_grpc

SERVICE_NAME = gateway_pb2.DESCRIPTOR.services_by_name["IntegrationGatewayService"].full_name


def build(config: MeshConfig, redis: AnyRedis) -> ProcessApp:
    servicer = unimplemented_servicer(
        gateway_pb2_grpc.IntegrationGatewayServiceServicer, SERVICE_NAME, "the gateway issue (#3)"
    )
    return ProcessApp(
        [
            ServiceDef(
                SERVICE_NAME,
                lambda server: gateway_pb2_grpc.add_IntegrationGatewayServiceServicer_to_server(
                    servicer, server
                ),
            )
        ]
    )
