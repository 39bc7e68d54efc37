"""Validation of what instances send the registry: names, addresses, sizes.

Names become parts of Redis keys (see :mod:`services.core.keys`), so their charset is
narrower than the key builder's: letters, digits, ``.``, ``_`` and ``-``.
"""

from __future__ import annotations

import ipaddress
import re

from services.core.errors import InvalidArgument
from wedsync.registry.v1 import registry_pb2

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,199}$")
HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9\-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9\-]{0,61}[A-Za-z0-9])?)*$"
)
MAX_VERSION = 128
MAX_ENDPOINTS = 64
MAX_ENDPOINT_CHARS = 256
MAX_METADATA = 64
MAX_METADATA_KEY = 128
MAX_METADATA_VALUE = 1024


def check_name(value: str, field: str) -> str:
    """A service name or instance id: 1-200 of letters, digits, '.', '_', '-'."""
    if not value:
        raise InvalidArgument(f"{field} is required")
    if not NAME_RE.match(value):
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
    elif not port.isdigit() or not 1 <= int(port) <= 65535:
        problem = "port must be 1-65535"
    elif host.startswith("["):
        try:
            if not host.endswith("]"):
                raise ValueError
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            problem = "bad IPv6 address"
    elif not HOSTNAME_RE.match(host):
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
