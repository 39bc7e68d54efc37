"""Request hygiene: what a caller may ask the gateway to send upstream.

The path is joined to the upstream's base URL, so it must not be able to leave it: no
scheme, no host (``//evil``), no ``.``/``..`` segments — also when percent-encoded
(``%2e%2e``, ``%2f``, double encoding) or followed by ``;`` parameters (``/a/..;/b``:
Tomcat, Jetty and Spring strip path parameters first and climb) — no backslashes,
control characters, query or fragment. Headers: the caller's ``Authorization`` (and other
credential headers the gateway sets) and hop-by-hop headers are dropped, never forwarded;
the gateway adds the upstream's credentials itself. Bodies over the upstream's
``max_body_bytes`` are refused. Every refusal says what to change.

Everything a caller controls is checked here, before rate limits, breakers or the wire:
a value the HTTP clients would refuse (non-ASCII or control characters in a header, a URL
past httpx's length limit) would otherwise fail *inside* an instance's breaker — as
INTERNAL, or as a transport error that counts against the breaker every caller shares.
Refusals never echo header values or idempotency keys: they may be credentials.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import quote, unquote

import httpx

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
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,128}")  # fullmatch: `$` allows a final "\n"
_SAFE_PATH_CHARS = "/:@!$&'()*+,;=-._~"
_DOT_SEGMENTS = frozenset({".", ".."})

# Limits on what a caller sends (documented in docs/gateway.md). Paths and queries are
# counted as sent (percent-encoded); common servers refuse request lines past 8 KiB anyway.
MAX_PATH_CHARS = 8192
MAX_QUERY_CHARS = 8192
MAX_HEADERS = 100
MAX_HEADER_VALUE_CHARS = 8192
MAX_IDEMPOTENCY_KEY_CHARS = 255  # Stripe's limit
MAX_CACHED_PATH_CHARS = 512  # longer (rare) paths are checked every time, never cached

# RFC 9110 field-value restricted to ASCII: visible characters, spaces and tabs.
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e]*")
_KEY_CHAR = re.compile(r"[\x20-\x7e]")
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")
# Visible ASCII with inner spaces/tabs: what a header value can carry exactly (surrounding
# whitespace is not part of a value). Also the rule for secrets sent as headers (.auth).
HEADER_VALUE = re.compile(r"[\x21-\x7e](?:[\t\x20-\x7e]*[\x21-\x7e])?")
FIELD_CHAR = re.compile(r"[\t\x20-\x7e]")  # one character of a header value
NOT_CONTROL = re.compile(r"[^\x00-\x1f\x7f]")  # one character that is no (C0/DEL) control


def check_method(method: str) -> str:
    """Upper-case method, ``GET`` when empty; refuse anything else."""
    value = (method or "GET").upper()
    if value not in METHODS:
        raise InvalidArgument(
            f"method {method[:32]!r} is not allowed; use one of {', '.join(sorted(METHODS))}"
        )
    return value


_checked_paths: dict[str, str] = {}  # path -> its safe form (refused paths are not kept)
MAX_CACHED_PATHS = 4096


def check_path(path: str) -> str:
    """Return ``path`` safe to append to a base URL, or refuse it saying why.

    Checked paths are cached (most callers repeat a few), but only short ones, so the
    cache's memory stays bounded whatever callers send."""
    safe = _checked_paths.get(path)
    if safe is None:
        safe = _check_path(path)
        if len(path) <= MAX_CACHED_PATH_CHARS:
            if len(_checked_paths) >= MAX_CACHED_PATHS:
                _checked_paths.clear()
            _checked_paths[path] = safe
    return safe


def _check_path(path: str) -> str:
    if len(path) > MAX_PATH_CHARS:  # before any decoding work on it
        raise _long_path(len(path))
    if not path.startswith("/"):
        raise InvalidArgument(f"path {path[:64]!r} must start with '/' and be relative to the upstream")
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
    if any(seg.partition(";")[0] in _DOT_SEGMENTS for seg in decoded.split("/")):
        raise InvalidArgument(
            "path must not contain '.' or '..' segments (plain, percent-encoded, or with ';' "
            "parameters such as '..;'): servers that drop ';' parameters would climb out of the "
            "base URL; name the resource directly"
        )
    if decoded.count("/") != path.count("/"):
        raise InvalidArgument("path must not contain encoded slashes ('%2F'); send plain '/'")
    safe = quote(unquote(path), safe=_SAFE_PATH_CHARS)
    if len(safe) > MAX_PATH_CHARS:  # percent-encoding can make it up to 9 times longer
        raise _long_path(len(safe))
    return safe


def _long_path(length: int) -> InvalidArgument:
    return InvalidArgument(
        f"path is {length} characters (percent-encoded); the gateway sends at most {MAX_PATH_CHARS}: "
        "shorten it, or send long data in the body"
    )


