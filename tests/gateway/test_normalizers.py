"""Normalisers: Stripe, Postmark and supplier bodies → canonical messages; unknown → raw."""

from __future__ import annotations

import json

import pytest

from services.gateway.normalizers import NORMALIZERS, Document
from tests.gateway.conftest import invoke, upstream_table
from wedsync.gateway.v1 import gateway_pb2

PS = gateway_pb2.PaymentStatus
ES = gateway_pb2.EmailStatus

PAYMENT_INTENT = {
    "id": "pi_3MtwBwLkdIwHu7ix28a3tqPa",
    "object": "payment_intent",
    "amount": 2000,
    "amount_received": 2000,
    "currency": "gbp",
    "customer": "cus_NffrFeUfNV2Hib",
    "created": 1680800504,
    "description": "Deposit",
    "last_payment_error": None,
    "latest_charge": "ch_3MtwBwLkdIwHu7ix28a3tqPa",
    "metadata": {"wedding_id": "w-1", "supplier_id": "s-9", "note": "x"},
    "payment_method_types": ["card"],
    "receipt_email": "couple@example.com",
    "status": "succeeded",
}
CHARGE = {
    "id": "ch_3MmlLrLkdIwHu7ix0snN0B15",
    "object": "charge",
    "amount": 1099,
    "amount_captured": 1099,
    "amount_refunded": 500,
    "billing_details": {"email": "pay@example.com"},
    "created": 1679090539,
    "currency": "usd",
    "customer": None,
    "failure_code": None,
    "failure_message": None,
    "metadata": {},
    "paid": True,
    "payment_intent": None,
    "payment_method_details": {"type": "card"},
    "refunded": False,
    "status": "succeeded",
}
REFUND = {
    "id": "re_1Nispe2eZvKYlo2Cd31jOCgZ",
    "object": "refund",
    "amount": 1000,
    "charge": "ch_1NirD82eZvKYlo2CIvbtLWuY",
    "created": 1692942318,
    "currency": "eur",
    "metadata": {"wedding_id": "w-2"},
    "payment_intent": "pi_1GszsK2eZvKYlo2CfhZyoZLp",
    "reason": None,
    "status": "succeeded",
}


def run(name: str, body, status: int = 200, query=()) -> gateway_pb2.InvokeResponse:
    result = NORMALIZERS[name](Document(status, body, "GET", "/x", list(query)))
    reply = gateway_pb2.InvokeResponse()
    if result is not None:
        getattr(reply, result.field).CopyFrom(result.message)
    return reply


def test_stripe_payment_intent() -> None:
    """A PaymentIntent becomes a Payment with minor units, ISO currency and WedSync metadata."""
    p = run("stripe", PAYMENT_INTENT).payment
    assert p.id == "pi_3MtwBwLkdIwHu7ix28a3tqPa" and p.provider == "stripe"
    assert p.status == PS.PAYMENT_STATUS_SUCCEEDED
    assert (p.amount.amount_minor, p.amount.currency) == (2000, "GBP")
    assert p.amount_received.amount_minor == 2000
    assert (p.wedding_id, p.supplier_id) == ("w-1", "s-9")
    assert p.metadata["note"] == "x"
    assert p.customer_id == "cus_NffrFeUfNV2Hib" and p.customer_email == "couple@example.com"
    assert p.payment_method_type == "card"
    assert p.created.seconds == 1680800504


def test_stripe_failed_intent_carries_last_error() -> None:
    """An intent back at requires_payment_method with a last_payment_error is FAILED with the decline."""
    body = dict(
        PAYMENT_INTENT,
        status="requires_payment_method",
        amount_received=0,
        last_payment_error={
            "type": "card_error",
            "code": "card_declined",
            "decline_code": "insufficient_funds",
            "message": "Your card has insufficient funds.",
        },
    )
    p = run("stripe", body).payment
    assert p.status == PS.PAYMENT_STATUS_FAILED
    assert p.last_error.code == "card_declined" and p.last_error.decline_code == "insufficient_funds"


