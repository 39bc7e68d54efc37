"""Configured providers at run time: prepared keys, their queue, and field extraction.

A provider whose secret variable is unset (or unusable) is still known — requests for it
answer UNAVAILABLE ("provider not configured", HTTP 503), so the provider keeps retrying
until an operator sets the secret, and its health name reports NOT_SERVING. Answering 404
would make some providers give up and disable the endpoint.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.core.config import env_secret
from services.core.queue import DurableQueue, RetryPolicy
from services.core.redis_client import AnyRedis
from services.webhooks.schemes import SCHEMES, Check, Verifier, prepare_keys
from services.webhooks.settings import ProviderConfig

log = logging.getLogger("wedmesh.webhooks")
HEADER_PREFIX = "header:"


def queue_name(provider_id: str) -> str:
    return f"webhooks:{provider_id}"


def health_name(provider_id: str) -> str:
    return f"wedsync.webhooks.v1.WebhookIntakeService/providers/{provider_id}"


def make_queue(client: AnyRedis, provider_id: str, config: ProviderConfig) -> DurableQueue:
    """The provider's durable queue: its retry policy, dedup window and dead-letter settings."""
    retry = config.retry
    return DurableQueue(
        client,
        queue_name(provider_id),
        policy=RetryPolicy(
            max_attempts=retry.max_attempts,
            initial_backoff=retry.initial_backoff_s,
            multiplier=retry.multiplier,
            max_backoff=retry.max_backoff_s,
        ),
        max_deliveries=config.dead_letters.max_deliveries,
        idempotency_ttl=config.dedup_window_s,
        dead_retention=config.dead_letters.retention_s,
    )


def lookup(path: str, headers: Mapping[str, str], document: Any) -> str | None:
    """Read a value by ``header:<name>``, a dotted path ``a.b.c`` or a pointer ``/a/b/c``."""
    if path.startswith(HEADER_PREFIX):
        return headers.get(path[len(HEADER_PREFIX) :].lower()) or None
    parts = path.strip("/").split("/") if path.startswith("/") else path.split(".")
    node = document
    for part in parts:
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    if isinstance(node, str):
        return node or None
    if isinstance(node, int) and not isinstance(node, bool):
        return str(node)
    return None


def body_hash(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


@dataclass
class Provider:
    """One provider, ready to verify and enqueue."""

    id: str
    config: ProviderConfig
    keys: list[bytes]
    queue: DurableQueue
    verifier: Verifier
    check: Check
    accepted: frozenset[str]
    problem: str | None = None
    """Why the provider cannot take webhooks (secret unset/invalid); None when it can."""


def load_providers(config: Mapping[str, ProviderConfig], client: AnyRedis) -> dict[str, Provider]:
    """Resolve every provider's secrets from the environment (never logged)."""
    providers: dict[str, Provider] = {}
    for provider_id, pc in config.items():
        secret = env_secret(pc.secrets_env)
        keys: list[bytes] = []
        problem = None
        if secret is None:
            problem = f"provider not configured: {pc.secrets_env} is unset"
        else:
            try:
                keys = prepare_keys(pc.scheme, secret.get_secret_value())
            except ValueError as exc:
                problem = f"provider not configured: {pc.secrets_env} is invalid ({exc})"
            if not keys and problem is None:
                problem = f"provider not configured: {pc.secrets_env} holds no secret"
        if problem:
            log.warning("webhook provider disabled", extra={"provider": provider_id, "reason": problem})
        providers[provider_id] = Provider(
            id=provider_id,
            config=pc,
            keys=keys,
            queue=make_queue(client, provider_id, pc),
            verifier=SCHEMES[pc.scheme],
            check=Check(header=pc.header, tolerance_s=pc.timestamp_tolerance_s),
            accepted=frozenset(pc.event_types),
            problem=problem,
        )
    return providers
