"""Unique ids for hot paths: a random per-process prefix and a counter.

``uuid.uuid4()`` costs a getrandom() call and a UUID object per id, which showed in the
gateway's and webhook intake's profiles. Ids here are just as unique across processes and
replicas (72 random bits per process, re-drawn in a forked child) but not unpredictable: use
``secrets`` for anything that must not be guessed.
"""

from __future__ import annotations

import itertools
import os

_prefix = os.urandom(9).hex()  # 18 hex characters
_counter = itertools.count()


def _reseed() -> None:
    global _prefix, _counter
    _prefix = os.urandom(9).hex()  # a forked child must not repeat its parent's ids
    _counter = itertools.count()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reseed)


def unique_id() -> str:
    """32 lowercase hex characters (the shape of ``uuid4().hex``), unique per call."""
    return f"{_prefix}{next(_counter) & 0xFFFFFFFFFFFFFF:014x}"