def test_stripe_partially_refunded_charge() -> None:
    """A succeeded charge with part of it refunded is PARTIALLY_REFUNDED, with the refunded amount."""
    p = run("stripe", CHARGE).payment
    assert p.status == PS.PAYMENT_STATUS_PARTIALLY_REFUNDED
    assert (p.amount_refunded.amount_minor, p.amount_refunded.currency) == (500, "USD")
    assert p.customer_email == "pay@example.com"
    full = run("stripe", dict(CHARGE, amount_refunded=1099, refunded=True)).payment
    assert full.status == PS.PAYMENT_STATUS_REFUNDED


def test_stripe_refund() -> None:
    """A succeeded Refund becomes a REFUNDED payment record with the refunded amount."""
    p = run("stripe", REFUND).payment
    assert p.id.startswith("re_") and p.status == PS.PAYMENT_STATUS_REFUNDED
    assert (p.amount_refunded.amount_minor, p.amount_refunded.currency) == (1000, "EUR")
    assert p.wedding_id == "w-2"


def test_stripe_list_and_error() -> None:
    """Lists become PaymentList with a cursor; error bodies become NormalizedError."""
    listing = run(
        "stripe", {"object": "list", "data": [PAYMENT_INTENT, CHARGE], "has_more": True}
    ).payment_list
    assert [p.id for p in listing.payments] == [PAYMENT_INTENT["id"], CHARGE["id"]]
    assert listing.has_more and listing.next_cursor == CHARGE["id"]
    err = run(
        "stripe",
        {
            "error": {
                "type": "invalid_request_error",
                "code": "resource_missing",
                "param": "id",
                "message": "No such payment_intent: 'pi_x'",
            }
        },
        status=404,
    ).error
    assert (err.http_status, err.type, err.code, err.param) == (
        404,
        "invalid_request_error",
        "resource_missing",
        "id",
    )


def test_stripe_unknown_shape_is_not_normalised() -> None:
    """Objects the normaliser does not know (a customer) are left raw."""
    assert NORMALIZERS["stripe"](Document(200, {"object": "customer", "id": "cus_1"}, "GET", "/", [])) is None


def test_postmark_send_and_batch() -> None:
    """Postmark's send response is QUEUED; a batch with a rejected entry marks that one FAILED."""
    sent = {
        "To": "a@example.com, b@example.com",
        "SubmittedAt": "2014-02-17T07:25:01.4178645-05:00",
        "MessageID": "0a129aee-e1cd-480d-b08d-4f48548ff48d",
        "ErrorCode": 0,
        "Message": "OK",
    }
    m = run("postmark", sent).email
    assert m.status == ES.EMAIL_STATUS_QUEUED and list(m.to) == ["a@example.com", "b@example.com"]
    assert m.created.seconds == 1392639901
    bad = {
        "ErrorCode": 406,
        "Message": "You tried to send to a recipient that has been marked as inactive.",
        "MessageID": "",
        "To": "c@example.com",
        "SubmittedAt": "2014-02-17T07:25:01-05:00",
    }
    batch = run("postmark", [sent, bad]).email_list
    assert [x.status for x in batch.messages] == [ES.EMAIL_STATUS_QUEUED, ES.EMAIL_STATUS_FAILED]
    assert batch.messages[1].last_error.code == "406"


def test_postmark_message_details_with_events() -> None:
    """Outbound message details take the furthest event reached (opened) with its times and metadata."""
    details = {
        "MessageID": "07311c54-0687-4ab9-b034-b54b5bad88ba",
        "Status": "Sent",
        "Tag": "invitation",
        "From": '"Planner" <planner@example.com>',
        "Subject": "Save the date",
        "To": [{"Email": "guest@example.com", "Name": "Guest"}],
        "Cc": [],
        "Bcc": [],
        "ReceivedAt": "2024-05-01T10:00:00Z",
        "Metadata": {"wedding_id": "w-7"},
        "MessageEvents": [
            {"Recipient": "guest@example.com", "Type": "Delivered", "ReceivedAt": "2024-05-01T10:00:05Z"},
            {"Recipient": "guest@example.com", "Type": "Opened", "ReceivedAt": "2024-05-01T11:00:00Z"},
        ],
    }
    m = run("postmark", details).email
    assert m.status == ES.EMAIL_STATUS_OPENED
    assert list(m.to) == ["Guest <guest@example.com>"] and list(m.tags) == ["invitation"]
    assert m.wedding_id == "w-7" and m.delivered_at.seconds < m.opened_at.seconds
    bounced = dict(
        details,
        MessageEvents=[
            {
                "Type": "Bounced",
                "ReceivedAt": "2024-05-01T10:01:00Z",
                "Details": {"Summary": "mailbox full", "BounceID": "42"},
            }
        ],
    )
    b = run("postmark", bounced).email
    assert b.status == ES.EMAIL_STATUS_BOUNCED and b.last_error.message == "mailbox full"


