"""The `[gateway]` config section: the example block validates; mistakes are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.core.config import ConfigError, load_config
from services.gateway.auth import token_endpoint

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def example() -> Path:
    return ROOT / "wedmesh.example.toml"


def test_example_block_validates_with_the_three_upstreams(example: Path) -> None:
    """The committed example config loads with the spec's three upstreams."""
    config = load_config(example, environ={})
    ups = config.gateway.upstreams
    assert sorted(ups) == ["email_service", "stripe_payments", "supplier_directory"]
    stripe, email, supplier = ups["stripe_payments"], ups["email_service"], ups["supplier_directory"]
    assert (stripe.rate_limit.requests, stripe.timeout_s, stripe.retry.attempts, stripe.retry.backoff_s) == (
        100,
        30.0,
        3,
        1.0,
    )
    assert (email.rate_limit.requests, email.timeout_s, email.retry.attempts, email.retry.backoff_s) == (
        200,
        15.0,
        2,
        2.0,
    )
    assert (supplier.rate_limit.requests, supplier.timeout_s, supplier.retry.attempts) == (50, 20.0, 3)
    assert supplier.retry.backoff_s == 1.5
    assert stripe.auth.token_env == "STRIPE_SECRET_KEY"
    assert email.auth.api_key_env == "EMAIL_API_KEY"
    assert (supplier.auth.client_id_env, supplier.auth.client_secret_env) == (
        "SUPPLIER_CLIENT_ID",
        "SUPPLIER_CLIENT_SECRET",
    )


def test_instances_from_environment_with_default(example: Path) -> None:
    """STRIPE_API_URL overrides the default api.stripe.com; unset URLs leave a service with no instances."""
    ups = load_config(example, environ={}).gateway.upstreams
    assert ups["stripe_payments"].resolved_instances({}) == ["https://api.stripe.com"]
    env = {"STRIPE_API_URL": "http://127.0.0.1:9999/", "SUPPLIER_API_URL": "http://a:1, http://b:2"}
    assert ups["stripe_payments"].resolved_instances(env) == ["http://127.0.0.1:9999"]
    assert ups["supplier_directory"].resolved_instances(env) == ["http://a:1", "http://b:2"]
    assert ups["email_service"].resolved_instances(env) == []


def test_token_url_defaults_to_api_oauth_token(example: Path) -> None:
    """The supplier token URL is SUPPLIER_TOKEN_URL when set, else the API URL + /oauth/token."""
    auth = load_config(example, environ={}).gateway.upstreams["supplier_directory"].auth
    assert token_endpoint(auth, "http://sup:1", {}) == "http://sup:1/oauth/token"
    assert (
        token_endpoint(auth, "http://sup:1", {"SUPPLIER_TOKEN_URL": "http://idp/token"}) == "http://idp/token"
    )


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        ('[gateway.upstreams.Bad]\nbase_urls = ["http://x"]\n', "upstreams"),
        ('[gateway.upstreams.x]\nbase_urls = ["ftp://x"]\n', "gateway.upstreams.x.base_urls"),
        ('[gateway.upstreams.x]\nbase_urls = ["https://u:pw@x"]\n', "user:password"),
        ('[gateway.upstreams.x]\nauth = { type = "bearer" }\n', "token_env"),
        ('[gateway.upstreams.x]\nauth = { type = "basic", username_env = "U" }\n', "password_env"),
        ("[gateway.upstreams.x]\nretry = { attempts = 0 }\n", "gateway.upstreams.x.retry.attempts"),
        ('[gateway.upstreams.x]\nnormalizer = "paypal"\n', "gateway.upstreams.x.normalizer"),
        ("[gateway.upstreams.x]\ntimout_s = 3\n", "gateway.upstreams.x.timout_s"),
        ('[gateway.upstreams.x]\nregistry_service = "s"\nbase_urls = ["http://x"]\n', "not both"),
    ],
)
def test_invalid_upstream_config_names_the_key(tmp_path: Path, block: str, expected: str) -> None:
    """A mistake in an upstream table fails at load, naming the key."""
    path = tmp_path / "bad.toml"
    path.write_text((ROOT / "wedmesh.example.toml").read_text() + "\n" + block)
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    assert expected in str(err.value)
