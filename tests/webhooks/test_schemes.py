"""Signature schemes against official vectors, the providers' own libraries, and properties."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.core.errors import InvalidArgument, Unauthenticated
from services.webhooks.schemes import SCHEMES, Check, prepare_keys
from tests.webhooks.payloads import email_headers, stripe_headers

SW_KEY = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SW_HEADERS = {
    "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
    "webhook-timestamp": "1614265330",
    "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
}
SW_BODY = b'{"test": 2432232314}'
GITHUB_SECRET = "It's a Secret to Everybody"
GITHUB_SIG = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def at(ts: float) -> Check:
    return Check(header="webhook-signature", now=lambda: ts)


def test_standard_webhooks_official_vector_verifies() -> None:
    """The Standard Webhooks reference vector verifies at its own timestamp."""
    SCHEMES["standard_webhooks"](
        SW_HEADERS, SW_BODY, prepare_keys("standard_webhooks", SW_KEY), at(1614265330)
    )


def test_standard_webhooks_vector_stale_and_future_rejected() -> None:
    """The same vector is refused six minutes later and six minutes earlier."""
    keys = prepare_keys("standard_webhooks", SW_KEY)
    with pytest.raises(Unauthenticated, match="too old"):
        SCHEMES["standard_webhooks"](SW_HEADERS, SW_BODY, keys, at(1614265330 + 360))
    with pytest.raises(Unauthenticated, match="future"):
        SCHEMES["standard_webhooks"](SW_HEADERS, SW_BODY, keys, at(1614265330 - 360))


def test_github_documented_example_verifies() -> None:
    """GitHub's documented X-Hub-Signature-256 example verifies; one changed byte does not."""
    verify = SCHEMES["hmac_sha256"]
    keys = prepare_keys("hmac_sha256", GITHUB_SECRET)
    check = Check(header="x-hub-signature-256")
    verify({"x-hub-signature-256": GITHUB_SIG}, b"Hello, World!", keys, check)
    with pytest.raises(Unauthenticated):
        verify({"x-hub-signature-256": GITHUB_SIG}, b"Hello, World?", keys, check)


def test_stripe_library_signature_verifies_with_rotated_secrets() -> None:
    """A header made by stripe's library verifies when its secret is any of the active ones."""
    body = b'{"id": "evt_1", "type": "charge.refunded"}'
    headers = stripe_headers(body, "whsec_new")
    check = Check(header="stripe-signature")
    SCHEMES["stripe"](headers, body, prepare_keys("stripe", "whsec_old, whsec_new"), check)
    with pytest.raises(Unauthenticated):
        SCHEMES["stripe"](headers, body, prepare_keys("stripe", "whsec_old"), check)


def test_standardwebhooks_library_signature_verifies() -> None:
    """A header made by the standardwebhooks library verifies."""
    headers = email_headers(b"{}", SW_KEY)
    SCHEMES["standard_webhooks"](headers, b"{}", prepare_keys("standard_webhooks", SW_KEY), at_now())


def at_now() -> Check:
    return Check(header="webhook-signature")


@pytest.mark.parametrize(
    "header",
    ["", "t=1", "v1=abc", "garbage", "t=abc,v1=00"],
)
def test_stripe_malformed_header_is_invalid_argument(header: str) -> None:
    """Missing or malformed Stripe-Signature headers are 400s, not 401s."""
    headers = {"stripe-signature": header} if header else {}
    with pytest.raises(InvalidArgument):
        SCHEMES["stripe"](headers, b"{}", [b"k"], Check(header="stripe-signature"))


@given(body=st.binary(max_size=512), secret=st.text(min_size=1, max_size=40).filter(lambda s: "," not in s))
def test_hmac_sha1_and_sha256_accept_own_signature(body: bytes, secret: str) -> None:
    """Property: a correct hex HMAC (either prefix style) verifies for any body and secret."""
    if not secret.strip():
        return
    for scheme, algo, prefix in (("hmac_sha256", hashlib.sha256, "sha256="), ("hmac_sha1", hashlib.sha1, "")):
        sig = prefix + hmac.new(secret.strip().encode(), body, algo).hexdigest()
        SCHEMES[scheme]({"h": sig}, body, prepare_keys(scheme, secret), Check(header="h"))


@given(body=st.binary(min_size=1, max_size=256), flip=st.integers(min_value=0, max_value=255))
def test_any_tampered_body_is_rejected(body: bytes, flip: int) -> None:
    """Property: changing any byte of a signed body makes every scheme refuse it."""
    index = flip % len(body)
    tampered = body[:index] + bytes([body[index] ^ 0x01]) + body[index + 1 :]
    sig = hmac.new(b"secret", body, hashlib.sha256).hexdigest()
    with pytest.raises(Unauthenticated):
        SCHEMES["hmac_sha256"]({"h": sig}, tampered, [b"secret"], Check(header="h"))
    ts = "1700000000"
    swsig = stripe_headers(body, "s", int(ts)) if body.isascii() else None
    if swsig is not None:
        with pytest.raises(Unauthenticated):
            SCHEMES["stripe"](
                swsig, tampered, [b"s"], Check(header="stripe-signature", now=lambda: 1700000000)
            )


@given(header=st.text(max_size=80))
def test_arbitrary_stripe_headers_never_raise_anything_but_400_or_401(header: str) -> None:
    """Property: any Stripe-Signature text gives InvalidArgument or Unauthenticated, never a crash."""
    with pytest.raises((InvalidArgument, Unauthenticated)):
        SCHEMES["stripe"]({"stripe-signature": header}, b"{}", [b"k"], Check(header="stripe-signature"))


@given(header=st.text(max_size=80), stamp=st.text(max_size=14))
def test_arbitrary_standard_webhooks_headers_never_crash(header: str, stamp: str) -> None:
    """Property: any webhook-signature/timestamp text gives a 400 or 401 error, never a crash."""
    headers = {"webhook-id": "msg_1", "webhook-timestamp": stamp, "webhook-signature": header}
    with pytest.raises((InvalidArgument, Unauthenticated)):
        SCHEMES["standard_webhooks"](headers, b"{}", [b"k"], at_now())