def test_postmark_search_paging_and_error() -> None:
    """Outbound search pages by offset; a 422 error body becomes NormalizedError."""
    summary = {"MessageID": "m1", "Status": "Sent", "To": [{"Email": "x@example.com", "Name": None}]}
    page = run(
        "postmark", {"TotalCount": 3, "Messages": [summary, summary]}, query=[("count", "2"), ("offset", "0")]
    )
    assert page.email_list.has_more and page.email_list.next_cursor == "2"
    err = run("postmark", {"ErrorCode": 300, "Message": "Invalid email request"}, status=422).error
    assert (err.http_status, err.code, err.message) == (422, "300", "Invalid email request")


SUPPLIER = {
    "id": "sup_1",
    "name": "Bloom & Petal",
    "category": "Florist",
    "wedsync_supplier_id": "s-9",
    "location": {
        "address": ["1 High St"],
        "city": "Bath",
        "postcode": "BA1 1AA",
        "country": "gb",
        "lat": 51.38,
        "lng": -2.36,
    },
    "service_radius_km": 40,
    "rating": 4.8,
    "review_count": 112,
    "contact": {
        "name": "Ann",
        "email": "ann@example.com",
        "phone": "+447700900123",
        "website": "https://x.example",
    },
    "price_from": {"amount": 45000, "currency": "gbp"},
    "availability": [
        {"start": "2026-06-01T00:00:00Z", "end": "2026-06-02T00:00:00Z", "available": True, "capacity": 2}
    ],
    "tags": ["seasonal"],
    "updated_at": "2026-01-01T12:00:00Z",
}


def test_supplier_and_list() -> None:
    """A supplier record and a page of them become Supplier / SupplierList."""
    s = run("supplier", SUPPLIER).supplier
    assert (s.name, s.category, s.wedsync_supplier_id) == ("Bloom & Petal", "florist", "s-9")
    assert s.location.country_code == "GB" and s.location.postal_code == "BA1 1AA"
    assert (s.price_from.amount_minor, s.price_from.currency) == (45000, "GBP")
    assert s.availability[0].capacity == 2 and s.availability[0].available
    page = run("supplier", {"data": [SUPPLIER], "has_more": True, "next_cursor": "c2"}).supplier_list
    assert page.has_more and page.next_cursor == "c2" and page.suppliers[0].id == "sup_1"


def test_bad_amount_raises() -> None:
    """A known shape with an unreadable amount raises (reported as FAILED), never a wrong number."""
    with pytest.raises(ValueError):
        NORMALIZERS["stripe"](Document(200, dict(PAYMENT_INTENT, amount="20.00"), "GET", "/", []))


async def test_invoke_returns_normalised_raw_and_failed(make_upstream, gateway) -> None:
    """Through Invoke: NORMALIZED with the payment oneof, RAW when asked or unknown, FAILED on a bad body."""
    up = await make_upstream(body=PAYMENT_INTENT)
    stub = await gateway({"stripe": upstream_table([up.url], normalizer="stripe")})
    reply = await stub.Invoke(invoke("stripe", "/v1/payment_intents/pi_1"), timeout=10)
    assert reply.normalization == gateway_pb2.NORMALIZATION_STATUS_NORMALIZED
    assert reply.WhichOneof("normalized") == "payment" and reply.payment.amount.currency == "GBP"
    assert json.loads(reply.body) == PAYMENT_INTENT
    raw = await stub.Invoke(invoke("stripe", raw_only=True), timeout=10)
    assert raw.normalization == gateway_pb2.NORMALIZATION_STATUS_RAW and not raw.WhichOneof("normalized")
    up.body = {"object": "customer", "id": "cus_1"}
    unknown = await stub.Invoke(invoke("stripe"), timeout=10)
    assert unknown.normalization == gateway_pb2.NORMALIZATION_STATUS_RAW
    up.body = dict(PAYMENT_INTENT, currency="pounds")
    failed = await stub.Invoke(invoke("stripe"), timeout=10)
    assert failed.normalization == gateway_pb2.NORMALIZATION_STATUS_FAILED
    assert "currency" in failed.normalization_error
    up.status, up.body = 402, {"error": {"type": "card_error", "code": "card_declined"}}
    declined = await stub.Invoke(invoke("stripe"), timeout=10)
    assert declined.status_code == 402 and declined.error.code == "card_declined"


