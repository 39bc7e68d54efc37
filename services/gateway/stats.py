"""Rolling call statistics of one upstream: error rate, latency percentiles, streaks.

Kept per gateway replica over the last ``window_s`` (one entry per attempt, bounded), from
which :mod:`services.gateway.health` derives HEALTHY / DEGRADED / DOWN.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

MAX_SAMPLES = 20_000
EWMA_ALPHA = 0.2


@dataclass
class Sample:
    at: float  # monotonic
    ok: bool
    latency: float


@dataclass
class RollingStats:
    """Attempts in the window plus the streak and last success/failure."""

    window_s: float
    samples: deque[Sample] = field(default_factory=lambda: deque(maxlen=MAX_SAMPLES))
    consecutive_failures: int = 0
    last_success: float | None = None  # epoch seconds
    last_failure: float | None = None
    last_error: str = ""
    latency_ewma: float = 0.0

    def record(self, ok: bool, latency: float, error: str = "") -> None:
        self.samples.append(Sample(time.monotonic(), ok, latency))
        self.latency_ewma = (
            latency
            if not self.latency_ewma
            else (EWMA_ALPHA * latency + (1 - EWMA_ALPHA) * self.latency_ewma)
        )
        if ok:
            self.consecutive_failures = 0
            self.last_success = time.time()
        else:
            self.consecutive_failures += 1
            self.last_failure = time.time()
            self.last_error = error

    def _prune(self) -> None:
        horizon = time.monotonic() - self.window_s
        while self.samples and self.samples[0].at < horizon:
            self.samples.popleft()

    def count(self) -> int:
        self._prune()
        return len(self.samples)

    def error_rate(self) -> float:
        self._prune()
        if not self.samples:
            return 0.0
        return sum(1 for s in self.samples if not s.ok) / len(self.samples)

    def percentiles(self, *qs: float) -> list[float]:
        """Latency quantiles (nearest rank) over the window; zeros when empty."""
        self._prune()
        values = sorted(s.latency for s in self.samples)
        if not values:
            return [0.0 for _ in qs]
        return [values[min(len(values) - 1, max(0, round(q * len(values) + 0.5) - 1))] for q in qs]
