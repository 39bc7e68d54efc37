"""The batching writer of RECEIVED records: a trickle shares round trips, stop loses nothing."""

from __future__ import annotations

import asyncio
from typing import Any

from services.core.autopipeline import batching
from services.webhooks import records
from services.webhooks.history import History, HistoryWriter
from tests.waiting import wait_for
from wedsync.webhooks.v1 import webhooks_pb2


def _keep(event_id: str) -> dict[str, Any]:
    record = records.new_record(
        event_id=event_id,
        provider_id="stripe",
        event_type="payment_intent.succeeded",
        provider_event_id="evt_" + event_id,
        received_ms=1_000,
        body=b"{}",
        headers={},
        status=webhooks_pb2.WEBHOOK_EVENT_STATUS_RECEIVED,
    )
    return {"rec": record.SerializeToString(), "status": int(record.status), "received_ms": 1_000}


async def test_records_submitted_within_the_linger_share_one_script_call(redis_client: Any) -> None:
    history = History(batching(redis_client), retention_s=3600)
    writer = HistoryWriter(history)
    await writer.start()
    try:
        writer.submit("stripe", "whe_warm", "payment_intent.succeeded", _keep("whe_warm"))
        await wait_for(lambda: history.get("whe_warm", include_raw=False), what="script loaded")
        await redis_client.config_resetstat()
        for i in range(5):  # one event-loop turn apart: a trickle, not a burst
            writer.submit("stripe", f"whe_w{i}", "payment_intent.succeeded", _keep(f"whe_w{i}"))
        await wait_for(lambda: _all_recorded(history, 5), what="5 records")
        stats = await redis_client.info("commandstats")
        assert stats["cmdstat_evalsha"]["calls"] == 1, stats["cmdstat_evalsha"]
    finally:
        await writer.stop()


async def test_stop_writes_what_is_waiting_in_the_linger(redis_client: Any) -> None:
    history = History(batching(redis_client), retention_s=3600)
    writer = HistoryWriter(history)
    await writer.start()
    writer.submit("stripe", "whe_last", "payment_intent.succeeded", _keep("whe_last"))
    await asyncio.sleep(0)  # the writer takes the record and starts lingering on it
    await writer.stop()
    event = await history.get("whe_last", include_raw=True)
    assert event is not None and event.event_id == "whe_last"


async def _all_recorded(history: History, n: int) -> bool:
    found = [await history.get(f"whe_w{i}", include_raw=False) for i in range(n)]
    return all(e is not None for e in found)


async def test_keep_fields_and_ttl_are_set_once_when_the_event_is_first_recorded(redis_client: Any) -> None:
    """A later record updates the status but neither the raw record (a keep field) nor the
    TTL: retention counts from the first record, and the event is logged once."""
    from services.webhooks.layout import event_key, log_key

    history = History(batching(redis_client), retention_s=3600)
    first = _keep("whe_once")
    await history.record("stripe", "whe_once", "payment_intent.succeeded", {}, first)
    key = event_key("whe_once")
    assert 3_500_000 < await redis_client.pttl(key) <= 3_600_000
    await redis_client.pexpire(key, 60_000)  # as if the event were 59 minutes old
    processed = int(webhooks_pb2.WEBHOOK_EVENT_STATUS_PROCESSED)
    later = {**_keep("whe_once"), "rec": b"another record"}
    await history.record("stripe", "whe_once", "payment_intent.succeeded", {"status": processed}, later)
    assert await redis_client.pttl(key) <= 60_000
    assert await redis_client.hget(key, "rec") == first["rec"]
    assert int(await redis_client.hget(key, "status")) == processed
    assert await redis_client.xlen(log_key("stripe")) == 1
