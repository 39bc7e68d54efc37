"""An upstream's instances and the choice between them: least outstanding requests.

Each instance (one base URL) has its own circuit breaker, in-flight count and stats. A
pick takes the instances whose breaker lets a call through, not already tried in this
request, and returns the one with the fewest requests in flight from this replica
(random among ties, so load spreads when idle).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection
from dataclasses import dataclass

from services.core.breaker import Breaker, State
from services.gateway.settings import BreakerConfig
from services.gateway.stats import RollingStats


@dataclass
class Instance:
    """One base URL of an upstream."""

    url: str
    breaker: Breaker
    stats: RollingStats
    outstanding: int = 0


def make_instances(
    service_id: str,
    urls: list[str],
    breaker: BreakerConfig,
    window_s: float,
    is_failure: Callable[[BaseException], bool],
    on_transition: Callable[[str, State, State], None],
) -> list[Instance]:
    def hook(url: str) -> Callable[[State, State], None]:
        return lambda old, new: on_transition(url, old, new)

    out = []
    for url in urls:
        b = Breaker(
            f"{service_id}@{url}",
            failure_threshold=breaker.failure_threshold,
            reset_timeout_s=breaker.reset_timeout_s,
            half_open_max_calls=breaker.half_open_max_calls,
            is_failure=is_failure,
            on_transition=hook(url),
        )
        out.append(Instance(url, b, RollingStats(window_s)))
    return out


def pick(instances: list[Instance], exclude: Collection[str] = ()) -> Instance | None:
    """The available instance with the fewest in-flight requests, or None."""
    if len(instances) == 1:  # the common case: no choice to make
        only = instances[0]
        return only if only.url not in exclude and only.breaker.available() else None
    candidates = [i for i in instances if i.url not in exclude and i.breaker.available()]
    if not candidates:
        return None
    least = min(i.outstanding for i in candidates)
    return random.choice([i for i in candidates if i.outstanding == least])
