"""The mesh with mutual TLS and caller auth on every hop (issue #6).

Registry + router and webhooks (intake and worker) run as their processes do, each port
with mutual TLS and auth on; a notification-service sink (the SDK's MeshInstance) serves
mutual TLS and registers with its own token. A message (Router.Send) and a webhook event
(Ingest → worker → Router.Publish) reach the sink over those hops, and a client without a
certificate, or without a token, is refused.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import SecretStr

from services.core.auth import Authenticator
from services.core.channels import open_channel
from services.core.config import MeshConfig, with_overrides
from services.core.redis_client import connect
from services.core.runner import ProcessRuntime
from services.core.settings_base import ClientTls
from services.registry.sdk import InstanceTls, MeshInstance
from services.registry.sdk_config import tls_from_env
from services.registry.testing import RecordingSink
from tests.mesh_process import run_wedmesh
from tests.registry.conftest import FAST
from tests.tls_certs import Pki, make_pki
from tests.waiting import wait_for
from tests.webhooks.conftest import SECRETS, STRIPE_SECRET, webhooks_config
from tests.webhooks.payloads import stripe_body, stripe_headers
from wedsync.events.v1 import events_pb2
from wedsync.registry.v1 import (
    message_pb2,
    registry_pb2,
    registry_pb2_grpc,
    router_pb2,
    router_pb2_grpc,
    sink_pb2,
    sink_pb2_grpc,
)
from wedsync.webhooks.v1 import webhooks_pb2, webhooks_pb2_grpc

SECRET = "mesh-tls-auth-test-secret-0123456789"
SINK = "notification-service"  # a target of the example's payment.* route
AUTH = Authenticator([SECRET.encode()])


@dataclass
class Mesh:
    pki: Pki
    registry: str
    webhooks: str
    sink: MeshInstance
    received: RecordingSink

    def tls(self, *, client_cert: bool = True) -> ClientTls:
        if not client_cert:
            return ClientTls(ca_file=str(self.pki.ca))
        return ClientTls(
            ca_file=str(self.pki.ca), cert_file=str(self.pki.client_cert), key_file=str(self.pki.client_key)
        )

    def channel(
        self, address: str, *, client_cert: bool = True, token: str | None = None
    ) -> grpc.aio.Channel:
        return open_channel(
            address, self.tls(client_cert=client_cert), token=SecretStr(token) if token else None
        )


def mesh_tls_config(base: MeshConfig, pki: Pki) -> MeshConfig:
    """Every gRPC port with mutual TLS, every dial with the mesh client certificate, auth on."""
    server_tls = {
        "cert_file": str(pki.server_cert),
        "key_file": str(pki.server_key),
        "client_ca_file": str(pki.ca),
    }
    return with_overrides(
        webhooks_config(base, **FAST),
        {
            "auth.enabled": True,
            "registry.tls": server_tls,
            "webhooks.tls": server_tls,
            "client_tls": {
                "ca_file": str(pki.ca),
                "cert_file": str(pki.client_cert),
                "key_file": str(pki.client_key),
            },
            "webhooks.router_address": f"127.0.0.1:{base.registry.port}",
        },
    )


async def serving(address: str, tls: ClientTls | None) -> bool:
    """The health service over TLS (health stays open with auth on, so no token)."""
    async with open_channel(address, tls) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


@pytest.fixture
async def mesh(
    mesh_config: MeshConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Mesh]:
    """Registry/router and webhooks processes (in this loop) plus one SDK sink, all mTLS + auth."""
    pki = make_pki(tmp_path / "pki")
    monkeypatch.setenv("WEDMESH_AUTH_SECRETS", SECRET)
    for name, value in SECRETS.items():  # the example providers' webhook secrets
        monkeypatch.setenv(name, value)
    # Each process presents its own token: one environment, so one variable per process.
    monkeypatch.setenv("TEST_REGISTRY_TOKEN", AUTH.issue("registry"))
    monkeypatch.setenv("TEST_WEBHOOKS_TOKEN", AUTH.issue("webhooks"))
    config = mesh_tls_config(mesh_config, pki)
    runtimes: list[ProcessRuntime] = []
    clients = []
    received = RecordingSink()
    sink: MeshInstance | None = None
    try:
        for process in ("registry", "webhooks"):
            cfg = with_overrides(config, {"auth.token_env": f"TEST_{process.upper()}_TOKEN"})
            redis = connect(cfg.redis)
            clients.append(redis)
            runtime = ProcessRuntime(process, cfg, redis)
            runtimes.append(runtime)
            await runtime.start()
            address = f"127.0.0.1:{runtime.host.port}"
            await wait_for(partial(serving, address, config.client_tls), what=f"{process} SERVING over TLS")
        registry = f"127.0.0.1:{runtimes[0].host.port}"
        sink = MeshInstance(
            SINK,
            received,
            registry=registry,
            ttl=2.0,
            tls=InstanceTls(
                ca_file=str(pki.ca),
                cert_file=str(pki.server_cert),
                key_file=str(pki.server_key),
                client_cert_file=str(pki.client_cert),
                client_key_file=str(pki.client_key),
            ),
            token=AUTH.issue(SINK),
        )
        await sink.start()
        yield Mesh(pki, registry, f"127.0.0.1:{runtimes[1].host.port}", sink, received)
    finally:
        if sink is not None:
            await sink.stop(grace=0.5)
        for runtime in reversed(runtimes):
            await runtime.stop()
        for client in clients:
            await client.aclose()


async def sink_healthy(mesh: Mesh, caller: str) -> bool:
    """The registry's health checker reached the sink over mutual TLS."""
    async with mesh.channel(mesh.registry, token=AUTH.issue(caller)) as channel:
        reply = await registry_pb2_grpc.RegistryServiceStub(channel).Discover(
            registry_pb2.DiscoverRequest(service_name=SINK), timeout=5
        )
    return any(i.health.status == registry_pb2.HEALTH_STATUS_HEALTHY for i in reply.instances)