UNREADABLE = {
    "stripe-created-inf": (
        "stripe",
        b'{"id": "pi_1", "object": "payment_intent", "amount": 1, "currency": "gbp", "created": 1e999}',
    ),
    "stripe-created-1e300": (
        "stripe",
        b'{"id": "ch_1", "object": "charge", "amount": 1, "currency": "gbp", "created": 1e300}',
    ),
    "stripe-created-nan": (
        "stripe",
        b'{"id": "re_1", "object": "refund", "amount": 1, "currency": "gbp", "created": NaN}',
    ),
    "stripe-deeply-nested": ("stripe", b"[" * 100_000 + b"]" * 100_000),
    "stripe-integer-too-long": (
        "stripe",
        b'{"id": "pi_1", "object": "payment_intent", "amount": ' + b"9" * 5000 + b', "currency": "gbp"}',
    ),
    "supplier-review-count-inf": ("supplier", b'{"id": "s1", "name": "Bloom", "review_count": 1e999}'),
    "supplier-capacity-inf": (
        "supplier",
        b'{"id": "s1", "name": "Bloom", "availability": [{"capacity": 1e999}]}',
    ),
    "supplier-slot-not-object": ("supplier", b'{"id": "s1", "name": "Bloom", "availability": [1]}'),
    "supplier-updated-past-9999": (
        "supplier",
        b'{"id": "s1", "name": "Bloom", "updated_at": "9999-12-31T23:59:59-01:00"}',
    ),
    "postmark-total-inf": ("postmark", b'{"TotalCount": 1e999, "Messages": []}'),
    "postmark-received-before-year-1": (
        "postmark",
        b'{"MessageID": "m1", "Status": "Sent", "ReceivedAt": "0001-01-01T00:00:00+01:00"}',
    ),
}


@pytest.mark.parametrize("normalizer,raw", list(UNREADABLE.values()), ids=list(UNREADABLE))
async def test_unreadable_bodies_are_failed_not_internal(
    make_upstream, gateway, normalizer: str, raw: bytes
) -> None:
    """Numbers past int/float range, times outside years 1-9999 and nesting deeper than the parser
    goes: the raw answer with NORMALIZATION_STATUS_FAILED and a reason, never INTERNAL."""
    up = await make_upstream(raw=raw)
    stub = await gateway({"svc": upstream_table([up.url], normalizer=normalizer)})
    reply = await stub.Invoke(invoke("svc"), timeout=10)
    assert reply.status_code == 200 and reply.body == raw
    assert reply.normalization == gateway_pb2.NORMALIZATION_STATUS_FAILED
    assert reply.normalization_error.startswith(f"{normalizer} normaliser could not read the body: ")
    assert len(reply.normalization_error) < 300
    assert not reply.WhichOneof("normalized")


async def test_binary_body_stays_raw(make_upstream, gateway) -> None:
    """A body that is not JSON at all (not even UTF-8) is RAW, not FAILED: it is no known shape."""
    up = await make_upstream(raw=b"\xff\xfe%PDF-1.7 \x00\x01")
    stub = await gateway({"svc": upstream_table([up.url], normalizer="stripe")})
    reply = await stub.Invoke(invoke("svc"), timeout=10)
    assert reply.normalization == gateway_pb2.NORMALIZATION_STATUS_RAW and reply.body == up.raw


