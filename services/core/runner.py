"""Run one gRPC service process until SIGTERM/SIGINT, then shut it down gracefully."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable

from services.core.config import MeshConfig
from services.core.metrics import serve_metrics
from services.core.redis_client import AnyRedis, connect
from services.core.server import ServiceDef, ServiceHost, install_signal_handlers

log = logging.getLogger("wedmesh.runner")

# process name -> module whose ``service_defs(config, redis)`` says what it hosts
GRPC_PROCESSES = {
    "registry": "services.registry.app",
    "gateway": "services.gateway.app",
    "webhooks": "services.webhooks.app",
}


def defs_factory(process: str) -> Callable[[MeshConfig, AnyRedis], list[ServiceDef]]:
    module = importlib.import_module(GRPC_PROCESSES[process])
    factory: Callable[[MeshConfig, AnyRedis], list[ServiceDef]] = module.service_defs
    return factory


async def run_grpc_process(process: str, config: MeshConfig) -> None:
    """Start ``process`` (registry, gateway or webhooks) and serve until told to stop."""
    server_config = config.grpc_server(process)
    redis = connect(config.redis)
    host = ServiceHost(defs_factory(process)(config, redis), server_config, config.shutdown, redis=redis)
    metrics = serve_metrics(server_config.metrics_port, server_config.host)
    try:
        await host.start()
        install_signal_handlers(host.request_stop)
        await host.wait_stopped()
    finally:
        if metrics:
            metrics.close()
        await redis.aclose()