async def test_message_reaches_the_sink_over_mutual_tls_with_tokens(mesh: Mesh) -> None:
    """Router.Send with a token over mTLS; the router delivers to the mTLS sink the checker found healthy."""
    await wait_for(lambda: sink_healthy(mesh, "billing-service"), what="sink HEALTHY")
    async with mesh.channel(mesh.registry, token=AUTH.issue("billing-service")) as channel:
        reply = await router_pb2_grpc.RouterServiceStub(channel).Send(
            router_pb2.SendRequest(
                message=message_pb2.Message(to_service=SINK, event_type="invoice.sent", payload=b"hi")
            ),
            timeout=5,
        )
    await mesh.received.wait_for(1)
    assert mesh.received.messages[0].message_id == reply.message_id
    assert mesh.received.messages[0].payload == b"hi"


async def test_webhook_event_reaches_the_sink_through_worker_and_router(mesh: Mesh) -> None:
    """A signed Stripe webhook: Ingest (mTLS + token) → worker → Router.Publish (its token) → sink."""
    await wait_for(lambda: sink_healthy(mesh, "stripe-shim"), what="sink HEALTHY")
    evt, body = stripe_body(wedding_id="wed_tls")
    async with mesh.channel(mesh.webhooks, token=AUTH.issue("shim")) as channel:
        accepted = await webhooks_pb2_grpc.WebhookIntakeServiceStub(channel).Ingest(
            webhooks_pb2.IngestRequest(
                provider_id="stripe", body=body, headers=stripe_headers(body, STRIPE_SECRET)
            ),
            timeout=5,
        )
    assert accepted.outcome == webhooks_pb2.INGEST_OUTCOME_ACCEPTED
    await mesh.received.wait_for(1)
    event = events_pb2.WeddingEvent.FromString(mesh.received.messages[0].payload)
    assert (event.id, event.source_event_id, event.wedding_id) == (accepted.event_id, evt, "wed_tls")


@pytest.mark.parametrize("port", ["registry", "webhooks", "sink"])
async def test_a_client_without_a_certificate_is_refused(mesh: Mesh, port: str) -> None:
    """Trusting the CA but holding no client certificate: the handshake fails (UNAVAILABLE), token or not."""
    address = mesh.sink.address if port == "sink" else getattr(mesh, port)
    async with mesh.channel(address, client_cert=False, token=AUTH.issue(SINK)) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_client_without_a_token_is_refused(mesh: Mesh) -> None:
    """With a certificate but no token: Send, Ingest and an SDK Register answer UNAUTHENTICATED."""
    async with mesh.channel(mesh.registry) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as sent:
            await router_pb2_grpc.RouterServiceStub(channel).Send(
                router_pb2.SendRequest(message=message_pb2.Message(to_service=SINK, payload=b"x")), timeout=5
            )
    async with mesh.channel(mesh.webhooks) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as ingested:
            await webhooks_pb2_grpc.WebhookIntakeServiceStub(channel).Ingest(
                webhooks_pb2.IngestRequest(provider_id="stripe", body=b"{}"), timeout=5
            )
    tokenless = MeshInstance(SINK, RecordingSink(), registry=mesh.registry, tls=mesh.sink.tls)
    with pytest.raises(grpc.aio.AioRpcError) as registered:
        await tokenless.start()
    for err in (sent, ingested, registered):
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "bearer token" in (err.value.details() or "")


