"""Prometheus metrics shared by every process, and the per-process metrics endpoint."""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import Counter, Histogram, start_http_server
from prometheus_client.metrics import MetricWrapperBase


@functools.lru_cache(maxsize=4096)
def child(metric: MetricWrapperBase, *values: str) -> Any:
    """``metric.labels(*values)``, remembered: labels() validates and locks on every call
    (about 4 µs), a hot path's handful of label sets need it once. Only for bounded label
    values (configured provider ids, status codes), never for anything a caller chooses."""
    return metric.labels(*values)


GRPC_REQUESTS = Counter(
    "wedmesh_grpc_requests_total",
    "gRPC calls served, by method and status code",
    ["service", "method", "code"],
)
GRPC_LATENCY = Histogram(
    "wedmesh_grpc_request_duration_seconds",
    "Time to answer a gRPC call (streams: until the stream ends)",
    ["service", "method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
HTTP_REQUESTS = Counter(
    "wedmesh_http_requests_total",
    "HTTP requests served by the intake shim, by route and status",
    ["route", "status"],
)


@dataclass
class MetricsEndpoint:
    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve_metrics(port: int, host: str = "127.0.0.1") -> MetricsEndpoint | None:
    """Serve ``/metrics`` on ``host:port`` in a thread; ``port=0`` turns it off."""
    if not port:
        return None
    server, thread = start_http_server(port, addr=host)
    return MetricsEndpoint(server, thread)
