"""Signature schemes: a registry of plain functions with one signature.

Each verifier gets the lower-cased headers, the exact raw body, the provider's prepared
keys (several at once, for rotation) and the check options, and either returns or raises:
:class:`InvalidArgument` for a missing or malformed signature header (HTTP 400),
:class:`Unauthenticated` for a signature that matches no key or a timestamp outside the
tolerance (HTTP 401). Comparison is always constant-time (``hmac.compare_digest``); the
body is never parsed here. Keys are prepared once at start (``prepare_key``).

Timestamps: Stripe's own library rejects only old timestamps; we also reject ones more
than the tolerance in the future, as Standard Webhooks' reference libraries do.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from services.core.errors import InvalidArgument, Unauthenticated

MAX_SIGNATURES = 16
WHSEC_PREFIX = "whsec_"


@dataclass(frozen=True)
class Check:
    """Per-provider options of a verification."""

    header: str
    tolerance_s: float = 300.0
    now: Callable[[], float] = time.time


Verifier = Callable[[Mapping[str, str], bytes, Sequence[bytes], Check], None]


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if not value:
        raise InvalidArgument(f"missing signature header {name!r}")
    return value


def _timestamp(raw: str, check: Check) -> int:
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12:
        raise InvalidArgument("malformed signature timestamp")
    ts = int(raw)
    now = check.now()
    if now - ts > check.tolerance_s:
        raise Unauthenticated("signature timestamp is too old")
    if ts - now > check.tolerance_s:
        raise Unauthenticated("signature timestamp is in the future")
    return ts


def _any_match(expected: Sequence[bytes], given: Sequence[bytes]) -> bool:
    matched = False
    for mine in expected:
        for theirs in given:
            matched |= hmac.compare_digest(mine, theirs)  # no early exit: constant work
    return matched


def verify_stripe(headers: Mapping[str, str], body: bytes, keys: Sequence[bytes], check: Check) -> None:
    """``Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]``; HMAC-SHA256 over ``t.body``."""
    value = _header(headers, check.header)
    stamp: str | None = None
    given: list[bytes] = []
    for item in value.split(","):
        name, sep, part = item.strip().partition("=")
        if not sep:
            raise InvalidArgument("malformed Stripe-Signature header")
        if name == "t":
            stamp = part
        elif name == "v1" and len(given) < MAX_SIGNATURES:
            given.append(part.strip().lower().encode())
    if stamp is None or not given:
        raise InvalidArgument("Stripe-Signature header lacks t= or v1=")
    _timestamp(stamp, check)
    signed = stamp.encode() + b"." + body
    expected = [hmac.new(k, signed, hashlib.sha256).hexdigest().encode() for k in keys]
    if not _any_match(expected, given):
        raise Unauthenticated("no v1 signature matches")


def verify_standard(headers: Mapping[str, str], body: bytes, keys: Sequence[bytes], check: Check) -> None:
    """Standard Webhooks: ``webhook-id``, ``webhook-timestamp``, ``webhook-signature: v1,<b64> ...``."""
    msg_id = _header(headers, "webhook-id")
    stamp = _header(headers, "webhook-timestamp")
    value = _header(headers, check.header)
    given = []
    for item in value.split(" ")[:MAX_SIGNATURES]:
        version, sep, sig = item.partition(",")
        if not sep or not sig:
            raise InvalidArgument("malformed webhook-signature header")
        if version == "v1":
            given.append(sig.encode())
    if not given:
        raise InvalidArgument("webhook-signature header has no v1 signature")
    _timestamp(stamp, check)
    signed = f"{msg_id}.{stamp}.".encode() + body
    expected = [base64.b64encode(hmac.new(k, signed, hashlib.sha256).digest()) for k in keys]
    if not _any_match(expected, given):
        raise Unauthenticated("no v1 signature matches")


def _hex_verifier(algorithm: str, digest_size: int) -> Verifier:
    prefix = f"{algorithm}="

    def verify(headers: Mapping[str, str], body: bytes, keys: Sequence[bytes], check: Check) -> None:
        value = _header(headers, check.header).strip()
        if value.lower().startswith(prefix):
            value = value[len(prefix) :]
        given = value.lower()
        if len(given) != digest_size * 2 or any(c not in "0123456789abcdef" for c in given):
            raise InvalidArgument(f"malformed {algorithm} signature: expected {digest_size * 2} hex digits")
        expected = [hmac.new(k, body, algorithm).hexdigest().encode() for k in keys]
        if not _any_match(expected, [given.encode()]):
            raise Unauthenticated("signature matches no active secret")

    verify.__doc__ = f"Plain HMAC-{algorithm.upper()} hex of the body, optional ``{prefix}`` prefix."
    return verify


def prepare_standard_key(secret: str) -> bytes:
    """``whsec_<base64>`` → raw key bytes (missing padding tolerated)."""
    raw = secret.removeprefix(WHSEC_PREFIX)
    try:
        return base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("a Standard Webhooks secret must be base64 (optionally whsec_-prefixed)") from exc


def _utf8(secret: str) -> bytes:
    return secret.encode()


SCHEMES: dict[str, Verifier] = {
    "stripe": verify_stripe,
    "standard_webhooks": verify_standard,
    "hmac_sha256": _hex_verifier("sha256", 32),
    "hmac_sha1": _hex_verifier("sha1", 20),
}
KEY_PREPARERS: dict[str, Callable[[str], bytes]] = {
    "stripe": _utf8,  # Stripe keys with the whole "whsec_..." string
    "standard_webhooks": prepare_standard_key,
    "hmac_sha256": _utf8,
    "hmac_sha1": _utf8,
}


def prepare_keys(scheme: str, secrets: str) -> list[bytes]:
    """A comma-separated secrets value → the keys to try, in order."""
    return [KEY_PREPARERS[scheme](s.strip()) for s in secrets.split(",") if s.strip()]
