"""Typed configuration: one TOML file plus environment overrides.

Precedence, lowest first: the model defaults, the TOML file (``WEDMESH_CONFIG``, else
the committed ``wedmesh.example.toml``), environment overrides, then command-line flags
(applied by the CLI through :func:`with_overrides`).

Environment overrides name a key path with ``__`` between levels, after ``WEDMESH_``:
``WEDMESH_GATEWAY__PORT=50062`` sets ``gateway.port``. ``REDIS_URL`` sets ``redis.url``.

Secrets never live in the file: a config field holds the *name* of an environment
variable and :func:`env_secret` reads it into a :class:`pydantic.SecretStr`, whose repr
is masked, so a secret cannot leak through a log line or an error message.

An invalid file fails at start with :class:`ConfigError`, naming the key and the reason.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError

from services.core.auth import Authenticator
from services.core.settings_base import (
    ClientTls,
    ConfigError,
    GrpcServerConfig,
    Host,
    Port,
    Seconds,
    Section,
    ServerTls,
)
from services.gateway.settings import GatewayConfig
from services.registry.settings import RegistryConfig
from services.webhooks.settings import WebhooksConfig

ENV_PREFIX = "WEDMESH_"
ENV_CONFIG_FILE = "WEDMESH_CONFIG"
ENV_REDIS_URL = "REDIS_URL"
EXAMPLE_CONFIG = Path(__file__).resolve().parents[2] / "wedmesh.example.toml"


class RedisConfig(Section):
    """Where the shared Redis is. With no ``url``, ``wedmesh up`` starts a private one."""

    url: str | None = Field(default=None, description="redis://, rediss:// or a cluster URL")
    cluster: bool = Field(default=False, description="connect with the Redis Cluster client")
    local_port: Port = Field(default=6380, description="port of the private Redis of `up`")
    local_data_dir: str = Field(default=".wedmesh/redis", description="its AOF folder")
    local_appendfsync: Literal["always", "everysec", "no"] = "everysec"
    socket_timeout_s: Seconds = 5.0


class ShimConfig(Section):
    """The HTTP intake shim: providers POST webhooks here."""

    host: Host = "127.0.0.1"
    port: Port = 8080
    intake_address: str = Field(default="127.0.0.1:50053", description="webhooks gRPC address")
    max_body_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 1024 * 1024
    intake_timeout_s: Annotated[float, Field(gt=0, le=60)] = 5.0
    body_timeout_s: Annotated[float, Field(gt=0, le=300)] = Field(
        default=10.0, description="a body not fully received by then is cut off (408): slow clients"
    )
    header_timeout_s: Annotated[float, Field(gt=0, le=300)] = Field(
        default=10.0,
        description="a request head not fully received by then is cut off (408, or a plain close when "
        "nothing was sent): slowloris and idle connections",
    )
    max_in_flight: Annotated[int, Field(ge=1, le=1_000_000)] = Field(
        default=1024,
        description="webhooks being read or handed to intake at once; more wait their turn (in order) "
        "up to admission_wait_s, then get 503 + Retry-After",
    )
    admission_wait_s: Annotated[float, Field(gt=0, le=60)] = Field(
        default=5.0, description="how long a webhook may wait for one of the max_in_flight slots"
    )
    max_connections: Annotated[int, Field(ge=16, le=1_000_000)] = Field(
        default=16384,
        description="open HTTP connections; past it a request is answered 503 with Retry-After (the "
        "process's open-file limit is raised to fit, up to the hard limit)",
    )
    tls: ServerTls | None = Field(default=None, description="HTTPS (and mutual TLS) for providers")


class ShutdownConfig(Section):
    """Graceful shutdown: NOT_SERVING, wait ``drain_delay_s``, then drain for ``grace_s``."""

    drain_delay_s: Seconds = 0.5
    grace_s: Seconds = 10.0


class AuthConfig(Section):
    """Caller credentials on every gRPC port (see services/core/auth.py)."""

    enabled: bool = False
    secrets_env: str = Field(
        default="WEDMESH_AUTH_SECRETS", description="env var: comma-separated HMAC secrets (first signs)"
    )
    token_env: str = Field(
        default="WEDMESH_SERVICE_TOKEN", description="env var: the token this process presents to others"
    )
    leeway_s: Seconds = 30.0


class LoggingConfig(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_format: bool = Field(default=True, alias="json")


class MeshConfig(Section):
    """The whole mesh configuration; every process reads the same file."""

    redis: RedisConfig = RedisConfig()
    registry: RegistryConfig = RegistryConfig(port=50051, metrics_port=9101)
    gateway: GatewayConfig = GatewayConfig(port=50052, metrics_port=9102)
    webhooks: WebhooksConfig = WebhooksConfig(port=50053, metrics_port=9103)
    shim: ShimConfig = ShimConfig()
    client_tls: ClientTls | None = Field(
        default=None, description="TLS for calls between mesh processes (unset: plaintext)"
    )
    shutdown: ShutdownConfig = ShutdownConfig()
    auth: AuthConfig = AuthConfig()
    logging: LoggingConfig = LoggingConfig()

    def grpc_server(self, service: str) -> GrpcServerConfig:
        section = getattr(self, service, None)
        if not isinstance(section, GrpcServerConfig):
            raise ConfigError(f"{service!r} is not a gRPC service (registry, gateway, webhooks)")
        return section


def env_secret(variable: str, environ: Mapping[str, str] | None = None) -> SecretStr | None:
    """Read a secret from the environment variable named in config; None when unset/empty."""
    value = (os.environ if environ is None else environ).get(variable, "")
    return SecretStr(value) if value else None


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    """The file to load: ``WEDMESH_CONFIG`` if set, else the committed example."""
    env = os.environ if environ is None else environ
    return Path(env[ENV_CONFIG_FILE]) if env.get(ENV_CONFIG_FILE) else EXAMPLE_CONFIG


def load_config(path: Path | str | None = None, environ: Mapping[str, str] | None = None) -> MeshConfig:
    """Load the file, apply environment overrides, validate; raise ConfigError if unusable."""
    env = os.environ if environ is None else environ
    file = Path(path) if path is not None else config_path(env)
    if path is None and file == EXAMPLE_CONFIG and not file.exists():
        # Installed from a wheel, away from the repository: the built-in defaults (which
        # match the example) plus the environment.
        return _validate(_apply_env({}, env), source="defaults and environment")
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {file} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {file} is not valid TOML: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {file} cannot be read: {exc}") from exc
    return _validate(_apply_env(raw, env), source=str(file))


def with_overrides(config: MeshConfig, overrides: Mapping[str, Any]) -> MeshConfig:
    """Apply dotted-key overrides (``{"gateway.port": 1}``), e.g. from CLI flags."""
    data = config.model_dump(by_alias=True)
    for dotted, value in overrides.items():
        _set_path(data, dotted.split("."), value)
    return _validate(data, source="command-line flags")


def _apply_env(raw: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    data = dict(raw)
    if env.get(ENV_REDIS_URL):
        _set_path(data, ["redis", "url"], env[ENV_REDIS_URL])
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_CONFIG_FILE:
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX) :].split("__") if p]
        if len(path) < 2:
            continue  # not a key path (e.g. WEDMESH_HOME); ignore rather than guess
        _set_path(data, path, _env_value(value))
    return data


def _env_value(value: str) -> Any:
    """JSON for lists and tables (``[...]``/``{...}``), the plain string otherwise."""
    if value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _set_path(data: dict[str, Any], path: list[str], value: Any) -> None:
    node = data
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[path[-1]] = value


def _validate(data: dict[str, Any], *, source: str) -> MeshConfig:
    try:
        return MeshConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            reason = "unknown key (check the spelling)" if err["type"] == "extra_forbidden" else err["msg"]
            hidden = err["type"] in ("missing", "extra_forbidden") or not _safe_to_echo(where, err["input"])
            shown = "" if hidden else f" (got {err['input']!r})"
            problems.append(f"{where}: {reason}{shown}")
        raise ConfigError(f"invalid configuration from {source}: " + "; ".join(problems)) from None


def _safe_to_echo(where: str, value: Any) -> bool:
    """Echo only short scalars that cannot carry a credential (a URL can hold a password)."""
    if any(word in where for word in ("url", "secret", "password", "token", "key")):
        return False
    if isinstance(value, bool | int | float):
        return True
    return isinstance(value, str) and len(value) <= 64 and "://" not in value and "@" not in value


def build_authenticator(config: AuthConfig, environ: Mapping[str, str] | None = None) -> Authenticator | None:
    """The verifier for incoming calls; None when auth is off. Fails start without secrets."""
    if not config.enabled:
        return None
    secret = env_secret(config.secrets_env, environ)
    if secret is None:
        raise ConfigError(
            f"auth.enabled is true but ${config.secrets_env} (auth.secrets_env) is unset or empty"
        )
    secrets = [s.strip().encode() for s in secret.get_secret_value().split(",") if s.strip()]
    return Authenticator(secrets, leeway_s=config.leeway_s)


def service_token(config: AuthConfig, environ: Mapping[str, str] | None = None) -> SecretStr | None:
    """The token this process presents to other mesh processes (None when auth is off)."""
    return env_secret(config.token_env, environ) if config.enabled else None