async def test_the_sdk_takes_tls_and_token_from_the_environment(
    mesh: Mesh, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With WEDMESH_TLS_* and WEDMESH_SERVICE_TOKEN set, a MeshInstance with no TLS/token arguments joins."""
    pki = mesh.pki
    monkeypatch.setenv("WEDMESH_TLS_CA_FILE", str(pki.ca))
    monkeypatch.setenv("WEDMESH_TLS_CERT_FILE", str(pki.server_cert))
    monkeypatch.setenv("WEDMESH_TLS_KEY_FILE", str(pki.server_key))
    monkeypatch.setenv("WEDMESH_TLS_CLIENT_CERT_FILE", str(pki.client_cert))
    monkeypatch.setenv("WEDMESH_TLS_CLIENT_KEY_FILE", str(pki.client_key))
    monkeypatch.setenv("WEDMESH_SERVICE_TOKEN", AUTH.issue("calendar-service"))
    calendar = RecordingSink()
    async with MeshInstance("calendar-service", calendar, registry=mesh.registry, ttl=2.0) as instance:
        assert instance.lease is not None and instance.lease.lease_id
        async with mesh.channel(instance.address) as channel:  # its port is mutual TLS
            reply = await sink_pb2_grpc.MessageSinkServiceStub(channel).Deliver(
                sink_pb2.DeliverRequest(message=message_pb2.Message(message_id="m1")), timeout=5
            )
    assert reply.ack == sink_pb2.DELIVERY_ACK_ACCEPTED and calendar.message_ids == ["m1"]


async def wedmesh(config_file: Path, token: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the ``wedmesh`` CLI as a real process with ``token`` in $WEDMESH_SERVICE_TOKEN."""
    env = {k: v for k, v in os.environ.items() if k != "WEDMESH_SERVICE_TOKEN"}
    env["WEDMESH_CONFIG"] = str(config_file)
    if token is not None:
        env["WEDMESH_SERVICE_TOKEN"] = token
    return await run_wedmesh(*args, env=env)


async def test_the_cli_dials_over_mutual_tls_with_its_token(mesh: Mesh, tmp_path: Path) -> None:
    """`wedmesh dlq webhooks` dials per [client_tls] with $WEDMESH_SERVICE_TOKEN; unset, it says to set it."""
    pki = mesh.pki
    config_file = tmp_path / "cli.toml"
    config_file.write_text(
        f"[webhooks]\nport = {mesh.webhooks.rpartition(':')[2]}\n"
        "[auth]\nenabled = true\n"
        f'[client_tls]\nca_file = "{pki.ca}"\n'
        f'cert_file = "{pki.client_cert}"\nkey_file = "{pki.client_key}"\n'
    )
    replayed = await wedmesh(config_file, AUTH.issue("ops", ["admin"]), "dlq", "webhooks", "replay", "--all")
    assert replayed.returncode == 0, replayed.stderr
    assert json.loads(replayed.stdout.splitlines()[0]) == {}  # nothing dead: an empty reply
    refused = await wedmesh(config_file, None, "dlq", "webhooks", "list")
    assert refused.returncode == 2
    assert "UNAUTHENTICATED" in refused.stderr and "set $WEDMESH_SERVICE_TOKEN" in refused.stderr


def test_sdk_tls_from_the_environment_names_what_is_missing() -> None:
    """WEDMESH_TLS_CERT_FILE alone is refused naming the key and CA variables; unset means no TLS."""
    assert tls_from_env({}) is None
    with pytest.raises(ValueError, match="WEDMESH_TLS_KEY_FILE and WEDMESH_TLS_CA_FILE"):
        tls_from_env({"WEDMESH_TLS_CERT_FILE": "c.pem"})
    tls = tls_from_env(
        {
            "WEDMESH_TLS_CERT_FILE": "c.pem",
            "WEDMESH_TLS_KEY_FILE": "c.key",
            "WEDMESH_TLS_CA_FILE": "ca.pem",
            "WEDMESH_TLS_MUTUAL": "false",
        }
    )
    assert tls == InstanceTls(ca_file="ca.pem", cert_file="c.pem", key_file="c.key", mutual=False)
    assert tls.server().client_ca_file is None and tls.client().cert_file == "c.pem"
