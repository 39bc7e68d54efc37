"""Property tests: hostile text never gets past config or key naming as anything but a clear error."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.core import keys
from services.core.config import EXAMPLE_CONFIG, ConfigError, MeshConfig, load_config

SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(st.text(max_size=300), st.lists(st.text(max_size=50), max_size=3))
def test_keys_are_built_or_refused_never_malformed(tag: str, parts: list[str]) -> None:
    """Any text gives a key with exactly one hash tag (the given one), or InvalidKeyPart."""
    try:
        built = keys.webhook_key(tag, *parts)
    except keys.InvalidKeyPart as exc:
        assert "cannot be used in a Redis key" in str(exc)
        return
    assert built.startswith("wm:wh:{")
    assert built.count("{") == 1 and built.count("}") == 1
    assert built[built.index("{") + 1 : built.index("}")] == tag
    assert not any(c.isspace() for c in built)


ENV_KEYS = st.sampled_from(
    [
        "WEDMESH_GATEWAY__PORT",
        "WEDMESH_SHIM__MAX_BODY_BYTES",
        "WEDMESH_REDIS__CLUSTER",
        "WEDMESH_LOGGING__LEVEL",
        "WEDMESH_SHUTDOWN__GRACE_S",
        "WEDMESH_NOPE__X",
        "WEDMESH_GATEWAY__TLS",
        "REDIS_URL",
    ]
)


@SETTINGS
@given(st.dictionaries(ENV_KEYS, st.text(max_size=40), max_size=5))
def test_environment_overrides_load_or_fail_with_config_error(env: dict[str, str]) -> None:
    """Arbitrary override values either validate or raise ConfigError — never another exception."""
    try:
        config = load_config(EXAMPLE_CONFIG, environ=env)
    except ConfigError as exc:
        assert "invalid configuration" in str(exc)
        return
    assert isinstance(config, MeshConfig)


@SETTINGS
@given(st.text(max_size=400))
def test_arbitrary_file_text_loads_or_fails_with_config_error(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    """Any file content (or bytes that are not UTF-8) is a valid config or a ConfigError."""
    path = tmp_path_factory.mktemp("cfg") / "wedmesh.toml"
    path.write_bytes(text.encode("utf-8") if _encodable(text) else b"\xff\xfe")
    try:
        load_config(path, environ={})
    except ConfigError as exc:
        assert str(path) in str(exc) or "invalid configuration" in str(exc)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
