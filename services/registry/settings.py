"""The `[registry]` section: the registry/router port, leases, health checks and routes."""

from __future__ import annotations

from services.core.settings_base import GrpcServerConfig


class RegistryConfig(GrpcServerConfig):
    """`[registry]` in the TOML file; server settings are inherited."""
