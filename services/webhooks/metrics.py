"""Prometheus metrics of webhook intake and its worker (ids only as labels: providers)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

INGESTED = Counter(
    "wedmesh_webhooks_ingested_total",
    "Webhook deliveries answered 200, by provider and outcome (accepted, duplicate, ignored)",
    ["provider", "outcome"],
)
REJECTED = Counter(
    "wedmesh_webhooks_rejected_total",
    "Webhook deliveries refused, by provider and reason (gRPC code)",
    ["provider", "code"],
)
INGEST_SECONDS = Histogram(
    "wedmesh_webhooks_ingest_seconds",
    "Time intake took from request to durable acknowledgement",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1),
)
PROCESSED = Counter(
    "wedmesh_webhooks_processed_total",
    "Webhook events the worker finished, by provider and result (processed, failed, dead)",
    ["provider", "result"],
)
SUBSCRIBERS = Gauge("wedmesh_webhooks_subscribers", "Open Subscribe streams")
SUBSCRIBERS_CUT = Counter(
    "wedmesh_webhooks_subscribers_cut_total", "Subscribe streams ended because the client fell behind"
)
