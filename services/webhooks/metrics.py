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
    "Webhook deliveries refused, by provider and reason (gRPC code, or QUEUE_FULL: the provider's "
    "backlog is at max_queue_depth)",
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
BACKLOG = Gauge(
    "wedmesh_webhooks_backlog",
    "Events accepted and waiting for a worker (what max_queue_depth limits), by provider",
    ["provider"],
)
IN_FLIGHT = Gauge("wedmesh_webhooks_in_flight", "Events a worker holds right now, by provider", ["provider"])
DEAD_LETTERS = Gauge(
    "wedmesh_webhooks_dead_letters", "Events in the dead-letter stream, by provider", ["provider"]
)
OLDEST_AGE = Gauge(
    "wedmesh_webhooks_oldest_age_seconds",
    "Age of the oldest entry in the provider's streams, waiting or in flight (0 when empty); "
    "retries waiting out their backoff are not counted",
    ["provider"],
)
