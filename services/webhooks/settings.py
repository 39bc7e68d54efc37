"""The `[webhooks]` section: the intake port, providers and the worker."""

from __future__ import annotations

from services.core.settings_base import GrpcServerConfig


class WebhooksConfig(GrpcServerConfig):
    """`[webhooks]` in the TOML file; server settings are inherited."""
