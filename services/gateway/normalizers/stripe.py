"""Stripe: PaymentIntents, Charges and Refunds (and lists of them) → ``Payment``.

Stripe amounts are already integer minor units; currencies are lower-case ISO codes
(upper-cased here). WedSync context comes from ``metadata.wedding_id`` and
``metadata.supplier_id``. A Refund becomes a ``Payment`` whose id is the refund id and
whose ``amount_refunded`` is the refund amount (status REFUNDED once it succeeded).
Error bodies (``{"error": {type, code, decline_code, message, param}}``) become
``NormalizedError``.
"""

from __future__ import annotations

from typing import Any

from services.gateway.normalizers.base import (
    Document,
    Normalized,
    error,
    money,
    set_ts,
    str_map,
    text,
    ts_from_epoch,
)
from wedsync.gateway.v1 import gateway_pb2

PS = gateway_pb2.PaymentStatus
_INTENT_STATUS = {
    "requires_payment_method": PS.PAYMENT_STATUS_PENDING,
    "requires_confirmation": PS.PAYMENT_STATUS_PENDING,
    "requires_capture": PS.PAYMENT_STATUS_PROCESSING,
    "requires_action": PS.PAYMENT_STATUS_REQUIRES_ACTION,
    "processing": PS.PAYMENT_STATUS_PROCESSING,
    "succeeded": PS.PAYMENT_STATUS_SUCCEEDED,
    "canceled": PS.PAYMENT_STATUS_CANCELLED,
}
_CHARGE_STATUS = {
    "pending": PS.PAYMENT_STATUS_PROCESSING,
    "succeeded": PS.PAYMENT_STATUS_SUCCEEDED,
    "failed": PS.PAYMENT_STATUS_FAILED,
}
_REFUND_STATUS = {
    "pending": PS.PAYMENT_STATUS_PROCESSING,
    "requires_action": PS.PAYMENT_STATUS_REQUIRES_ACTION,
    "succeeded": PS.PAYMENT_STATUS_REFUNDED,
    "failed": PS.PAYMENT_STATUS_FAILED,
    "canceled": PS.PAYMENT_STATUS_CANCELLED,
}


def normalize_stripe(doc: Document) -> Normalized | None:
    body = doc.body
    if not isinstance(body, dict):
        return None
    if doc.status_code >= 400 or "error" in body:
        err = body.get("error")
        if not isinstance(err, dict):
            return None
        return Normalized("error", _error(doc.status_code, err))
    kind = body.get("object")
    if kind == "list":
        items = body.get("data")
        if not isinstance(items, list):
            return None
        maybe = [_payment(item) for item in items]
        payments = [p for p in maybe if p is not None]
        if len(payments) != len(maybe):
            return None  # a list of something else (customers, events, ...)
        has_more = bool(body.get("has_more"))
        cursor = text(items[-1].get("id")) if has_more and items else ""
        return Normalized(
            "payment_list",
            gateway_pb2.PaymentList(payments=payments, has_more=has_more, next_cursor=cursor),
        )
    payment = _payment(body)
    return None if payment is None else Normalized("payment", payment)


def _payment(obj: Any) -> gateway_pb2.Payment | None:
    if not isinstance(obj, dict):
        return None
    kind = obj.get("object")
    if kind == "payment_intent":
        return _intent(obj)
    if kind == "charge":
        return _charge(obj)
    if kind == "refund":
        return _refund(obj)
    return None


def _common(obj: dict[str, Any]) -> gateway_pb2.Payment:
    metadata = str_map(obj.get("metadata"))
    p = gateway_pb2.Payment(
        id=text(obj.get("id")),
        provider="stripe",
        description=text(obj.get("description")),
        metadata=metadata,
        wedding_id=metadata.get("wedding_id", ""),
        supplier_id=metadata.get("supplier_id", ""),
    )
    currency = obj.get("currency")
    p.amount.CopyFrom(money(obj.get("amount"), currency))
    customer = obj.get("customer")
    if isinstance(customer, dict):
        p.customer_id = text(customer.get("id"))
        p.customer_email = text(customer.get("email"))
    else:
        p.customer_id = text(customer)
    set_ts(p, "created", ts_from_epoch(obj.get("created")))
    return p


