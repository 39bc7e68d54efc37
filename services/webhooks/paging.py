"""Opaque page tokens: url-safe base64 of a small JSON object; anything else is INVALID_ARGUMENT.

A token is bound to the filters of the request that it continues: it carries a short
digest of them (``"f"``), and a request whose filters differ is refused with
INVALID_ARGUMENT instead of silently continuing someone else's listing (whose positions
would skip or repeat events under the new filters). A token without a digest (issued
before tokens were bound) is still honoured, so replicas of both versions can serve one
listing during a rolling upgrade; extra keys are ignored by older replicas.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from services.core.errors import InvalidArgument

DEFAULT_PAGE = 50
MAX_PAGE = 1000
FILTERS_KEY = "f"
DIGEST_CHARS = 16  # 64 bits: tells filter sets apart; tokens are not a security boundary
DIFFERENT_FILTERS = "page_token was issued for different filters; start again without it"

Filters = Mapping[str, str | int | None]


def page_size(requested: int) -> int:
    if requested < 0:
        raise InvalidArgument("page_size must be >= 0")
    return min(requested or DEFAULT_PAGE, MAX_PAGE)


def filters_digest(filters: Filters) -> str:
    """A short, stable digest of normalised filters (key order does not matter)."""
    canonical = json.dumps(dict(filters), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:DIGEST_CHARS]


def encode(state: dict[str, Any], filters: Filters | None = None) -> str:
    """The token for ``state``, bound to ``filters`` when given."""
    if filters is not None:
        state = {**state, FILTERS_KEY: filters_digest(filters)}
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode()


def decode(token: str, filters: Filters | None = None) -> dict[str, Any]:
    """The state in ``token`` ({} for none); with ``filters``, refuse a token bound to others."""
    if not token:
        return {}
    try:
        state = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, ValueError, RecursionError) as exc:  # deep nesting: hostile, not ours
        raise InvalidArgument("malformed page_token") from exc
    if not isinstance(state, dict):
        raise InvalidArgument("malformed page_token")
    if filters is not None and FILTERS_KEY in state:
        bound = state[FILTERS_KEY]
        if not isinstance(bound, str):
            raise InvalidArgument("malformed page_token")
        if bound != filters_digest(filters):
            raise InvalidArgument(DIFFERENT_FILTERS)
    return state