INVALID_VALUES = {
    "currency-non-ascii-letters": ("stripe", dict(PAYMENT_INTENT, currency="ßab"), "currency"),
    "currency-accented": ("stripe", dict(PAYMENT_INTENT, currency="éur"), "currency"),
    "currency-digits": ("stripe", dict(PAYMENT_INTENT, currency="us1"), "currency"),
    "negative-amount": ("stripe", dict(PAYMENT_INTENT, amount=-2000), "negative"),
    "negative-received": ("stripe", dict(PAYMENT_INTENT, amount_received=-1), "negative"),
    "negative-refund": ("stripe", dict(REFUND, amount=-1000), "negative"),
    "negative-refunded-on-charge": ("stripe", dict(CHARGE, amount_refunded=-5), "negative"),
    "amount-past-int64": ("stripe", dict(PAYMENT_INTENT, amount=2**63), "amount"),
    "rating-above-5": ("supplier", dict(SUPPLIER, rating=5.1), "rating"),
    "rating-negative": ("supplier", dict(SUPPLIER, rating=-0.5), "rating"),
    "rating-nan": ("supplier", dict(SUPPLIER, rating=float("nan")), "rating"),
    "rating-inf": ("supplier", dict(SUPPLIER, rating=float("inf")), "rating"),
    "rating-nan-string": ("supplier", dict(SUPPLIER, rating="nan"), "rating"),
    "review-count-negative": ("supplier", dict(SUPPLIER, review_count=-1), "review_count"),
    "review-count-past-int32": ("supplier", dict(SUPPLIER, review_count=2**31), "review_count"),
    "radius-nan": ("supplier", dict(SUPPLIER, service_radius_km=float("nan")), "service_radius_km"),
    "latitude-out-of-range": ("supplier", dict(SUPPLIER, location={"lat": 91, "lng": 0}), "latitude"),
    "longitude-inf": ("supplier", dict(SUPPLIER, location={"lat": 0, "lng": float("-inf")}), "longitude"),
    "capacity-negative": ("supplier", dict(SUPPLIER, availability=[{"capacity": -2}]), "capacity"),
    "price-negative": ("supplier", dict(SUPPLIER, price_from={"amount": -1, "currency": "gbp"}), "negative"),
}


@pytest.mark.parametrize("name,body,word", list(INVALID_VALUES.values()), ids=list(INVALID_VALUES))
def test_values_outside_their_domain_fail(name: str, body: dict, word: str) -> None:
    """Currencies are three ASCII letters, amounts never negative (events.proto: only adjustments
    are), ratings 0-5, counts and coordinates in range: otherwise the body is unreadable, not guessed."""
    with pytest.raises(ValueError) as err:
        NORMALIZERS[name](Document(200, body, "GET", "/", []))
    assert word in str(err.value)


def test_values_at_the_edges_are_read() -> None:
    """Zero amounts, ratings of exactly 0 and 5, numeric strings and absent values still normalise."""
    intent = run("stripe", dict(PAYMENT_INTENT, amount=0, amount_received=0, currency="JPY")).payment
    assert (intent.amount.amount_minor, intent.amount.currency) == (0, "JPY")
    for rating in (0, 5, "4.5", None):
        supplier = run("supplier", dict(SUPPLIER, rating=rating, review_count="3")).supplier
        assert supplier.rating == float(rating or 0) and supplier.review_count == 3
    bare = run("supplier", {"id": "s", "name": "n"}).supplier
    assert bare.rating == 0 and bare.review_count == 0 and bare.service_radius_km == 0


async def test_invalid_currency_and_nan_rating_through_invoke(make_upstream, gateway) -> None:
    """Through Invoke, a non-ASCII currency and a NaN rating are FAILED with the reason — no guessed value."""
    up = await make_upstream(body=dict(PAYMENT_INTENT, currency="ßab"))
    stub = await gateway(
        {
            "pay": upstream_table([up.url], normalizer="stripe"),
            "dir": upstream_table([up.url], normalizer="supplier"),
        }
    )
    reply = await stub.Invoke(invoke("pay"), timeout=10)
    assert reply.normalization == gateway_pb2.NORMALIZATION_STATUS_FAILED
    assert "currency" in reply.normalization_error and not reply.WhichOneof("normalized")
    up.raw = b'{"id": "s1", "name": "Bloom", "rating": NaN}'
    reply = await stub.Invoke(invoke("dir"), timeout=10)
    assert (
        reply.normalization == gateway_pb2.NORMALIZATION_STATUS_FAILED
        and "rating" in reply.normalization_error
    )


