"""Reading an upstream's answer into memory, never past a cap.

``httpx.Response.aread()`` keeps whatever the upstream sends and inflates gzip/deflate
with no bound (a gzip body grows up to ~1000x), so a size check after it, or on the raw
bytes, comes too late: one answer could take the gateway's memory. :func:`read_body`
reads the raw stream chunk by chunk, inflates each ``Content-Encoding`` layer with zlib's
``max_length`` bounded by what is left of the cap, and stops at the first byte past it
(:class:`ResponseTooLarge`). The body held never passes the cap (joining the parts
copies it once). Inner layers of a stacked coding (``gzip, gzip``) get some slack
(:func:`_slack`): what they produce is the next layer's compressed data, which may be a
little longer than the body it decodes to; only the final, decoded size is held
exactly to the cap.

Codings are undone as httpx undoes them — ``gzip``, ``deflate`` (zlib-wrapped, or raw on
the first bytes' failure) — from the outermost (last in the header) inwards, stopping
at the first coding there is no decoder for here (``br``, ``zstd``): that one and those
under it stay applied, and :func:`plan` says which (the caller keeps them in
``Content-Encoding``). ``identity`` is nothing to undo. A body that does not decode is
:class:`UndecodableBody`, as it was with httpx's decoders.

A body not read to its end, whatever stopped the reading, is abandoned in
:func:`read_body` (the HTTP/2 stream is reset), so no caller can forget to.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterable

import httpx

from services.gateway.netbackend import abandon_stream

log = logging.getLogger("wedmesh.gateway.bodies")

DECODABLE = ("gzip", "deflate")
SLACK_BYTES = 64 * 1024


class BodyError(httpx.RemoteProtocolError):
    """The upstream's body cannot be returned. A malformed response, the upstream's
    fault: counted against its breaker. The message is ours (no body bytes in it)."""


class UndecodableBody(BodyError):
    """The body does not decode as its ``Content-Encoding`` says.

    httpx raises ``DecodingError``, which is no ``TransportError``: it would escape as
    INTERNAL and count as a breaker *success*."""


class ResponseTooLarge(Exception):
    """The body (decoded) is longer than the cap; reading stopped there.

    Deliberately no transport error: the upstream answered, it is the *request* that
    asks for more than the gateway returns. Not counted against the breaker, not
    retried (the same request would get the same answer)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the answer is larger than {limit} bytes")
        self.limit = limit


class _Overflow(Exception):
    """Past the cap (turned into :class:`ResponseTooLarge`, which knows the cap)."""


class _Inflate:
    """One gzip or deflate layer that never returns more than it is allowed to."""

    def __init__(self, coding: str) -> None:
        self.coding = coding
        gzip = coding == "gzip"
        self._z = zlib.decompressobj(zlib.MAX_WBITS | 16 if gzip else zlib.MAX_WBITS)
        self._first = not gzip  # deflate: zlib-wrapped, or raw if the first bytes say so

    def feed(self, data: bytes, room: int) -> bytes:
        """Inflate ``data`` into at most ``room`` bytes, else :class:`_Overflow` (zlib stops
        at ``room + 1``: the rest is never inflated). Empty input is no first bytes: it
        cannot tell zlib-wrapped from raw deflate."""
        if not data:
            return b""
        try:
            out = self._z.decompress(data, room + 1)
        except zlib.error as exc:
            if not self._first:
                raise self._undecodable() from exc
            self._first = False
            self._z = zlib.decompressobj(-zlib.MAX_WBITS)
            return self.feed(data, room)
        self._first = False
        if len(out) > room:
            raise _Overflow()
        return out

    def finish(self) -> bytes:
        try:
            return self._z.flush()
        except zlib.error as exc:  # pragma: no cover - zlib reports truncation as b"", as httpx
            raise self._undecodable() from exc

    def _undecodable(self) -> UndecodableBody:
        return UndecodableBody(f"body does not decode as its Content-Encoding ({self.coding!r})")


def plan(codings: Iterable[str]) -> tuple[list[str], list[str]]:
    """``Content-Encoding`` values (in header order) → (codings to undo, outermost first;
    codings left applied, in header order). Undoing stops at the first coding with no
    decoder here: what lies under it cannot be reached."""
    applied = [c.strip().lower() for c in codings if c.strip()]
    undo: list[str] = []
    while applied and (applied[-1] in DECODABLE or applied[-1] == "identity"):
        coding = applied.pop()
        if coding != "identity":
            undo.append(coding)
    return undo, applied


def content_codings(response: httpx.Response) -> list[str]:
    return response.headers.get_list("content-encoding", split_commas=True)


def _slack(room: int) -> int:
    """How much more than the room left an inner layer may produce in one go: its output
    is compressed data of the next layer — at most an eighth longer than what it decodes
    to (deflate's worst case, 9-bit literals) plus headers and stored-block framing."""
    return room // 8 + SLACK_BYTES


async def read_body(response: httpx.Response, limit: int) -> bytes:
    """The decoded body of ``response``, or :class:`ResponseTooLarge` as soon as it passes
    ``limit`` bytes. Reads ``response.stream``; closing it is the caller's job.

    Whenever reading stops before the end of the stream — past the cap, an undecodable
    body, a read timeout or other transport error, a cancellation — the rest is abandoned
    here, before the caller closes the response (:func:`.netbackend.abandon_stream`: on a
    shared HTTP/2 connection the stream is reset, so its unread DATA frames do not eat
    the connection's receive window). Every reader of an upstream's body — answers
    (``Upstream._send``) and OAuth2 token answers (``oauth2.ClientCredentials._fetch``,
    on the same pool and, by default, the same connection) — goes through here."""
    stream = response.stream
    assert isinstance(stream, httpx.AsyncByteStream)
    layers = [_Inflate(c) for c in plan(content_codings(response))[0]]
    parts: list[bytes] = []
    size = 0
    ended = False  # the stream was read to its end

    def keep(data: bytes) -> None:
        nonlocal size
        if size + len(data) > limit:
            raise _Overflow()
        if data:
            parts.append(data)
            size += len(data)

    def room(index: int) -> int:
        left = limit - size
        return left if index == len(layers) - 1 else left + _slack(left)

    try:
        async for chunk in stream:
            if not chunk:
                continue
            for index, layer in enumerate(layers):
                chunk = layer.feed(chunk, room(index))
            keep(chunk)
        ended = True
        if layers:
            tail = b""
            for index, layer in enumerate(layers):
                tail = layer.feed(tail, room(index)) + layer.finish()
            keep(tail)
    except _Overflow:
        raise ResponseTooLarge(limit) from None
    finally:
        if not ended:
            try:
                await abandon_stream(response)
            except Exception:  # best effort: never hide why reading stopped
                log.warning("could not abandon an unread answer body", exc_info=True)
    return parts[0] if len(parts) == 1 else b"".join(parts)
