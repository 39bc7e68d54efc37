"""The integration gateway process: the gateway service on its gRPC port, plus the
background task that owns the upstreams' HTTP clients and publishes their health."""

from __future__ import annotations

from services.core.config import MeshConfig, service_token
from services.core.redis_client import AnyRedis
from services.core.runner import ProcessApp
from services.core.server import ServiceDef
from services.gateway.discovery import Discovery
from services.gateway.gateway import Gateway
from services.gateway.servicer import GatewayServicer
from wedsync.gateway.v1 import gateway_pb2, gateway_pb2_grpc

SERVICE_NAME = gateway_pb2.DESCRIPTOR.services_by_name["IntegrationGatewayService"].full_name


def build(config: MeshConfig, redis: AnyRedis) -> ProcessApp:
    discovery = Discovery(config.registry.address, config.client_tls, service_token(config.auth))
    gateway = Gateway(config.gateway, redis, discovery)
    servicer = GatewayServicer(gateway)
    return ProcessApp(
        [
            ServiceDef(
                SERVICE_NAME,
                lambda server: gateway_pb2_grpc.add_IntegrationGatewayServiceServicer_to_server(
                    servicer, server
                ),
            )
        ],
        background=[gateway],
    )
