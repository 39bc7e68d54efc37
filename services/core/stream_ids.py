"""Redis stream ids that clients hand back (cursors, page tokens, dead-letter ids), parsed strictly.

Redis answers an error for a malformed or out-of-range id and reads ``<ms>`` alone as a
range, so a client's mistake would surface as INTERNAL or act on the wrong entries. Only
``<ms>-<seq>`` with ASCII digits and both parts at most 2**64-1 is accepted; anything else
is the caller's INVALID_ARGUMENT (or "not found").
"""

from __future__ import annotations

import re

MAX_ID_PART = 2**64 - 1
MAX_ID = (MAX_ID_PART, MAX_ID_PART)
# fullmatch only: `$` would allow a final "\n", and `\d` non-ASCII digits that int() reads.
_STREAM_ID = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")


def stream_id(text: object) -> tuple[int, int] | None:
    """``text`` as a complete Redis stream id ``(ms, seq)``, or None when it is not one."""
    if not isinstance(text, str):
        return None
    found = _STREAM_ID.fullmatch(text)
    if found is None:
        return None
    ms, seq = int(found[1]), int(found[2])
    return (ms, seq) if ms <= MAX_ID_PART and seq <= MAX_ID_PART else None


def read_after(text: object) -> tuple[int, int] | None:
    """``text`` as an id to read strictly after (``"(" + id``), or None: Redis refuses the
    largest id there, since nothing can follow it."""
    parsed = stream_id(text)
    return None if parsed is None or parsed == MAX_ID else parsed
