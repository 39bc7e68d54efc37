"""Validation of what instances send the registry: names, addresses, sizes.

Names become parts of Redis keys (see :mod:`services.core.keys`), so their charset is
narrower than the key builder's: letters, digits, ``.``, ``_`` and ``-``. Every pattern is
applied with ``fullmatch``: ``$`` also matches before a trailing newline, which let
``"svc\n"`` through here only for the key builder to refuse it later (an INTERNAL error, and
a service-index entry no check could ever use).

Timestamps and durations a caller sends are checked against the ranges protobuf defines,
because converting one outside them (``ToMilliseconds``, ``ToJsonString``) raises
``ValueError`` wherever that happens later: in a sink, in the dispatcher after the sink
accepted, or in a listing.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Iterable

from google.protobuf import duration_pb2, timestamp_pb2
from google.protobuf.message import Message as ProtoMessage

from services.core.errors import InvalidArgument
from wedsync.registry.v1 import registry_pb2

log = logging.getLogger("wedmesh.registry")

# Use with fullmatch only (see the module docstring).
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,199}")
HOSTNAME_RE = re.compile(
    r"(?=.{1,253}\Z)[A-Za-z0-9]([A-Za-z0-9\-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9\-]{0,61}[A-Za-z0-9])?)*"
)
PORT_RE = re.compile(r"[0-9]{1,5}")  # ASCII only: str.isdigit() also takes "²" and "٣"
SCOPE_RE = re.compile(r"[A-Za-z0-9._\-]{1,64}")  # an IPv6 zone, e.g. "eth0"
# The ranges google/protobuf/timestamp.proto and duration.proto define.
MIN_TIMESTAMP_S = -62_135_596_800  # 0001-01-01T00:00:00Z
MAX_TIMESTAMP_S = 253_402_300_799  # 9999-12-31T23:59:59Z
MAX_DURATION_S = 315_576_000_000  # about 10 000 years
MAX_NANOS = 999_999_999
MAX_VERSION = 128
MAX_ENDPOINTS = 64
MAX_ENDPOINT_CHARS = 256
MAX_METADATA = 64
MAX_METADATA_KEY = 128
MAX_METADATA_VALUE = 1024


def is_name(value: str) -> bool:
    """Whether ``value`` is a valid service name or instance id (usable in a Redis key)."""
    return NAME_RE.fullmatch(value) is not None


def check_name(value: str, field: str) -> str:
    """A service name or instance id: 1-200 of letters, digits, '.', '_', '-'."""
    if not value:
        raise InvalidArgument(f"{field} is required")
    if not is_name(value):
        raise InvalidArgument(
            f"{field} {value[:80]!r} is invalid: use 1-200 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


def check_address(value: str, field: str = "instance.address") -> str:
    """``host:port`` with a hostname, an IPv4 address or a bracketed IPv6 address."""
    if not value:
        raise InvalidArgument(f"{field} is required (host:port)")
    host, sep, port = value.rpartition(":")
    problem = None
    if not sep or not host:
        problem = "expected host:port"
    elif not PORT_RE.fullmatch(port) or not 1 <= int(port) <= 65535:
        problem = "port must be 1-65535 (ASCII digits)"
    elif host.startswith("["):
        try:
            if not host.endswith("]"):
                raise ValueError
            ip = ipaddress.IPv6Address(host[1:-1])
            if ip.scope_id is not None and not SCOPE_RE.fullmatch(ip.scope_id):
                raise ValueError  # the zone after '%' is free text to ipaddress
        except ValueError:
            problem = "bad IPv6 address"
    elif not HOSTNAME_RE.fullmatch(host):
        problem = "bad host name"
    if problem:
        raise InvalidArgument(f"{field} {value[:80]!r} is invalid: {problem}")
    return value


def check_instance(instance: registry_pb2.ServiceInstance) -> None:
    """Raise InvalidArgument naming the first bad field of a registration."""
    check_name(instance.service_name, "instance.service_name")
    check_name(instance.instance_id, "instance.instance_id")
    check_address(instance.address)
    if len(instance.version) > MAX_VERSION:
        raise InvalidArgument(f"instance.version is longer than {MAX_VERSION} characters")
    if len(instance.endpoints) > MAX_ENDPOINTS:
        raise InvalidArgument(f"instance.endpoints has more than {MAX_ENDPOINTS} entries")
    if any(not e or len(e) > MAX_ENDPOINT_CHARS for e in instance.endpoints):
        raise InvalidArgument(f"instance.endpoints entries must be 1-{MAX_ENDPOINT_CHARS} characters")
    if len(instance.metadata) > MAX_METADATA:
        raise InvalidArgument(f"instance.metadata has more than {MAX_METADATA} entries")
    for key, value in instance.metadata.items():
        if not key or len(key) > MAX_METADATA_KEY or len(value) > MAX_METADATA_VALUE:
            raise InvalidArgument(
                f"instance.metadata keys must be 1-{MAX_METADATA_KEY} and values at most "
                f"{MAX_METADATA_VALUE} characters"
            )


def check_timestamp(value: timestamp_pb2.Timestamp, field: str) -> None:
    """A Timestamp inside protobuf's range (years 1-9999, nanos 0-999999999)."""
    if not MIN_TIMESTAMP_S <= value.seconds <= MAX_TIMESTAMP_S or not 0 <= value.nanos <= MAX_NANOS:
        raise InvalidArgument(
            f"{field} (seconds={value.seconds}, nanos={value.nanos}) is not a valid Timestamp: seconds "
            f"must be {MIN_TIMESTAMP_S}..{MAX_TIMESTAMP_S} (years 0001-9999) and nanos 0..{MAX_NANOS}"
        )


