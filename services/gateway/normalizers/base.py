"""What every normaliser gets and returns, and small shared converters."""

from __future__ import annotations

import datetime
import math
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


_INT64_MAX = 2**63 - 1
_INT32_MAX = 2**31 - 1


def money(amount: Any, currency: Any) -> events_pb2.Money:
    """A provider amount as ``Money``; ValueError unless it is readable as stated.

    Amounts here are what was asked, paid, refunded or quoted, never adjustments, so they
    are not negative (``events.proto``: negative values appear only for adjustments). A
    currency is three ASCII letters: ``str.isalpha`` alone accepts "ßab" ("SSAB" upper-cased)."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise ValueError(f"amount {str(amount)[:32]!r} is not an integer number of minor units")
    if amount < 0:
        raise ValueError(f"amount {amount} is negative; only adjustments may be, not this amount")
    if amount > _INT64_MAX:
        raise ValueError(f"amount {str(amount)[:32]} is past the int64 range of minor units")
    if not (isinstance(currency, str) and len(currency) == 3 and currency.isascii() and currency.isalpha()):
        raise ValueError(f"currency {str(currency)[:16]!r} is not an ISO 4217 code (three letters A-Z)")
    return events_pb2.Money(amount_minor=amount, currency=currency.upper())


def number(value: Any, field: str, low: float, high: float) -> float:
    """``value`` (a number or numeric string; absent = 0) within ``[low, high]``; ValueError
    for NaN, infinities and anything outside, which a plain ``float()`` would pass on."""
    if value is None or value == "":
        return 0.0
    if isinstance(value, bool):
        raise ValueError(f"{field} {value!r} is not a number")
    x = float(value)  # ValueError / TypeError for non-numbers
    if not math.isfinite(x) or not low <= x <= high:
        raise ValueError(f"{field} {str(value)[:32]} is not a number within {low:g}..{high:g}")
    return x


def count(value: Any, field: str) -> int:
    """A non-negative whole number that fits ``int32`` (absent = 0), e.g. a review count."""
    if value is None or value == "":
        return 0
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ValueError(f"{field} {str(value)[:32]} is not a whole number")
    n = int(value)  # ValueError / TypeError for non-numbers
    if not 0 <= n <= _INT32_MAX:
        raise ValueError(f"{field} {str(value)[:32]} is not a count within 0..{_INT32_MAX}")
    return n


# google.protobuf.Timestamp covers 0001-01-01 to 9999-12-31 (UTC).
_MIN_EPOCH_S, _MAX_EPOCH_S = -62_135_596_800, 253_402_300_799


def ts_from_epoch(value: Any) -> timestamp_pb2.Timestamp | None:
    """Unix seconds → Timestamp; None when absent; ValueError for NaN, inf or years outside 1-9999."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not _MIN_EPOCH_S <= value <= _MAX_EPOCH_S:  # NaN compares False too
        raise ValueError(f"time {str(value)[:32]} is not Unix seconds within years 1-9999")
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
    try:
        utc = when.astimezone(datetime.UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00+01:00 is before year 1 in UTC
        raise ValueError(f"time {value[:40]!r} is outside years 1-9999 in UTC") from None
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(utc)
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
