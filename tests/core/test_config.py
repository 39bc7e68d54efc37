"""Configuration: the file, environment overrides, flags, secrets, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.core.config import (
    EXAMPLE_CONFIG,
    ConfigError,
    config_path,
    env_secret,
    load_config,
    with_overrides,
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "wedmesh.toml"
    path.write_text(text)
    return path


def test_example_config_loads_with_the_documented_ports() -> None:
    """The committed example is valid and carries the ports the README promises."""
    config = load_config(EXAMPLE_CONFIG, environ={})
    assert (config.registry.port, config.gateway.port, config.webhooks.port) == (50051, 50052, 50053)
    assert config.shim.port == 8080
    assert config.redis.url is None


def test_without_wedmesh_config_the_example_is_used() -> None:
    """No WEDMESH_CONFIG means the committed example file."""
    assert config_path({}) == EXAMPLE_CONFIG
    assert config_path({"WEDMESH_CONFIG": "/etc/x.toml"}) == Path("/etc/x.toml")


def test_environment_overrides_nested_keys_and_redis_url(tmp_path: Path) -> None:
    """WEDMESH_SECTION__KEY and REDIS_URL override the file."""
    path = write(tmp_path, "[gateway]\nport = 6000\n")
    config = load_config(path, environ={"WEDMESH_GATEWAY__PORT": "6001", "REDIS_URL": "redis://h:1/0"})
    assert config.gateway.port == 6001
    assert config.redis.url == "redis://h:1/0"


def test_flags_override_environment(tmp_path: Path) -> None:
    """Command-line overrides win over the environment."""
    config = load_config(write(tmp_path, ""), environ={"WEDMESH_SHIM__PORT": "9000"})
    assert with_overrides(config, {"shim.port": 9001}).shim.port == 9001


def test_invalid_value_names_the_key_and_the_reason(tmp_path: Path) -> None:
    """An out-of-range port fails at start, naming gateway.port and why."""
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, "[gateway]\nport = 70000\n"), environ={})
    assert "gateway.port" in str(err.value)
    assert "less than or equal to 65535" in str(err.value)


def test_unknown_key_is_refused_by_name(tmp_path: Path) -> None:
    """A misspelt key is an error, not silently ignored."""
    with pytest.raises(ConfigError, match=r"shim\.max_body_byte: unknown key"):
        load_config(write(tmp_path, "[shim]\nmax_body_byte = 5\n"), environ={})


def test_unknown_key_from_the_environment_is_refused(tmp_path: Path) -> None:
    """A misspelt environment override is as loud as a misspelt file key."""
    with pytest.raises(ConfigError, match=r"gateway\.prot"):
        load_config(write(tmp_path, ""), environ={"WEDMESH_GATEWAY__PROT": "1"})


def test_toml_syntax_error_says_where(tmp_path: Path) -> None:
    """Broken TOML names the file and the line."""
    with pytest.raises(ConfigError, match=r"not valid TOML.*line 2"):
        load_config(write(tmp_path, "[gateway]\nport = = 1\n"), environ={})


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    """A WEDMESH_CONFIG that points nowhere says so."""
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", environ={})


def test_invalid_redis_url_value_is_not_echoed(tmp_path: Path) -> None:
    """A URL may hold a password, so a bad one is reported without its value."""
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, '[redis]\nurl = ["redis://:hunter2@h"]\n'), environ={})
    assert "redis.url" in str(err.value)
    assert "hunter2" not in str(err.value)


def test_env_secret_is_masked_and_absent_when_unset() -> None:
    """Secrets come from the environment and never print."""
    secret = env_secret("STRIPE_SECRET_KEY", {"STRIPE_SECRET_KEY": "sk_test_123"})
    assert secret is not None
    assert secret.get_secret_value() == "sk_test_123"
    assert "sk_test_123" not in repr(secret) and "sk_test_123" not in str(secret)
    assert env_secret("STRIPE_SECRET_KEY", {}) is None
    assert env_secret("STRIPE_SECRET_KEY", {"STRIPE_SECRET_KEY": ""}) is None


def test_tables_and_url_like_values_are_never_echoed(tmp_path: Path) -> None:
    """A whole table or a credential-bearing string in the wrong place is not printed back."""
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, '[logging]\nlevel = "redis://:hunter2@h:6379/0"\n'), environ={})
    assert "logging.level" in str(err.value) and "hunter2" not in str(err.value)
    with pytest.raises(ConfigError) as err2:
        load_config(write(tmp_path, 'redis = "redis://:hunter2@h"\n'), environ={})
    assert "hunter2" not in str(err2.value)