def _intent(obj: dict[str, Any]) -> gateway_pb2.Payment:
    p = _common(obj)
    status = text(obj.get("status"))
    p.status = _INTENT_STATUS.get(status, PS.PAYMENT_STATUS_UNSPECIFIED)
    currency = obj.get("currency")
    p.amount_received.CopyFrom(money(obj.get("amount_received") or 0, currency))
    p.amount_refunded.CopyFrom(money(0, currency))
    if not p.customer_email:
        p.customer_email = text(obj.get("receipt_email"))
    types = obj.get("payment_method_types")
    if isinstance(types, list) and types:
        p.payment_method_type = text(types[0])
    charge = obj.get("latest_charge")
    if isinstance(charge, dict):  # expanded: refunds are only visible on the charge
        refunded = charge.get("amount_refunded") or 0
        p.amount_refunded.CopyFrom(money(refunded, currency))
        _refund_status(p, refunded, obj.get("amount"))
    err = obj.get("last_payment_error")
    if isinstance(err, dict):
        p.last_error.CopyFrom(_error(402, err))
        if status == "requires_payment_method":
            p.status = PS.PAYMENT_STATUS_FAILED
    set_ts(p, "updated", ts_from_epoch(obj.get("canceled_at")))
    return p


def _charge(obj: dict[str, Any]) -> gateway_pb2.Payment:
    p = _common(obj)
    currency = obj.get("currency")
    p.status = _CHARGE_STATUS.get(text(obj.get("status")), PS.PAYMENT_STATUS_UNSPECIFIED)
    captured = obj.get("amount_captured")
    received = captured if captured is not None else (obj.get("amount") if obj.get("paid") else 0)
    p.amount_received.CopyFrom(money(received or 0, currency))
    refunded = obj.get("amount_refunded") or 0
    p.amount_refunded.CopyFrom(money(refunded, currency))
    billing = obj.get("billing_details")
    email = billing.get("email") if isinstance(billing, dict) else None
    p.customer_email = p.customer_email or text(email or obj.get("receipt_email"))
    details = obj.get("payment_method_details")
    if isinstance(details, dict):
        p.payment_method_type = text(details.get("type"))
    if p.status == PS.PAYMENT_STATUS_SUCCEEDED:
        _refund_status(p, refunded, obj.get("amount"))
    if obj.get("failure_code") or obj.get("failure_message"):
        p.last_error.CopyFrom(
            error(402, type="card_error", code=obj.get("failure_code"), message=obj.get("failure_message"))
        )
    return p


def _refund(obj: dict[str, Any]) -> gateway_pb2.Payment:
    p = _common(obj)
    currency = obj.get("currency")
    p.status = _REFUND_STATUS.get(text(obj.get("status")), PS.PAYMENT_STATUS_UNSPECIFIED)
    p.amount_received.CopyFrom(money(0, currency))
    p.amount_refunded.CopyFrom(money(obj.get("amount"), currency))
    if obj.get("failure_reason"):
        p.last_error.CopyFrom(error(402, type="refund_error", code=obj.get("failure_reason")))
    return p


def _refund_status(p: gateway_pb2.Payment, refunded: Any, amount: Any) -> None:
    if isinstance(refunded, int) and refunded > 0:
        full = isinstance(amount, int) and refunded >= amount
        p.status = PS.PAYMENT_STATUS_REFUNDED if full else PS.PAYMENT_STATUS_PARTIALLY_REFUNDED


def _error(http_status: int, err: dict[str, Any]) -> gateway_pb2.NormalizedError:
    return error(
        http_status,
        type=err.get("type"),
        code=err.get("code"),
        decline_code=err.get("decline_code"),
        message=err.get("message"),
        param=err.get("param"),
    )