def check_duration(value: duration_pb2.Duration, field: str) -> None:
    """A Duration inside protobuf's range, with nanos of the same sign as seconds."""
    seconds, nanos = value.seconds, value.nanos
    if (
        not -MAX_DURATION_S <= seconds <= MAX_DURATION_S
        or not -MAX_NANOS <= nanos <= MAX_NANOS
        or (seconds > 0 and nanos < 0)
        or (seconds < 0 and nanos > 0)
    ):
        raise InvalidArgument(
            f"{field} (seconds={seconds}, nanos={nanos}) is not a valid Duration: seconds must be within "
            f"+-{MAX_DURATION_S} and nanos within +-{MAX_NANOS} with the same sign as seconds"
        )


def check_times(message: ProtoMessage, prefix: str) -> None:
    """Check every Timestamp and Duration set anywhere in ``message`` (fields named from ``prefix``).

    A caller's message is stored and handed on whole, so a time nobody here reads yet still
    breaks whoever converts it later; refusing it up front names the field instead.
    """
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            if field.message_type.fields_by_name["value"].message_type is None:
                continue
            items = [(f"{prefix}.{field.name}[{k!r}]", v) for k, v in value.items()]
        elif field.is_repeated:
            items = [(f"{prefix}.{field.name}[{i}]", v) for i, v in enumerate(value)]
        else:
            items = [(f"{prefix}.{field.name}", value)]
        for name, item in items:
            if isinstance(item, timestamp_pb2.Timestamp):
                check_timestamp(item, name)
            elif isinstance(item, duration_pb2.Duration):
                check_duration(item, name)
            else:
                check_times(item, name)


def valid_service_names(members: Iterable[bytes | str], reported: set[str], where: str) -> list[str]:
    """The members of a Redis set of service names that are valid names, sorted.

    Only validated names are ever added; anything else came from outside (an older
    version's bug, a hand edit) and no key can be built from it, so returning it would make
    every reader fail on it. Each such member is logged once per ``reported`` set.
    """
    valid = []
    for raw in members:
        name = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
        if is_name(name):
            valid.append(name)
        elif name not in reported:
            reported.add(name)
            log.warning("%s holds an invalid service name; ignoring it", where, extra={"service": name[:80]})
    return sorted(valid)
