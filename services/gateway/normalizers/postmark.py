"""Postmark (https://postmarkapp.com/developer) → ``EmailMessage``.

Shapes recognised (by their fields, so template and stream variants work too):

* send response (``POST /email``, ``/email/withTemplate``):
  ``{"To", "SubmittedAt", "MessageID", "ErrorCode", "Message"}`` → QUEUED, or FAILED with
  ``last_error`` when ``ErrorCode`` is not 0;
* batch send response (``POST /email/batch``): a JSON array of those → ``email_list``;
* outbound message details/summary (``GET /messages/outbound/{id}/details``): ``Status``,
  ``From``, ``To``/``Cc``/``Bcc`` as ``[{"Email", "Name"}]``, ``Subject``, ``Tag``,
  ``Metadata``, ``ReceivedAt`` and ``MessageEvents`` (Delivered, Opened, Bounced,
  SpamComplaint) → the furthest status reached, with its time;
* outbound search (``GET /messages/outbound``): ``{"TotalCount", "Messages"}`` →
  ``email_list`` (``has_more`` from ``offset`` + page size vs ``TotalCount``; the cursor is
  the next ``offset``);
* error bodies (HTTP 4xx/5xx ``{"ErrorCode", "Message"}``) → ``NormalizedError``.

WedSync context comes from ``Metadata.wedding_id`` / ``Metadata.supplier_id``.
"""

from __future__ import annotations

from typing import Any

from services.gateway.normalizers.base import Document, Normalized, error, set_ts, str_map, text, ts_from_iso
from wedsync.gateway.v1 import gateway_pb2

ES = gateway_pb2.EmailStatus
_STATUS = {"queued": ES.EMAIL_STATUS_QUEUED, "sent": ES.EMAIL_STATUS_SENT, "processed": ES.EMAIL_STATUS_SENT}
_RANK = [
    ES.EMAIL_STATUS_UNSPECIFIED,
    ES.EMAIL_STATUS_QUEUED,
    ES.EMAIL_STATUS_SENT,
    ES.EMAIL_STATUS_DELIVERED,
    ES.EMAIL_STATUS_OPENED,
    ES.EMAIL_STATUS_BOUNCED,
    ES.EMAIL_STATUS_COMPLAINED,
    ES.EMAIL_STATUS_FAILED,
]


def normalize_postmark(doc: Document) -> Normalized | None:
    body = doc.body
    if doc.status_code >= 400:
        if isinstance(body, dict) and "ErrorCode" in body:
            return Normalized(
                "error", error(doc.status_code, code=body.get("ErrorCode"), message=body.get("Message"))
            )
        return None
    if isinstance(body, list):
        if not body or not all(_is_send(item) for item in body):
            return None
        return Normalized("email_list", gateway_pb2.EmailMessageList(messages=[_send(i) for i in body]))
    if not isinstance(body, dict):
        return None
    if _is_send(body):
        return Normalized("email", _send(body))
    if "MessageID" in body and "Status" in body:
        return Normalized("email", _message(body))
    if isinstance(body.get("Messages"), list) and "TotalCount" in body:
        messages = [_message(m) for m in body["Messages"]]
        offset = _int(dict(doc.query).get("offset") or None, "offset")  # "offset=" is no offset
        total = _int(body.get("TotalCount"), "TotalCount")
        has_more = offset + len(messages) < total
        return Normalized(
            "email_list",
            gateway_pb2.EmailMessageList(
                messages=messages,
                has_more=has_more,
                next_cursor=str(offset + len(messages)) if has_more else "",
            ),
        )
    return None


def _is_send(item: Any) -> bool:
    return isinstance(item, dict) and "MessageID" in item and "ErrorCode" in item and "Status" not in item


