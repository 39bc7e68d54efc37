"""Stripe events (documented event objects) → canonical payment events."""

from __future__ import annotations

from services.core.queue import PermanentError
from services.webhooks.normalisers.common import Doc, envelope, money, obj, text
from wedsync.events.v1 import events_pb2


def stripe_payment_intent_succeeded(doc: Doc) -> events_pb2.WeddingEvent:
    pi = obj(doc, "data", "object")
    if not pi.get("id"):
        raise PermanentError("payment_intent.succeeded without data.object.id")
    meta = obj(pi, "metadata")
    event = envelope("payment.succeeded", meta, doc.get("created"))
    paid = events_pb2.PaymentSucceeded(
        wedding_id=event.wedding_id,
        supplier_id=event.supplier_id,
        payment_intent_id=text(pi, "id"),
        charge_id=text(pi, "latest_charge"),
        customer_id=text(pi, "customer"),
        description=text(pi, "description"),
        payment_method_type=next(iter(pi.get("payment_method_types") or []), ""),
    )
    amount = money(pi.get("amount_received", pi.get("amount")), pi.get("currency"))
    if amount:
        paid.amount.CopyFrom(amount)
    if event.HasField("occurred_at"):
        paid.succeeded_at.CopyFrom(event.occurred_at)
    event.payment_succeeded.CopyFrom(paid)
    if text(meta, "payment_type"):
        event.attributes["payment_type"] = text(meta, "payment_type")
    return event


def stripe_payment_intent_failed(doc: Doc) -> events_pb2.WeddingEvent:
    pi = obj(doc, "data", "object")
    if not pi.get("id"):
        raise PermanentError("payment_intent.payment_failed without data.object.id")
    meta, err = obj(pi, "metadata"), obj(pi, "last_payment_error")
    event = envelope("payment.failed", meta, doc.get("created"))
    failed = events_pb2.PaymentFailed(
        wedding_id=event.wedding_id,
        supplier_id=event.supplier_id,
        payment_intent_id=text(pi, "id"),
        charge_id=text(pi, "latest_charge") or text(err, "charge"),
        customer_id=text(pi, "customer"),
        failure_code=text(err, "code"),
        failure_message=text(err, "message"),
        decline_code=text(err, "decline_code"),
        payment_method_type=text(obj(err, "payment_method"), "type"),
    )
    amount = money(pi.get("amount"), pi.get("currency"))
    if amount:
        failed.amount.CopyFrom(amount)
    if event.HasField("occurred_at"):
        failed.failed_at.CopyFrom(event.occurred_at)
    event.payment_failed.CopyFrom(failed)
    if text(meta, "payment_type"):
        event.attributes["payment_type"] = text(meta, "payment_type")
    return event


def stripe_invoice_paid(doc: Doc) -> events_pb2.WeddingEvent:
    inv = obj(doc, "data", "object")
    if not inv.get("id"):
        raise PermanentError("invoice.payment_succeeded without data.object.id")
    meta = obj(inv, "metadata") or obj(inv, "subscription_details", "metadata")
    event = envelope("payment.succeeded", meta, doc.get("created"))
    paid = events_pb2.PaymentSucceeded(
        wedding_id=event.wedding_id,
        supplier_id=event.supplier_id,
        payment_intent_id=text(inv, "payment_intent"),
        charge_id=text(inv, "charge"),
        customer_id=text(inv, "customer"),
        description=text(inv, "description"),
        receipt_url=text(inv, "hosted_invoice_url"),
    )
    amount = money(inv.get("amount_paid"), inv.get("currency"))
    if amount:
        paid.amount.CopyFrom(amount)
    event.payment_succeeded.CopyFrom(paid)
    event.attributes["invoice_id"] = text(inv, "id")
    if text(meta, "payment_type"):
        event.attributes["payment_type"] = text(meta, "payment_type")
    return event


def stripe_charge_refunded(doc: Doc) -> events_pb2.WeddingEvent:
    charge = obj(doc, "data", "object")
    if not charge.get("id"):
        raise PermanentError("charge.refunded without data.object.id")
    event = envelope("payment.refunded", obj(charge, "metadata"), doc.get("created"))
    event.attributes.update(
        {
            "charge_id": text(charge, "id"),
            "payment_intent_id": text(charge, "payment_intent"),
            "amount_refunded_minor": text(charge, "amount_refunded"),
            "currency": text(charge, "currency").upper(),
        }
    )
    return event
