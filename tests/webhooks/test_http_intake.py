"""Webhooks through the real shim over HTTP into the real intake service and Redis."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from prometheus_client import REGISTRY

from services.core.config import MeshConfig
from services.core.server import ServiceHost
from services.webhooks.layout import log_key
from services.webhooks.providers import queue_name
from tests.webhooks.conftest import EMAIL_SECRET, STRIPE_SECRET, SUPPLIER_SECRET, Shim, webhooks_config
from tests.webhooks.payloads import (
    email_body,
    email_headers,
    stripe_body,
    stripe_headers,
    supplier_body,
    supplier_headers,
)
from wedsync.webhooks.v1 import webhooks_pb2, webhooks_pb2_grpc

REJECTED = "wedmesh_webhooks_rejected_total"
Start = Callable[..., Awaitable[ServiceHost]]
RunShim = Callable[..., Awaitable[Shim]]


@pytest.fixture
async def shim(start_service: Start, run_shim: RunShim, wh_config: MeshConfig) -> Shim:
    """Intake (worker off: these tests look at intake alone) behind the real shim."""
    from services.core.config import with_overrides

    host = await start_service("webhooks", with_overrides(wh_config, {"webhooks.worker_enabled": False}))
    return await run_shim(host)


async def stream_len(redis_client: Any, provider: str) -> int:
    from services.core.keys import QueueKeys

    return sum([await redis_client.xlen(k) for k in QueueKeys(queue_name(provider)).streams])


async def test_stripe_event_signed_by_stripe_library_is_accepted_and_queued(
    shim: Shim, redis_client: Any
) -> None:
    """A Stripe-library-signed event answers 200 accepted only once it is in the provider's stream."""
    _, body = stripe_body()
    reply = await shim.post("stripe", body, stripe_headers(body, STRIPE_SECRET))
    assert reply.status_code == 200, reply.text
    assert reply.json()["status"] == "accepted"
    assert reply.json()["event_id"].startswith("whe_")
    assert await stream_len(redis_client, "stripe") == 1


async def test_supplier_hmac_and_email_standard_webhooks_are_accepted(shim: Shim) -> None:
    """HMAC-SHA256 (with and without prefix) and Standard Webhooks deliveries are accepted."""
    _, body = supplier_body()
    ok = await shim.post("supplier_platform", body, supplier_headers(body, SUPPLIER_SECRET))
    _, body2 = supplier_body()
    bare = await shim.post("supplier_platform", body2, supplier_headers(body2, SUPPLIER_SECRET, prefix=""))
    body3 = email_body()
    email = await shim.post("email_provider", body3, email_headers(body3, EMAIL_SECRET))
    assert [r.json()["status"] for r in (ok, bare, email)] == ["accepted"] * 3


async def test_tampered_body_is_401(shim: Shim, redis_client: Any) -> None:
    """A body changed after signing is refused with 401 and nothing is stored."""
    _, body = stripe_body()
    headers = stripe_headers(body, STRIPE_SECRET)
    reply = await shim.post("stripe", body.replace(b"50000", b"50001"), headers)
    assert reply.status_code == 401
    assert await stream_len(redis_client, "stripe") == 0


async def test_wrong_secret_is_401(shim: Shim) -> None:
    """A signature made with another secret is refused with 401, for every scheme."""
    _, body = stripe_body()
    r1 = await shim.post("stripe", body, stripe_headers(body, "whsec_wrong"))
    r2 = await shim.post("supplier_platform", body, supplier_headers(body, "wrong"))
    r3 = await shim.post("email_provider", body, email_headers(body, "whsec_" + "QUJDREVGR0hJSktMTU5PUA=="))
    assert [r.status_code for r in (r1, r2, r3)] == [401, 401, 401]


async def test_refused_signature_is_logged_once_with_the_senders_address(
    shim: Shim, caplog: pytest.LogCaptureFixture
) -> None:
    """A refused signature logs provider, sender address and reason, once per interval, and
    never the signature or the secret."""
    _, body = stripe_body()
    headers = stripe_headers(body, "whsec_wrong")
    with caplog.at_level("WARNING", logger="wedmesh.webhooks"):
        replies = [await shim.post("stripe", body, headers) for _ in range(3)]
    assert [r.status_code for r in replies] == [401, 401, 401]
    refused = [r for r in caplog.records if r.getMessage() == "webhook signature refused"]
    assert len(refused) == 1
    record: Any = refused[0]
    assert record.provider == "stripe"
    assert record.remote_addr.startswith("127.0.0.1:")
    assert record.reason == "no v1 signature matches"
    text = json.dumps(vars(record), default=str)
    assert headers["stripe-signature"].split("v1=")[1] not in text
    assert "whsec_" not in text


