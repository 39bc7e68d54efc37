"""What every normaliser gets and returns, and small shared converters."""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Any

from google.protobuf import timestamp_pb2
from google.protobuf.message import Message

from wedsync.events.v1 import events_pb2
from wedsync.gateway.v1 import gateway_pb2

# ISO 4217 currencies with no minor unit or three: amounts are already in minor units at
# the providers we normalise (Stripe does the same), so this only documents the contract.


@dataclass(frozen=True)
class Document:
    """A parsed upstream response and the request it answered."""

    status_code: int
    body: Any  # parsed JSON
    method: str
    path: str
    query: list[tuple[str, str]]


@dataclass(frozen=True)
class Normalized:
    """Which ``InvokeResponse.normalized`` case to fill, and with what."""

    field: str
    message: Message


def money(amount: Any, currency: Any) -> events_pb2.Money:
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise ValueError(f"amount {amount!r} is not an integer number of minor units")
    if not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha():
        raise ValueError(f"currency {currency!r} is not an ISO 4217 code")
    return events_pb2.Money(amount_minor=amount, currency=currency.upper())


def ts_from_epoch(value: Any) -> timestamp_pb2.Timestamp | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromSeconds(int(value))
    return ts


def ts_from_iso(value: Any) -> timestamp_pb2.Timestamp | None:
    """ISO 8601 (with 'Z' or an offset, up to 7 fraction digits as Postmark sends)."""
    if not isinstance(value, str) or not value:
        return None
    text = value.replace("Z", "+00:00")
    text = re.sub(r"\.(\d+)", lambda m: "." + m.group(1)[:6].ljust(6, "0"), text, count=1)
    when = datetime.datetime.fromisoformat(text)
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(when.astimezone(datetime.UTC))
    return ts


def set_ts(message: Message, field: str, value: timestamp_pb2.Timestamp | None) -> None:
    if value is not None:
        getattr(message, field).CopyFrom(value)


def str_map(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): "" if v is None else str(v) for k, v in value.items()}


def text(value: Any) -> str:
    return "" if value is None else str(value)


def error(http_status: int, **fields: Any) -> gateway_pb2.NormalizedError:
    return gateway_pb2.NormalizedError(http_status=http_status, **{k: text(v) for k, v in fields.items()})
