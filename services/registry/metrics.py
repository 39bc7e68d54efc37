"""Prometheus metrics of the router (the same figures GetQueueStats answers).

Every series carries a ``service`` label, so the series are kept for the services that hold
a router queue only: the gauges are written by the dispatcher's periodic sweep for the
members of the router's service set (never by a GetQueueStats for an arbitrary name), and
:func:`forget` removes every series of a service when it is retired. The number of series
is therefore bounded by ``max_target_services`` plus the services with live instances or
routes, times the (fixed) priorities and outcomes. A forgotten counter that comes back
starts again from zero, which Prometheus' ``rate``/``increase`` treat as a counter reset.
"""

from __future__ import annotations

import contextlib
from typing import Any

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
GAUGES = (QUEUE_DEPTH, QUEUE_IN_FLIGHT, QUEUE_DELAYED, QUEUE_DEAD, QUEUE_OLDEST)

# Children by labels, so the hot path skips ``labels()`` and forget() knows what exists.
_counters: dict[tuple[str, str], Any] = {}
_latencies: dict[str, Any] = {}
_gauged: dict[str, set[str]] = {}  # service -> priorities with gauge series


def count(service: str, outcome: str) -> None:
    child = _counters.get((service, outcome))
    if child is None:
        child = _counters[(service, outcome)] = DELIVERIES.labels(service, outcome)
    child.inc()


def observe_latency(service: str, seconds: float) -> None:
    child = _latencies.get(service)
    if child is None:
        child = _latencies[service] = DELIVERY_LATENCY.labels(service)
    child.observe(seconds)


def set_queue(
    service: str, priority: str, depth: int, in_flight: int, delayed: int, dead: int, oldest: float
) -> None:
    """One (service, priority) row of the queue gauges."""
    values = (depth, in_flight, delayed, dead, oldest)
    for gauge, value in zip(GAUGES, values, strict=True):
        gauge.labels(service, priority).set(value)
    _gauged.setdefault(service, set()).add(priority)


def services() -> set[str]:
    """Services that have any series in this process."""
    return {*_gauged, *_latencies, *(service for service, _ in _counters)}


def forget(service: str) -> None:
    """Remove every series of ``service`` (queue gauges, delivery counters and latency)."""
    for priority in _gauged.pop(service, ()):
        for gauge in GAUGES:
            with contextlib.suppress(KeyError):
                gauge.remove(service, priority)
    for key in [k for k in _counters if k[0] == service]:
        del _counters[key]
        with contextlib.suppress(KeyError):
            DELIVERIES.remove(*key)
    if _latencies.pop(service, None) is not None:
        with contextlib.suppress(KeyError):
            DELIVERY_LATENCY.remove(service)
