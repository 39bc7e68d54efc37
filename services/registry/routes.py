"""The routes table: which services receive a published event type, how urgently.

Patterns are globs on the dotted event type (``*`` matches any run of characters,
including dots). Every route whose pattern matches contributes its targets; a service
named by several matching routes gets one message, with the settings of the first route
that names it (routes are tried in config order).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass

from services.registry.settings import PriorityName, Route


@dataclass(frozen=True)
class Target:
    service: str
    priority: PriorityName
    max_retries: int


class RoutesTable:
    """Compiled routes; :meth:`targets` answers in config order, one entry per service."""

    def __init__(self, routes: Sequence[Route]) -> None:
        self._compiled = [
            (
                re.compile(fnmatch.translate(r.pattern)),
                [Target(t.service, t.priority, t.max_retries) for t in r.targets],
            )
            for r in routes
        ]

    def targets(self, event_type: str) -> list[Target]:
        seen: set[str] = set()
        out: list[Target] = []
        for pattern, targets in self._compiled:
            if not pattern.match(event_type):
                continue
            for target in targets:
                if target.service not in seen:
                    seen.add(target.service)
                    out.append(target)
        return out

    @property
    def services(self) -> list[str]:
        """Every service some route targets (their queues are served from start-up)."""
        return sorted({t.service for _, targets in self._compiled for t in targets})
