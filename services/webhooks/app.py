"""The webhook intake process: the gRPC service, the event workers and the live feed."""

from __future__ import annotations

from services.core.autopipeline import batching
from services.core.config import MeshConfig, service_token
from services.core.redis_client import AnyRedis
from services.core.runner import Background, ProcessApp
from services.core.server import ServiceDef
from services.webhooks.embedded import EmbeddedShim, LocalBackend
from services.webhooks.feed import Feed, NormalizedStream
from services.webhooks.history import History, HistoryWriter
from services.webhooks.intake import Intake
from services.webhooks.providers import load_providers
from services.webhooks.queue_gauges import QueueGauges
from services.webhooks.servicer import WebhookIntakeServicer
from services.webhooks.worker import EventProcessor, EventWorkers, RouterPublisher
from wedsync.webhooks.v1 import webhooks_pb2, webhooks_pb2_grpc

SERVICE_NAME = webhooks_pb2.DESCRIPTOR.services_by_name["WebhookIntakeService"].full_name


def build(config: MeshConfig, redis: AnyRedis) -> ProcessApp:
    cfg = config.webhooks
    # Intake's enqueue and history scripts, and the worker's finish scripts, from concurrent
    # webhooks share pipelines (other commands pass straight through).
    scripts = batching(redis)
    providers = load_providers(cfg.providers, scripts)
    history = History(scripts, cfg.history_retention_s)
    longest_dedup = max((p.dedup_window_s for p in cfg.providers.values()), default=0.0)
    stream = NormalizedStream(
        scripts,
        cfg.normalized_retention_s,
        max(longest_dedup, cfg.normalized_retention_s),
        cfg.history_retention_s,
    )
    feed = Feed(stream)
    router = None
    if cfg.router_address:
        router = RouterPublisher(
            cfg.router_address,
            cfg.router_timeout_s,
            tls=config.client_tls,
            token=service_token(config.auth),
        )
    workers = EventWorkers(cfg, providers, EventProcessor(history, stream, router))
    writer = HistoryWriter(history)
    intake = Intake(providers, history, writer)
    servicer = WebhookIntakeServicer(intake, history, feed, cfg.subscriber_buffer)
    background: list[Background] = [writer, feed, workers, QueueGauges(providers, cfg.stats_refresh_s)]
    if cfg.http_port:
        background.append(EmbeddedShim(config.shim, LocalBackend(intake, redis), cfg.host, cfg.http_port))
    return ProcessApp(
        [
            ServiceDef(
                SERVICE_NAME,
                lambda server: webhooks_pb2_grpc.add_WebhookIntakeServiceServicer_to_server(servicer, server),
            )
        ],
        background=background,
    )
