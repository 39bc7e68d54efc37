"""Config block, routes table and the `wedmesh dlq router` commands."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from services.cli import main
from services.core.config import EXAMPLE_CONFIG, ConfigError, load_config
from services.core.queue import DurableQueue
from services.registry.admin import services_key
from services.registry.codec import queue_name
from services.registry.routes import RoutesTable
from services.registry.settings import DEFAULT_ROUTES
from tests.redis_mode import async_client, service_env
from wedsync.registry.v1 import message_pb2


def test_example_config_carries_the_routes() -> None:
    """The committed wedmesh.example.toml loads, with the payment, booking and email routes."""
    config = load_config(EXAMPLE_CONFIG, environ={})
    table = RoutesTable(config.registry.routes)
    assert [t.service for t in table.targets("payment.succeeded")][:2] == [
        "booking-service",
        "notification-service",
    ]
    assert {t.service for t in table.targets("email.bounced")} == {
        "notification-service",
        "analytics-service",
    }
    assert [t.service for t in table.targets("availability.updated")] == ["calendar-service"]
    assert table.targets("booking.confirmed")[0].priority == "NORMAL"


def test_default_routes_are_the_original_spec() -> None:
    """Without routes in config, wedding.* goes to notification (NORMAL, 3) and analytics (LOW, 1)."""
    table = RoutesTable(DEFAULT_ROUTES)
    targets = [(t.service, t.priority, t.max_retries) for t in table.targets("wedding.guest.added")]
    assert targets == [("notification-service", "NORMAL", 3), ("analytics-service", "LOW", 1)]
    assert table.targets("payment.succeeded") == []


def test_bad_route_is_a_config_error(tmp_path: Path) -> None:
    """A route pattern with a space fails at load, naming the key."""
    path = tmp_path / "mesh.toml"
    bad = '\n[[registry.routes]]\npattern = "a b"\ntargets = [{ service = "x" }]\n'
    path.write_text(EXAMPLE_CONFIG.read_text() + bad)
    with pytest.raises(ConfigError, match=r"registry\.routes\.\d+\.pattern"):
        load_config(path, environ={})


async def _one_dead_letter(url: str) -> str:
    client = async_client(url)
    try:
        queue = DurableQueue(client, queue_name("mail-service"))
        message = message_pb2.Message(message_id="m-1", to_service="mail-service", payload=b"x")
        await queue.enqueue(message.SerializeToString(), message_id="m-1")
        [delivery] = (await queue.claim("test", 1, 5.0)).deliveries
        await queue.dead(delivery, "RetryableError: instance=mail-1 UNAVAILABLE: gone")
        await client.sadd(services_key(), "mail-service")
        page = await queue.dead_letters.list()
        return f"mail-service/{page.letters[0].dead_id}"
    finally:
        await client.aclose()


def test_cli_lists_replays_and_purges(redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """`wedmesh dlq router list|replay|purge` act on the router's dead letters in Redis."""
    monkeypatch.setenv("REDIS_URL", redis_url)
    for name, value in service_env().items():
        monkeypatch.setenv(name, value)
    dead_id = asyncio.run(_one_dead_letter(redis_url))
    assert main(["dlq", "router", "list", "--service", "mail-service"]) == 0
    [row] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["id"] == dead_id and row["message_id"] == "m-1" and row["last_instance_id"] == "mail-1"
    assert main(["dlq", "router", "replay", dead_id]) == 0
    assert json.loads(capsys.readouterr().out)["replayed_ids"] == [dead_id]
    assert main(["dlq", "router", "list"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["dlq", "router", "purge", "--service", "mail-service"]) == 1  # needs ids or --all
    capsys.readouterr()
    assert main(["dlq", "router", "purge", "--all"]) == 0
    assert json.loads(capsys.readouterr().out)["purged"] == 0