async def test_stale_and_future_timestamps_are_401(shim: Shim) -> None:
    """Signatures older or newer than the 300 s tolerance are refused with 401."""
    _, body = stripe_body()
    old = await shim.post("stripe", body, stripe_headers(body, STRIPE_SECRET, int(time.time()) - 400))
    new = await shim.post("stripe", body, stripe_headers(body, STRIPE_SECRET, int(time.time()) + 400))
    body2 = email_body()
    sw_old = await shim.post(
        "email_provider", body2, email_headers(body2, EMAIL_SECRET, timestamp=int(time.time()) - 400)
    )
    sw_new = await shim.post(
        "email_provider", body2, email_headers(body2, EMAIL_SECRET, timestamp=int(time.time()) + 400)
    )
    assert [r.status_code for r in (old, new, sw_old, sw_new)] == [401] * 4
    assert "timestamp" in old.json()["error"]


async def test_missing_and_malformed_signature_headers_are_400(shim: Shim) -> None:
    """No signature header, or one that cannot be parsed, answers 400 naming the problem."""
    _, body = stripe_body()
    missing = await shim.post("stripe", body, {})
    malformed = await shim.post("stripe", body, {"stripe-signature": "nonsense"})
    not_hex = await shim.post("supplier_platform", body, {"x-supplier-signature": "sha256=zz"})
    body2 = email_body()
    headers = email_headers(body2, EMAIL_SECRET)
    del headers["webhook-id"]
    no_id = await shim.post("email_provider", body2, headers)
    assert [r.status_code for r in (missing, malformed, not_hex, no_id)] == [400] * 4
    assert "stripe-signature" in missing.json()["error"]


async def test_duplicate_delivery_answers_duplicate_with_the_first_event_id(
    shim: Shim, redis_client: Any
) -> None:
    """The same Stripe event delivered twice is stored once; the second answer is `duplicate`."""
    _, body = stripe_body()
    first = await shim.post("stripe", body, stripe_headers(body, STRIPE_SECRET))
    again = await shim.post("stripe", body, stripe_headers(body, STRIPE_SECRET, int(time.time()) + 1))
    assert first.json()["status"] == "accepted"
    assert again.status_code == 200
    assert again.json() == {"event_id": first.json()["event_id"], "status": "duplicate"}
    assert await stream_len(redis_client, "stripe") == 1


async def test_standard_webhooks_redelivery_with_same_webhook_id_is_duplicate(shim: Shim) -> None:
    """Standard Webhooks dedups on the webhook-id header, even if re-signed later."""
    body = email_body()
    first = await shim.post("email_provider", body, email_headers(body, EMAIL_SECRET, msg_id="msg_same"))
    again = await shim.post("email_provider", body, email_headers(body, EMAIL_SECRET, msg_id="msg_same"))
    assert again.json() == {"event_id": first.json()["event_id"], "status": "duplicate"}


async def test_oversized_body_is_413(start_service: Start, run_shim: RunShim, wh_config: MeshConfig) -> None:
    """A body over the shim's limit is refused with 413 before intake sees it."""
    host = await start_service("webhooks", wh_config)
    shim = await run_shim(host, max_body_bytes=2048)
    _, body = stripe_body()
    big = body[:-1] + b', "pad": "' + b"x" * 4096 + b'"}'
    reply = await shim.post("stripe", big, stripe_headers(big, STRIPE_SECRET))
    assert reply.status_code == 413


async def test_wrong_content_type_is_415(shim: Shim) -> None:
    """A webhook not sent as JSON is refused with 415."""
    _, body = stripe_body()
    headers = {**stripe_headers(body, STRIPE_SECRET), "content-type": "text/plain"}
    reply = await shim.post("stripe", body, headers)
    assert reply.status_code == 415


async def test_signed_invalid_json_is_400(shim: Shim) -> None:
    """An authentic body that is not JSON answers 400 (parsed only after it verified)."""
    body = b"{not json"
    reply = await shim.post("stripe", body, stripe_headers(body, STRIPE_SECRET))
    assert reply.status_code == 400
    assert "JSON" in reply.json()["error"]


async def test_unknown_provider_is_404_and_counted_under_one_label(shim: Shim) -> None:
    """A provider id that is not configured answers 404; its refusal is counted under
    ``_unknown``, never under the made-up id (which would let callers grow the series)."""
    before = REGISTRY.get_sample_value(REJECTED, {"provider": "_unknown", "code": "NOT_FOUND"}) or 0
    for made_up in ("nobody", "nobody-else"):
        reply = await shim.post(made_up, b"{}", {})
        assert reply.status_code == 404
    assert REGISTRY.get_sample_value(REJECTED, {"provider": "_unknown", "code": "NOT_FOUND"}) == before + 2
    assert REGISTRY.get_sample_value(REJECTED, {"provider": "nobody", "code": "NOT_FOUND"}) is None