def check_query(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Refuse a query string longer than :data:`MAX_QUERY_CHARS` once percent-encoded.

    Measured with httpx's own encoding, so what is checked is what is sent; any character
    is fine in a key or value (it is percent-encoded)."""
    if not pairs:
        return pairs
    # Encoding only lengthens: refuse a long query without encoding it ("k=v" joined by "&").
    at_least = sum(len(k) + len(v) + 2 for k, v in pairs) - 1
    if at_least > MAX_QUERY_CHARS or len(str(httpx.QueryParams(tuple(pairs)))) > MAX_QUERY_CHARS:
        raise InvalidArgument(
            f"query is longer than the {MAX_QUERY_CHARS} characters the gateway sends (counted "
            "percent-encoded): send fewer or shorter parameters, or put the data in the body"
        )
    return pairs


def clean_headers(headers: Mapping[str, str], gateway_owned: Iterable[str] = ()) -> dict[str, str]:
    """Lower-cased headers minus hop-by-hop and credential headers (dropped, not forwarded).

    Names must be RFC 9110 tokens. Forwarded values must be visible ASCII, spaces and tabs
    (surrounding whitespace is not part of a value, RFC 9110 §5.5, and is removed); dropped
    headers are never sent, so their values are not judged (a browser's UTF-8 cookie is no
    reason to refuse a call)."""
    for name in headers:  # before _connection_listed looks at any value
        if not _HEADER_NAME.fullmatch(name):
            raise InvalidArgument(
                f"header name {name[:64]!r} is not a valid HTTP token "
                "(1-128 letters, digits or !#$%&'*+-.^_`|~)"
            )
    owned = {h.lower() for h in gateway_owned} | CREDENTIAL_HEADERS | HOP_BY_HOP | _connection_listed(headers)
    out: dict[str, str] = {}
    for name, value in headers.items():
        lower = name.lower()
        if lower in owned or lower.startswith("proxy-"):
            continue
        out[lower] = _check_field_value(f"header {lower!r}", value, MAX_HEADER_VALUE_CHARS).strip(" \t")
    if len(out) > MAX_HEADERS:
        raise InvalidArgument(f"{len(out)} headers to forward; the gateway forwards at most {MAX_HEADERS}")
    return out


def check_idempotency_key(key: str) -> str:
    """The key as sent in ``Idempotency-Key``: 1-255 visible ASCII characters (inner spaces
    allowed); empty means none. Not trimmed: a key must reach the upstream exactly as given."""
    if not key or (len(key) <= MAX_IDEMPOTENCY_KEY_CHARS and _IDEMPOTENCY_KEY.fullmatch(key)):
        return key
    what = "idempotency_key"
    if len(key) > MAX_IDEMPOTENCY_KEY_CHARS:
        raise InvalidArgument(
            f"{what} is {len(key)} characters; at most {MAX_IDEMPOTENCY_KEY_CHARS} are allowed"
        )
    _refuse_character(what, key, _KEY_CHAR, "visible ASCII and inner spaces")
    raise InvalidArgument(f"{what} must not start or end with a space")


def _check_field_value(what: str, value: str, max_chars: int) -> str:
    """``value`` if it is a sendable ASCII field value; else say where it breaks (not what it is)."""
    if len(value) > max_chars:
        raise InvalidArgument(f"{what} is {len(value)} characters; at most {max_chars} are allowed")
    if _FIELD_VALUE.fullmatch(value) is None:
        _refuse_character(what, value, FIELD_CHAR, "visible ASCII, spaces and tabs")
    return value


def _refuse_character(what: str, value: str, allowed: re.Pattern[str], rule: str) -> None:
    """Refuse the first character of ``value`` outside ``allowed``, by position and kind only."""
    bad = first_bad_char(value, allowed)
    if bad is not None:
        raise InvalidArgument(
            f"{what} has {bad}; it may hold only {rule} (percent-encode or base64 other data)"
        )


def first_bad_char(value: str, allowed: re.Pattern[str]) -> str | None:
    """The first character of ``value`` that ``allowed`` does not fullmatch, described by
    kind and position only (``control character 0x0a at the end (position 9)``, ``a non-ASCII character
    at position 3``, ``whitespace at position 7``) — never the character or the value,
    which may be a credential; None when every character is allowed.

    The one place the gateway's refusals (caller headers and keys here, secrets in
    :mod:`.auth`, base URLs in :mod:`.settings`) point at a character."""
    last = len(value) - 1
    for position, char in enumerate(value):
        if allowed.fullmatch(char):
            continue
        code = ord(char)
        if code < 0x20 or code == 0x7F:
            kind = f"control character 0x{code:02x}"
        elif code > 0x7F:
            kind = "a non-ASCII whitespace character" if char.isspace() else "a non-ASCII character"
        elif char.isspace():
            kind = "whitespace"
        else:
            kind = "a character that is not allowed"
        where = f"at the end (position {position})" if position == last else f"at position {position}"
        return f"{kind} {where}"
    return None


def _connection_listed(headers: Mapping[str, str]) -> set[str]:
    """Header names the ``Connection`` header declares hop-by-hop (RFC 9110 §7.6.1)."""
    listed: set[str] = set()
    for name, value in headers.items():
        if name.lower() == "connection":
            listed |= {part.strip().lower() for part in value.split(",") if part.strip()}
    return listed


def response_headers(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Upstream response headers for the caller: lower-cased, repeats joined with ", ",
    hop-by-hop ones dropped (``content-length`` too: the body is returned decoded). A
    ``content-encoding`` left by ``Upstream._send`` names codings still applied to the body
    (one the gateway has no decoder for) and is kept."""
    items = list(pairs)
    drop = set(HOP_BY_HOP)
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
