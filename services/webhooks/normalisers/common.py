"""Helpers shared by the normalisers: safe reads from untrusted JSON, money, timestamps."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from wedsync.events.v1 import events_pb2

Doc = Mapping[str, Any]


def obj(doc: Doc, *path: str) -> Doc:
    node: Any = doc
    for part in path:
        node = node.get(part) if isinstance(node, Mapping) else None
    return node if isinstance(node, Mapping) else {}


def text(doc: Doc, name: str) -> str:
    value = doc.get(name)
    return str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else ""


def timestamp(value: Any) -> Timestamp | None:
    """Unix seconds or an ISO-8601 string → Timestamp (None when absent or unreadable)."""
    stamp = Timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        stamp.FromMilliseconds(int(value * 1000))
        return stamp
    if isinstance(value, str) and value:
        try:
            stamp.FromDatetime(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return None
        return stamp
    return None


def money(amount: Any, currency: Any) -> events_pb2.Money | None:
    if isinstance(amount, int) and not isinstance(amount, bool) and isinstance(currency, str):
        return events_pb2.Money(amount_minor=amount, currency=currency.upper())
    return None


def money_obj(doc: Doc) -> events_pb2.Money | None:
    return money(doc.get("amount_minor"), doc.get("currency")) if doc else None


def envelope(kind: str, meta: Doc, occurred: Any) -> events_pb2.WeddingEvent:
    event = events_pb2.WeddingEvent(
        type=kind, wedding_id=text(meta, "wedding_id"), supplier_id=text(meta, "supplier_id")
    )
    stamp = timestamp(occurred)
    if stamp is not None:
        event.occurred_at.CopyFrom(stamp)
    return event