async def test_ignored_type_is_200_ignored_and_recorded_not_queued(
    shim: Shim, redis_client: Any, wh_config: MeshConfig
) -> None:
    """An authentic event of an unlisted type answers `ignored`, is kept in history, not queued."""
    _, body = stripe_body("customer.created")
    reply = await shim.post("stripe", body, stripe_headers(body, STRIPE_SECRET))
    assert reply.json()["status"] == "ignored"
    assert await stream_len(redis_client, "stripe") == 0
    async with grpc.aio.insecure_channel(wh_config.webhooks.address) as channel:
        got = await webhooks_pb2_grpc.WebhookIntakeServiceStub(channel).GetEvent(
            webhooks_pb2.GetEventRequest(event_id=reply.json()["event_id"])
        )
    assert got.event.status == webhooks_pb2.WEBHOOK_EVENT_STATUS_IGNORED
    assert got.event.event_type == "customer.created"
    again = await shim.post("stripe", body, stripe_headers(body, STRIPE_SECRET))
    assert again.json() == {"event_id": reply.json()["event_id"], "status": "duplicate"}
    assert await redis_client.xlen(log_key("stripe")) == 1  # recorded once


async def test_rotated_secrets_both_verify(
    start_service: Start, run_shim: RunShim, mesh_config: MeshConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With "old,new" in the secret variable, events signed with either secret are accepted."""
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_old,whsec_new")
    monkeypatch.setenv("SUPPLIER_WEBHOOK_SECRET", "s")
    monkeypatch.setenv("EMAIL_WEBHOOK_SECRET", EMAIL_SECRET)
    host = await start_service("webhooks", webhooks_config(mesh_config))
    shim = await run_shim(host)
    _, b1 = stripe_body()
    _, b2 = stripe_body()
    r1 = await shim.post("stripe", b1, stripe_headers(b1, "whsec_old"))
    r2 = await shim.post("stripe", b2, stripe_headers(b2, "whsec_new"))
    assert [r1.status_code, r2.status_code] == [200, 200]


async def test_provider_without_secret_is_503_and_reported_in_health(
    start_service: Start, run_shim: RunShim, mesh_config: MeshConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A provider whose secret variable is unset answers 503 (the provider retries) and health says so."""
    monkeypatch.delenv("STRIPE_WEBHOOK_SECRET", raising=False)
    monkeypatch.setenv("SUPPLIER_WEBHOOK_SECRET", "s")
    monkeypatch.setenv("EMAIL_WEBHOOK_SECRET", EMAIL_SECRET)
    host = await start_service("webhooks", webhooks_config(mesh_config))
    shim = await run_shim(host)
    _, body = stripe_body()
    reply = await shim.post("stripe", body, stripe_headers(body, STRIPE_SECRET))
    assert reply.status_code == 503
    assert reply.headers["retry-after"]
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    async with grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        bad = await health.Check(
            health_pb2.HealthCheckRequest(service="wedsync.webhooks.v1.WebhookIntakeService/providers/stripe")
        )
    assert bad.status == health_pb2.HealthCheckResponse.NOT_SERVING


async def test_github_documented_signature_through_the_shim(
    start_service: Start, run_shim: RunShim, mesh_config: MeshConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GitHub's documented example passes verification over HTTP (then fails as non-JSON: 400, not 401)."""
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", "It's a Secret to Everybody")
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", STRIPE_SECRET)
    monkeypatch.setenv("SUPPLIER_WEBHOOK_SECRET", "s")
    monkeypatch.setenv("EMAIL_WEBHOOK_SECRET", EMAIL_SECRET)
    github = {"scheme": "hmac_sha256", "secrets_env": "GITHUB_WEBHOOK_SECRET", "event_types": ["push"]}
    config = webhooks_config(mesh_config)
    providers = {k: v.model_dump() for k, v in config.webhooks.providers.items()} | {"github": github}
    from services.core.config import with_overrides

    host = await start_service("webhooks", with_overrides(config, {"webhooks.providers": providers}))
    shim = await run_shim(host)
    sig = {"x-hub-signature-256": "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"}
    good = await shim.post("github", b"Hello, World!", sig)
    bad = await shim.post("github", b"Hello, World?", sig)
    assert (good.status_code, bad.status_code) == (400, 401)
    assert "JSON" in good.json()["error"]
    payload = json.dumps({"action": "x"}).encode()
    import hashlib
    import hmac

    sig2 = "sha256=" + hmac.new(b"It's a Secret to Everybody", payload, hashlib.sha256).hexdigest()
    ignored = await shim.post("github", payload, {"x-hub-signature-256": sig2})
    assert ignored.status_code == 400  # no "type" field: malformed for this provider's config


async def test_embedded_shim_runs_the_same_intake_path(
    start_service: Start, wh_config: MeshConfig, redis_client: Any
) -> None:
    """With [webhooks] http_port the process serves the shim itself: same answers, no gRPC hop."""
    import httpx

    from services.core.config import with_overrides
    from services.core.local_redis import free_port

    port = free_port()
    await start_service("webhooks", with_overrides(wh_config, {"webhooks.http_port": port}))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=15) as client:
        _, body = stripe_body()
        headers = {"content-type": "application/json", **stripe_headers(body, STRIPE_SECRET)}
        ok = await client.post("/webhooks/stripe", content=body, headers=headers)
        dup = await client.post("/webhooks/stripe", content=body, headers=headers)
        bad = await client.post("/webhooks/stripe", content=body + b" ", headers=headers)
        unknown = await client.post("/webhooks/nobody", content=body, headers=headers)
        ready = await client.get("/readyz")
    assert ok.json()["status"] == "accepted" and dup.json()["status"] == "duplicate"
    assert (bad.status_code, unknown.status_code, ready.status_code) == (401, 404, 200)


async def test_accepted_event_is_visible_as_received_before_processing(
    shim: Shim, wh_config: MeshConfig
) -> None:
    """With no worker running, an accepted event shows in GetEvent and ListEvents as RECEIVED."""
    from tests.waiting import wait_for

    _, body = supplier_body()
    reply = await shim.post("supplier_platform", body, supplier_headers(body, SUPPLIER_SECRET))
    event_id = reply.json()["event_id"]
    async with grpc.aio.insecure_channel(wh_config.webhooks.address) as channel:
        stub = webhooks_pb2_grpc.WebhookIntakeServiceStub(channel)

        async def received() -> Any:
            listed = await stub.ListEvents(webhooks_pb2.ListEventsRequest(provider_id="supplier_platform"))
            return listed.events

        events = await wait_for(received, what="history record")
        got = await stub.GetEvent(
            webhooks_pb2.GetEventRequest(event_id=event_id, provider_id="supplier_platform")
        )
    assert [e.event_id for e in events] == [event_id]
    assert got.event.status == webhooks_pb2.WEBHOOK_EVENT_STATUS_RECEIVED
    assert got.event.event_type == "booking.confirmed" and got.event.provider_event_id.startswith("sup_evt_")


async def test_deeply_nested_json_is_400_not_500(shim: Shim) -> None:
    """An authentic but absurdly nested body answers 400, not an internal error."""
    body = b"[" * 100_000 + b"]" * 100_000
    reply = await shim.post("supplier_platform", body, supplier_headers(body, SUPPLIER_SECRET))
    assert reply.status_code == 400


async def test_embedded_shim_answers_not_ready_but_still_accepts_while_draining(
    wh_config: MeshConfig,
) -> None:
    """On shutdown the embedded shim's /readyz turns 503 for drain_delay_s while webhooks are
    still accepted, as the gRPC port's health does, then the listener closes."""
    import asyncio

    import httpx

    from services.core.config import with_overrides
    from services.core.local_redis import free_port
    from services.core.redis_client import connect
    from services.core.runner import ProcessRuntime
    from tests.waiting import wait_for

    port = free_port()
    cfg = with_overrides(wh_config, {"webhooks.http_port": port, "shutdown.drain_delay_s": 2.0})
    redis = connect(cfg.redis)
    runtime = ProcessRuntime("webhooks", cfg, redis)
    await runtime.start()
    stopping = None
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=15) as client:
            assert (await client.get("/readyz")).status_code == 200
            stopping = asyncio.create_task(runtime.stop())

            async def not_ready() -> bool:
                return (await client.get("/readyz")).status_code == 503

            await wait_for(not_ready, what="/readyz 503 while draining")
            _, body = stripe_body()
            headers = {"content-type": "application/json", **stripe_headers(body, STRIPE_SECRET)}
            accepted = await client.post("/webhooks/stripe", content=body, headers=headers)
            assert accepted.status_code == 200 and accepted.json()["status"] == "accepted"
            await stopping
            with pytest.raises(httpx.TransportError):
                await client.get("/readyz")
    finally:
        if stopping is None:
            await runtime.stop()
        await redis.aclose()
