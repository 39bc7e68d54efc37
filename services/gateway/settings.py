"""The `[gateway]` section: the gateway port and its upstreams."""

from __future__ import annotations

from services.core.settings_base import GrpcServerConfig


class GatewayConfig(GrpcServerConfig):
    """`[gateway]` in the TOML file; server settings are inherited."""
