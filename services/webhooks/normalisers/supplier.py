"""Supplier platform events (``{"id", "type", "occurred_at", "data"}``) → bookings, availability."""

from __future__ import annotations

from collections.abc import Mapping

from services.webhooks.normalisers.common import Doc, envelope, money_obj, obj, text, timestamp
from wedsync.events.v1 import events_pb2


def booking_confirmed(doc: Doc) -> events_pb2.WeddingEvent:
    data = obj(doc, "data")
    event = envelope("booking.confirmed", data, doc.get("occurred_at"))
    booking = events_pb2.BookingConfirmed(
        wedding_id=event.wedding_id,
        supplier_id=event.supplier_id,
        booking_id=text(data, "booking_id"),
        service_description=text(data, "service_description"),
    )
    for name in ("starts_at", "ends_at"):
        stamp = timestamp(data.get(name))
        if stamp:
            getattr(booking, name).CopyFrom(stamp)
    for name in ("total", "deposit"):
        money = money_obj(obj(data, name))
        if money:
            getattr(booking, name).CopyFrom(money)
    if event.HasField("occurred_at"):
        booking.confirmed_at.CopyFrom(event.occurred_at)
    event.booking_confirmed.CopyFrom(booking)
    return event


def booking_cancelled(doc: Doc) -> events_pb2.WeddingEvent:
    data = obj(doc, "data")
    event = envelope("booking.cancelled", data, doc.get("occurred_at"))
    cancelled = events_pb2.BookingCancelled(
        wedding_id=event.wedding_id,
        supplier_id=event.supplier_id,
        booking_id=text(data, "booking_id"),
        reason=text(data, "reason"),
        cancelled_by=text(data, "cancelled_by"),
    )
    refund = money_obj(obj(data, "refund_amount"))
    if refund:
        cancelled.refund_amount.CopyFrom(refund)
    if event.HasField("occurred_at"):
        cancelled.cancelled_at.CopyFrom(event.occurred_at)
    event.booking_cancelled.CopyFrom(cancelled)
    return event


def availability_updated(doc: Doc) -> events_pb2.WeddingEvent:
    data = obj(doc, "data")
    event = envelope("availability.updated", data, doc.get("occurred_at"))
    update = events_pb2.AvailabilityUpdated(
        wedding_id=event.wedding_id,
        supplier_id=event.supplier_id,
        dates=[d for d in data.get("dates") or [] if isinstance(d, str)],
        available=bool(data.get("available", False)),
        time_zone=text(data, "time_zone"),
    )
    for slot in data.get("slots") or []:
        if isinstance(slot, Mapping):
            item = update.slots.add(
                available=bool(slot.get("available")), capacity=int(slot.get("capacity") or 0)
            )
            for name in ("start_time", "end_time"):
                stamp = timestamp(slot.get(name))
                if stamp:
                    getattr(item, name).CopyFrom(stamp)
    if event.HasField("occurred_at"):
        update.updated_at.CopyFrom(event.occurred_at)
    event.availability_updated.CopyFrom(update)
    return event
