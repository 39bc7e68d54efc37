"""Redis key naming: one prefix, one hash tag per group, no ambiguous parts."""

from __future__ import annotations

import pytest

from services.core import keys


def slot_tag(key: str) -> str:
    return key[key.index("{") + 1 : key.index("}")]


def test_every_key_has_the_prefix_and_its_group_tag() -> None:
    """Keys start with wm: and carry the group's name as the hash tag."""
    q = keys.QueueKeys("router:notification-service")
    built = [*q.streams, q.delayed, q.dead, q.extra("idem", "abc")]
    assert all(k.startswith("wm:q:{router:notification-service}:") for k in built)
    assert {slot_tag(k) for k in built} == {"router:notification-service"}
    assert keys.webhook_key("stripe", "events") == "wm:wh:{stripe}:events"
    assert keys.registry_key("notification-service", "instances") == "wm:reg:{notification-service}:instances"
    assert keys.registry_global_key("services") == "wm:reg:{global}:services"
    assert keys.gateway_key("stripe_payments", "token") == "wm:gw:{stripe_payments}:token"


def test_streams_are_listed_high_normal_low() -> None:
    """Drain order is part of the contract."""
    assert [s.rsplit(":", 1)[1] for s in keys.QueueKeys("x").streams] == ["high", "normal", "low"]


@pytest.mark.parametrize("bad", ["", "a b", "a{b", "b}", "x" * 201, "new\nline", "trailing\n"])
def test_parts_that_would_break_the_slot_or_parse_are_refused(bad: str) -> None:
    """Braces, spaces, empty and huge parts raise a clear error."""
    with pytest.raises(keys.InvalidKeyPart, match="cannot be used in a Redis key"):
        keys.webhook_key(bad, "events")


def test_unknown_priority_is_refused() -> None:
    """Only high, normal and low streams exist."""
    with pytest.raises(keys.InvalidKeyPart, match="priority"):
        keys.QueueKeys("x").stream("urgent")
