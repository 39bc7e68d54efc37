"""Opaque page tokens: url-safe base64 of a small JSON object; anything else is INVALID_ARGUMENT."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from services.core.errors import InvalidArgument

DEFAULT_PAGE = 50
MAX_PAGE = 1000


def page_size(requested: int) -> int:
    if requested < 0:
        raise InvalidArgument("page_size must be >= 0")
    return min(requested or DEFAULT_PAGE, MAX_PAGE)


def encode(state: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode()


def decode(token: str) -> dict[str, Any]:
    if not token:
        return {}
    try:
        state = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, ValueError, RecursionError) as exc:  # deep nesting: hostile, not ours
        raise InvalidArgument("malformed page_token") from exc
    if not isinstance(state, dict):
        raise InvalidArgument("malformed page_token")
    return state
