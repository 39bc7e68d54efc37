"""The `[registry]` section: the registry/router port, leases, health checks and routes.

Defaults are module constants so the docs, the SDK and the tests quote one value.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator

from services.core.settings_base import GrpcServerConfig, Section

DEFAULT_LEASE_TTL_S = 10.0
DEFAULT_HEALTH_INTERVAL_S = 5.0
DEFAULT_DELIVER_TIMEOUT_S = 5.0
DEFAULT_MAX_RETRIES = 3
DEFAULT_MAX_TARGET_SERVICES = 1000
DEFAULT_TARGET_IDLE_S = 300.0

PriorityName = Literal["HIGH", "NORMAL", "LOW"]
PositiveSeconds = Annotated[float, Field(gt=0, le=3600)]
_PATTERN = re.compile(r"[A-Za-z0-9_.\-*]{1,200}")  # fullmatch: "$" would take a trailing newline


class RouteTarget(Section):
    """One subscriber of a route: the service, the priority and retries of its messages."""

    # A service name as Register accepts it (validation.NAME_RE), so Publish never queues for a
    # name the router itself would refuse.
    service: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")
    priority: PriorityName = "NORMAL"
    max_retries: Annotated[int, Field(ge=0, le=100)] = DEFAULT_MAX_RETRIES


class Route(Section):
    """`[[registry.routes]]`: event types matching ``pattern`` go to every target.

    Patterns are globs on the dotted type: ``*`` matches any run of characters
    (``wedding.*`` matches ``wedding.created`` and ``wedding.guest.added``); a plain string
    matches only itself.
    """

    pattern: str
    targets: list[RouteTarget] = Field(min_length=1)

    @field_validator("pattern")
    @classmethod
    def _check_pattern(cls, value: str) -> str:
        if not _PATTERN.fullmatch(value):
            raise ValueError("use letters, digits, '.', '_', '-' and '*' (1-200 characters)")
        return value


DEFAULT_ROUTES = [
    Route(
        pattern="wedding.*",
        targets=[
            RouteTarget(service="notification-service", priority="NORMAL", max_retries=3),
            RouteTarget(service="analytics-service", priority="LOW", max_retries=1),
        ],
    )
]


class RegistryConfig(GrpcServerConfig):
    """`[registry]` in the TOML file; server settings are inherited."""

    lease_ttl_s: PositiveSeconds = Field(DEFAULT_LEASE_TTL_S, description="lease granted by default")
    min_lease_ttl_s: PositiveSeconds = Field(0.5, description="requested ttls are clamped to this")
    max_lease_ttl_s: PositiveSeconds = Field(300.0, description="... and to this")
    health_interval_s: PositiveSeconds = Field(
        DEFAULT_HEALTH_INTERVAL_S, description="how often every instance is probed (grpc.health.v1 Check)"
    )
    health_timeout_s: PositiveSeconds = Field(1.0, description="a Check slower than this fails")
    health_service: str = Field("", description="service name sent in Check ('' = the whole server)")
    reap_interval_s: PositiveSeconds = Field(1.0, description="how often expired leases are removed")
    deliver_timeout_s: PositiveSeconds = Field(
        DEFAULT_DELIVER_TIMEOUT_S, description="deadline of one MessageSink.Deliver"
    )
    default_max_retries: Annotated[int, Field(ge=0, le=100)] = DEFAULT_MAX_RETRIES
    retry_initial_backoff_s: Annotated[float, Field(ge=0, le=3600)] = 1.0
    retry_max_backoff_s: Annotated[float, Field(ge=0, le=3600)] = 60.0
    max_in_flight: Annotated[int, Field(ge=1, le=10_000)] = Field(
        256, description="concurrent deliveries per target service and router replica"
    )
    queue_lease_s: PositiveSeconds = Field(
        15.0, description="a dead router's claimed messages are reclaimed after this"
    )
    max_queue_depth: Annotated[int, Field(ge=0)] = Field(
        0,
        description="Send/Publish answer RESOURCE_EXHAUSTED when a target's queue already has this many"
        " waiting (ready + delayed + retrying, not in flight; 0 = no limit)",
    )
    view_refresh_s: PositiveSeconds = Field(
        1.0, description="router re-reads instance health at least this often"
    )
    max_target_services: Annotated[int, Field(ge=1, le=1_000_000)] = Field(
        DEFAULT_MAX_TARGET_SERVICES,
        description="services that may hold a router queue at once; a Send/Publish that would give one"
        " more a queue answers RESOURCE_EXHAUSTED, unless the service has a live instance or a route",
    )
    target_idle_s: Annotated[float, Field(gt=0, le=86_400)] = Field(
        DEFAULT_TARGET_IDLE_S,
        description="a service whose queue is empty (no dead letters either) and that has no live"
        " instance for this long loses its queue's Worker, gauges and place under max_target_services",
    )
    routes: list[Route] = Field(default_factory=lambda: list(DEFAULT_ROUTES))
