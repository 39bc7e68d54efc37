"""Prometheus metrics of the router (the same figures GetQueueStats answers)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

DELIVERIES = Counter(
    "wedmesh_router_deliveries_total",
    "MessageSink.Deliver outcomes, by target service",
    ["service", "outcome"],
)
DELIVERY_LATENCY = Histogram(
    "wedmesh_router_send_to_deliver_seconds",
    "Time from Send (created_at) to an accepted Deliver",
    ["service"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
QUEUE_DEPTH = Gauge("wedmesh_router_queue_depth", "Messages waiting", ["service", "priority"])
QUEUE_IN_FLIGHT = Gauge("wedmesh_router_queue_in_flight", "Messages being delivered", ["service", "priority"])
QUEUE_DELAYED = Gauge("wedmesh_router_queue_delayed", "Messages waiting for a retry", ["service", "priority"])
QUEUE_DEAD = Gauge("wedmesh_router_dead_letters", "Dead letters", ["service", "priority"])
QUEUE_OLDEST = Gauge(
    "wedmesh_router_queue_oldest_age_seconds", "Age of the oldest waiting message", ["service", "priority"]
)