POSTMARK_SENT = {"To": "a@example.com", "MessageID": "m1", "ErrorCode": 0, "Message": "OK"}
POSTMARK_GARBLED_INTEGERS = {
    "error-code-word": ("ErrorCode", dict(POSTMARK_SENT, ErrorCode="oops"), []),
    "error-code-fraction": ("ErrorCode", dict(POSTMARK_SENT, ErrorCode=406.5), []),
    "error-code-negative": ("ErrorCode", dict(POSTMARK_SENT, ErrorCode=-1), []),
    "error-code-bool": ("ErrorCode", dict(POSTMARK_SENT, ErrorCode=False), []),
    "error-code-object": ("ErrorCode", dict(POSTMARK_SENT, ErrorCode={"code": 406}), []),
    "total-count-word": ("TotalCount", {"TotalCount": "lots", "Messages": []}, []),
    "total-count-arabic-digit": ("TotalCount", {"TotalCount": "٣", "Messages": []}, []),
    "offset-padded": ("offset", {"TotalCount": 3, "Messages": []}, [("offset", " 2")]),
    "offset-word": ("offset", {"TotalCount": 3, "Messages": []}, [("offset", "ten")]),
}


@pytest.mark.parametrize(
    "field,body,query", list(POSTMARK_GARBLED_INTEGERS.values()), ids=list(POSTMARK_GARBLED_INTEGERS)
)
def test_postmark_garbled_integer_is_an_error_not_zero(field: str, body: dict, query: list) -> None:
    """A Postmark integer (ErrorCode, TotalCount, the asked offset) that is not a whole number
    raises naming the field, instead of being read as 0 (a rejected send reported QUEUED)."""
    with pytest.raises(ValueError) as err:
        NORMALIZERS["postmark"](Document(200, body, "GET", "/email", query))
    assert field in str(err.value)


def test_postmark_integers_as_sent_are_read() -> None:
    """Integers, whole floats, digit strings and absent values are still read (absent = 0)."""
    assert run("postmark", dict(POSTMARK_SENT, ErrorCode="406")).email.status == ES.EMAIL_STATUS_FAILED
    assert run("postmark", dict(POSTMARK_SENT, ErrorCode=0.0)).email.status == ES.EMAIL_STATUS_QUEUED
    assert run("postmark", dict(POSTMARK_SENT, ErrorCode=None)).email.status == ES.EMAIL_STATUS_QUEUED
    page = run("postmark", {"TotalCount": "5", "Messages": []}, query=[("offset", "2")]).email_list
    assert page.has_more and page.next_cursor == "2"


async def test_postmark_garbled_error_code_through_invoke_is_failed(make_upstream, gateway) -> None:
    """Through Invoke, a send answer with a garbled ErrorCode is FAILED naming it — not a QUEUED email."""
    up = await make_upstream(body=dict(POSTMARK_SENT, ErrorCode="oops"))
    stub = await gateway({"mail": upstream_table([up.url], normalizer="postmark")})
    reply = await stub.Invoke(invoke("mail", method="POST", body=b"{}"), timeout=10)
    assert reply.status_code == 200
    assert reply.normalization == gateway_pb2.NORMALIZATION_STATUS_FAILED
    assert "ErrorCode" in reply.normalization_error and not reply.WhichOneof("normalized")


async def test_postmark_empty_offset_is_no_offset(make_upstream, gateway) -> None:
    """`offset=` (empty, as a caller's query may send it) means no offset, i.e. 0 — it used to
    fail normalisation as a garbled integer. A TotalCount sent as "" is still the upstream's garble."""
    summary = {"MessageID": "m1", "Status": "Sent", "To": "x@example.com"}
    up = await make_upstream(body={"TotalCount": 3, "Messages": [summary, summary]})
    stub = await gateway({"mail": upstream_table([up.url], normalizer="postmark")})
    query = [gateway_pb2.QueryParameter(key="count", value="2"), gateway_pb2.QueryParameter(key="offset")]
    reply = await stub.Invoke(invoke("mail", "/messages/outbound", query=query), timeout=10)
    assert reply.normalization == gateway_pb2.NORMALIZATION_STATUS_NORMALIZED, reply.normalization_error
    assert reply.email_list.has_more and reply.email_list.next_cursor == "2"
    assert up.requests[0].query == "count=2&offset="
    with pytest.raises(ValueError, match="TotalCount"):
        run("postmark", {"TotalCount": "", "Messages": []}, query=[("offset", "")])
