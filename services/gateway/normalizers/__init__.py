"""Normalisers: provider response bodies → canonical messages of ``wedsync.gateway.v1``.

A normaliser is a plain function ``(Document) -> Normalized | None``, registered by name
in :data:`NORMALIZERS` (the upstream's ``normalizer`` config key picks one). ``None``
means "not a shape I know": the response passes through raw, flagged RAW. An exception
means the body looked like a known shape but could not be read: FAILED, with the reason.

* ``stripe`` — PaymentIntents, Charges, Refunds, lists of them, and ``error`` bodies.
* ``postmark`` — the Postmark email API (send, batch send, outbound message search and
  details, error bodies ``{"ErrorCode", "Message"}``).
* ``supplier`` — the supplier directory's JSON (see :mod:`.supplier`).
"""

from __future__ import annotations

from collections.abc import Callable

from services.gateway.normalizers.base import Document, Normalized
from services.gateway.normalizers.postmark import normalize_postmark
from services.gateway.normalizers.stripe import normalize_stripe
from services.gateway.normalizers.supplier import normalize_supplier

Normalizer = Callable[[Document], Normalized | None]

NORMALIZERS: dict[str, Normalizer] = {
    "stripe": normalize_stripe,
    "postmark": normalize_postmark,
    "supplier": normalize_supplier,
}

__all__ = ["NORMALIZERS", "Document", "Normalized", "Normalizer"]