def _send(item: dict[str, Any]) -> gateway_pb2.EmailMessage:
    failed = _int(item.get("ErrorCode"), "ErrorCode") != 0
    m = gateway_pb2.EmailMessage(
        id=text(item.get("MessageID")),
        provider="postmark",
        status=ES.EMAIL_STATUS_FAILED if failed else ES.EMAIL_STATUS_QUEUED,
        to=[a.strip() for a in text(item.get("To")).split(",") if a.strip()],
    )
    set_ts(m, "created", ts_from_iso(item.get("SubmittedAt")))
    if failed:
        m.last_error.CopyFrom(error(422, code=item.get("ErrorCode"), message=item.get("Message")))
    return m


def _message(item: dict[str, Any]) -> gateway_pb2.EmailMessage:
    metadata = str_map(item.get("Metadata"))
    tag = text(item.get("Tag"))
    m = gateway_pb2.EmailMessage(
        id=text(item.get("MessageID")),
        provider="postmark",
        status=_STATUS.get(text(item.get("Status")).lower(), ES.EMAIL_STATUS_UNSPECIFIED),
        from_address=text(item.get("From")),
        to=_addresses(item.get("To")),
        cc=_addresses(item.get("Cc")),
        bcc=_addresses(item.get("Bcc")),
        reply_to=text(item.get("ReplyTo")),
        subject=text(item.get("Subject")),
        tags=[tag] if tag else [],
        metadata=metadata,
        wedding_id=metadata.get("wedding_id", ""),
        supplier_id=metadata.get("supplier_id", ""),
    )
    set_ts(m, "created", ts_from_iso(item.get("ReceivedAt")))
    if m.status == ES.EMAIL_STATUS_SENT:
        set_ts(m, "sent_at", ts_from_iso(item.get("ReceivedAt")))
    events = item.get("MessageEvents")
    for event in events if isinstance(events, list) else []:
        if isinstance(event, dict):
            _apply_event(m, event)
    return m


def _apply_event(m: gateway_pb2.EmailMessage, event: dict[str, Any]) -> None:
    kind = text(event.get("Type"))
    at = ts_from_iso(event.get("ReceivedAt"))
    raw_details = event.get("Details")
    details: dict[str, Any] = raw_details if isinstance(raw_details, dict) else {}
    status = {
        "Delivered": ES.EMAIL_STATUS_DELIVERED,
        "Opened": ES.EMAIL_STATUS_OPENED,
        "Bounced": ES.EMAIL_STATUS_BOUNCED,
        "SpamComplaint": ES.EMAIL_STATUS_COMPLAINED,
    }.get(kind)
    if status is None:
        return
    if kind == "Delivered":
        set_ts(m, "delivered_at", at)
    elif kind == "Opened":
        set_ts(m, "opened_at", at)
    elif kind == "Bounced":
        m.last_error.CopyFrom(
            error(0, type="bounce", code=details.get("BounceID"), message=details.get("Summary"))
        )
    if _RANK.index(status) > _RANK.index(m.status):
        m.status = status


def _addresses(value: Any) -> list[str]:
    if isinstance(value, str):
        return [a.strip() for a in value.split(",") if a.strip()]
    out = []
    for entry in value if isinstance(value, list) else []:
        if isinstance(entry, dict):
            email, name = text(entry.get("Email")), text(entry.get("Name"))
            out.append(f"{name} <{email}>" if name else email)
    return out


def _int(value: Any, field: str) -> int:
    """A non-negative whole number Postmark sends (``ErrorCode``, ``TotalCount``) or the
    ``offset`` the search was asked for; absent (None) is 0, and so is an empty
    ``offset`` in the caller's query (the caller passes None for it).

    Anything else raises ValueError, so the answer is FAILED with the reason: read as 0, a
    garbled ``ErrorCode`` would report a rejected message as QUEUED and a garbled
    ``TotalCount`` would end paging early. Strings must be plain ASCII digits (``int()``
    also takes " 7", "1_0" and "٣"); floats only when whole, as JSON may write 3.0."""
    if value is None:
        return 0
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise ValueError(f"{field} {str(value)[:32]!r} is not a whole number of at least 0")
