"""Reading an upstream's answer into memory, never past a cap.

``httpx.Response.aread()`` keeps whatever the upstream sends and inflates gzip/deflate
with no bound (a gzip body grows up to ~1000x), so a size check after it, or on the raw
bytes, comes too late: one answer could take the gateway's memory. :func:`read_body`
reads the raw stream chunk by chunk, inflates each ``Content-Encoding`` layer with zlib's
``max_length`` set to what is left of the cap, and stops at the first byte past it
(:class:`ResponseTooLarge`). The body held never passes the cap (joining the parts
copies it once).

Codings are undone as httpx undoes them — ``gzip``, ``deflate`` (zlib-wrapped, or raw on
the first bytes' failure), in reverse order of the header; ``identity`` and codings httpx
has no decoder for here (``br``, ``zstd`` without their packages) are left as sent — so a
body that does not decode is :class:`UndecodableBody`, as it was with httpx's decoders.
"""

from __future__ import annotations

import zlib

import httpx


class BodyError(httpx.RemoteProtocolError):
    """The upstream's body cannot be returned. A malformed response, the upstream's
    fault: counted against its breaker. The message is ours (no body bytes in it)."""


class UndecodableBody(BodyError):
    """The body does not decode as its ``Content-Encoding`` says.

    httpx raises ``DecodingError``, which is no ``TransportError``: it would escape as
    INTERNAL and count as a breaker *success*."""


class ResponseTooLarge(BodyError):
    """The body (decoded) is longer than the cap; reading stopped there."""

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
        at ``room + 1``: the rest is never inflated). An inner layer of a doubly-encoded
        body is held to the cap too."""
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


def _layers(response: httpx.Response) -> list[_Inflate]:
    codings = [c.strip().lower() for c in response.headers.get_list("content-encoding", split_commas=True)]
    return [_Inflate(c) for c in reversed(codings) if c in ("gzip", "deflate")]


async def read_body(response: httpx.Response, limit: int) -> bytes:
    """The decoded body of ``response``, or :class:`ResponseTooLarge` as soon as it passes
    ``limit`` bytes. Reads ``response.stream``; closing it is the caller's job."""
    stream = response.stream
    assert isinstance(stream, httpx.AsyncByteStream)
    layers = _layers(response)
    parts: list[bytes] = []
    size = 0

    def keep(data: bytes) -> None:
        nonlocal size
        if size + len(data) > limit:
            raise _Overflow()
        if data:
            parts.append(data)
            size += len(data)

    try:
        async for chunk in stream:
            for layer in layers:
                chunk = layer.feed(chunk, limit - size)
            keep(chunk)
        if layers:
            tail = b""
            for layer in layers:
                tail = layer.feed(tail, limit - size) + layer.finish()
            keep(tail)
    except _Overflow:
        raise ResponseTooLarge(limit) from None
    return parts[0] if len(parts) == 1 else b"".join(parts)
