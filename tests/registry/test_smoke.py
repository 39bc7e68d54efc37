"""Smoke: one message goes from Send to an in-process sink."""

from __future__ import annotations

from services.registry.testing import RecordingSink
from wedsync.registry.v1 import message_pb2, router_pb2


async def test_send_reaches_a_registered_sink(router, start_sink) -> None:
    """A message sent to a service is delivered once to its healthy instance."""
    sink = RecordingSink()
    await start_sink("notification-service", sink, "n1")
    reply = await router.Send(
        router_pb2.SendRequest(message=message_pb2.Message(to_service="notification-service", payload=b"hi"))
    )
    await sink.wait_for(1)
    assert sink.messages[0].message_id == reply.message_id
    assert sink.messages[0].attempt == 1
