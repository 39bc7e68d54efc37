"""The webhook intake process: what it hosts on its gRPC port."""

from __future__ import annotations

from services.core.config import MeshConfig
from services.core.redis_client import AnyRedis
from services.core.runner import ProcessApp
from services.core.server import ServiceDef
from services.core.unimplemented import unimplemented_servicer
from wedsync.webhooks.v1 import webhooks_pb2, webhooks_pb2_grpc

SERVICE_NAME = webhooks_pb2.DESCRIPTOR.services_by_name["WebhookIntakeService"].full_name


def build(config: MeshConfig, redis: AnyRedis) -> ProcessApp:
    servicer = unimplemented_servicer(
        webhooks_pb2_grpc.WebhookIntakeServiceServicer,
        SERVICE_NAME,
        "the webhook intake issue (#4)",
    )
    return ProcessApp(
        [
            ServiceDef(
                SERVICE_NAME,
                lambda server: webhooks_pb2_grpc.add_WebhookIntakeServiceServicer_to_server(servicer, server),
            )
        ]
    )
