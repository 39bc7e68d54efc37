"""Prometheus metrics of the gateway (breaker transitions are counted in core.breaker)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

ATTEMPTS = Counter(
    "wedmesh_gateway_upstream_attempts_total",
    "HTTP attempts to upstreams, by outcome",
    ["service_id", "outcome"],
)
RETRIES = Counter(
    "wedmesh_gateway_retries_total", "Retries, by upstream and reason", ["service_id", "reason"]
)
RATE_LIMITED = Counter("wedmesh_gateway_rate_limited_total", "Calls refused by a rate limit", ["service_id"])
LATENCY = Histogram(
    "wedmesh_gateway_upstream_latency_seconds",
    "Latency of one HTTP attempt to an upstream",
    ["service_id"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
