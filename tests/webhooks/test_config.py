"""The `[webhooks]` configuration: the example block validates; bad provider settings fail clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.core.config import EXAMPLE_CONFIG, ConfigError, load_config


def test_example_config_has_the_three_providers() -> None:
    """The committed wedmesh.example.toml loads, with the spec's three providers."""
    config = load_config(EXAMPLE_CONFIG, environ={})
    providers = config.webhooks.providers
    assert sorted(providers) == ["email_provider", "stripe", "supplier_platform"]
    assert providers["stripe"].header == "stripe-signature"
    assert providers["supplier_platform"].header == "x-supplier-signature"
    assert providers["email_provider"].id_path == "header:webhook-id"
    assert "charge.refunded" in providers["stripe"].event_types
    assert providers["stripe"].timestamp_tolerance_s == 300


@pytest.mark.parametrize(
    ("block", "needle"),
    [
        ('[webhooks.providers."bad id"]\nscheme = "stripe"\nsecrets_env = "X"\n', "provider ids"),
        ('[webhooks.providers.p]\nscheme = "md5"\nsecrets_env = "X"\n', "scheme"),
        ('[webhooks.providers.p]\nscheme = "stripe"\nsecrets_env = "not a var"\n', "secrets_env"),
        ('[webhooks.providers.p]\nscheme = "stripe"\nsecrets_env = "X"\nsecret = "inline"\n', "secret"),
    ],
)
def test_invalid_provider_settings_fail_at_start(tmp_path: Path, block: str, needle: str) -> None:
    """An unusable provider table fails to load with an error naming the problem."""
    path = tmp_path / "mesh.toml"
    path.write_text(EXAMPLE_CONFIG.read_text() + "\n" + block)
    with pytest.raises(ConfigError, match=needle):
        load_config(path, environ={})
