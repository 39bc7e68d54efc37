"""Request hygiene: what a caller may ask the gateway to send upstream.

The path is joined to the upstream's base URL, so it must not be able to leave it: no
scheme, no host (``//evil``), no ``.``/``..`` segments — also when percent-encoded
(``%2e%2e``, ``%2f``, double encoding) — no backslashes, control characters, query or
fragment. Headers: the caller's ``Authorization`` (and other credential headers the
gateway sets) and hop-by-hop headers are dropped, never forwarded; the gateway adds the
upstream's credentials itself. Bodies over the upstream's ``max_body_bytes`` are refused.
Every refusal says what to change.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import quote, unquote

from services.core.errors import InvalidArgument

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
CREDENTIAL_HEADERS = frozenset({"authorization", "cookie"})
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,128}$")
_SAFE_PATH_CHARS = "/:@!$&'()*+,;=-._~"


def check_method(method: str) -> str:
    """Upper-case method, ``GET`` when empty; refuse anything else."""
    value = (method or "GET").upper()
    if value not in METHODS:
        raise InvalidArgument(f"method {method!r} is not allowed; use one of {', '.join(sorted(METHODS))}")
    return value


_checked_paths: dict[str, str] = {}  # path -> its safe form (refused paths are not kept)
MAX_CACHED_PATHS = 4096


def check_path(path: str) -> str:
    """Return ``path`` safe to append to a base URL, or refuse it saying why."""
    safe = _checked_paths.get(path)
    if safe is None:
        safe = _check_path(path)
        if len(_checked_paths) >= MAX_CACHED_PATHS:
            _checked_paths.clear()
        _checked_paths[path] = safe
    return safe


def _check_path(path: str) -> str:
    if not path.startswith("/"):
        raise InvalidArgument(f"path {path!r} must start with '/' and be relative to the upstream")
    if path.startswith("//"):
        raise InvalidArgument("path must not start with '//' (that names another host)")
    if "?" in path or "#" in path:
        raise InvalidArgument("path must not contain '?' or '#': put query parameters in `query`")
    decoded = path
    for _ in range(3):  # see through double and triple encoding
        once = unquote(decoded)
        if once == decoded:
            break
        decoded = once
    if "\\" in decoded:
        raise InvalidArgument("path must not contain backslashes")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in decoded):
        raise InvalidArgument("path must not contain control characters")
    if decoded.startswith("//") or re.match(r"^/*[A-Za-z][A-Za-z0-9+.\-]*:", decoded):
        raise InvalidArgument("path must not name a scheme or host; give a path on the upstream")
    segments = decoded.split("/")
    if any(seg in (".", "..") for seg in segments):
        raise InvalidArgument("path must not contain '.' or '..' segments (plain or percent-encoded)")
    if decoded.count("/") != path.count("/"):
        raise InvalidArgument("path must not contain encoded slashes ('%2F'); send plain '/'")
    return quote(unquote(path), safe=_SAFE_PATH_CHARS)


def clean_headers(headers: Mapping[str, str], gateway_owned: Iterable[str] = ()) -> dict[str, str]:
    """Lower-cased headers minus hop-by-hop and credential headers (dropped, not forwarded)."""
    owned = {h.lower() for h in gateway_owned} | CREDENTIAL_HEADERS | HOP_BY_HOP | _connection_listed(headers)
    out: dict[str, str] = {}
    for name, value in headers.items():
        lower = name.lower()
        if not _HEADER_NAME.match(name):
            raise InvalidArgument(f"header name {name!r} is not a valid HTTP token")
        if "\r" in value or "\n" in value:
            raise InvalidArgument(f"header {lower!r} must not contain line breaks")
        if lower in owned or lower.startswith("proxy-"):
            continue
        out[lower] = value
    return out


def _connection_listed(headers: Mapping[str, str]) -> set[str]:
    """Header names the ``Connection`` header declares hop-by-hop (RFC 9110 §7.6.1)."""
    listed: set[str] = set()
    for name, value in headers.items():
        if name.lower() == "connection":
            listed |= {part.strip().lower() for part in value.split(",") if part.strip()}
    return listed


def response_headers(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Upstream response headers for the caller: lower-cased, repeats joined with ", ",
    hop-by-hop ones dropped, and the body's transfer coding removed (the body is returned
    decoded, so ``content-encoding``/``content-length`` would describe other bytes)."""
    items = list(pairs)
    drop = HOP_BY_HOP | {"content-encoding"}
    for name, value in items:
        if name.lower() == "connection":
            drop |= {part.strip().lower() for part in value.split(",") if part.strip()}
    out: dict[str, str] = {}
    for name, value in items:
        key = name.lower()
        if key in drop:
            continue
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def check_body(body: bytes, max_bytes: int, service_id: str) -> None:
    if max_bytes and len(body) > max_bytes:
        raise InvalidArgument(
            f"body is {len(body)} bytes; {service_id} accepts at most {max_bytes} "
            f"(gateway.upstreams.{service_id}.max_body_bytes)"
        )
