"""How an SDK instance (:class:`~services.registry.sdk.MeshInstance`) speaks TLS and proves who it is.

A user service is not a mesh process and usually has no mesh TOML file, so it takes these
two settings from its constructor or, when an argument is not given, from the environment:

- ``token`` ← ``WEDMESH_SERVICE_TOKEN``: the bearer token sent to the registry (issue it
  with ``wedmesh token --service <service name>``: Register accepts only the token's own
  service);
- ``tls`` ← ``WEDMESH_TLS_CERT_FILE`` (setting it turns TLS on), ``WEDMESH_TLS_KEY_FILE``,
  ``WEDMESH_TLS_CA_FILE``, and optionally ``WEDMESH_TLS_CLIENT_CERT_FILE`` /
  ``WEDMESH_TLS_CLIENT_KEY_FILE``, ``WEDMESH_TLS_SERVER_NAME`` and ``WEDMESH_TLS_MUTUAL``
  (``true``/``false``) — one variable per :class:`InstanceTls` field.

The token variable is the one mesh processes read by default (``auth.token_env``), and the
files are the ones ``[client_tls]`` and ``[<service>.tls]`` name for a mesh process. The
names carry no ``__``, so a mesh process sharing the environment does not read them as
config overrides.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import SecretStr

from services.core.settings_base import ClientTls, ServerTls

ENV_TOKEN = "WEDMESH_SERVICE_TOKEN"
ENV_TLS_PREFIX = "WEDMESH_TLS_"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


@dataclass(frozen=True)
class InstanceTls:
    """TLS for one SDK instance: the port the router delivers to, and its calls to the registry.

    With ``mutual`` (the default) the instance's port accepts only callers holding a
    certificate signed by ``ca_file`` — in the mesh that is the router and the registry's
    health checker (dialling with ``[client_tls]``): that is how a sink knows its caller.
    """

    ca_file: str
    """PEM CA bundle of the mesh: verifies the registry, and callers when ``mutual``."""
    cert_file: str
    """PEM certificate served on the instance's port (a server certificate)."""
    key_file: str
    """Its private key."""
    client_cert_file: str | None = None
    """Certificate presented to the registry for mutual TLS; default ``cert_file``."""
    client_key_file: str | None = None
    """Its private key; default ``key_file``."""
    server_name: str | None = None
    """Name checked in the registry's certificate, when it differs from the dialled host."""
    mutual: bool = True
    """Require a client certificate signed by ``ca_file`` on the instance's port."""

    def server(self) -> ServerTls:
        """The instance's own port, in the mesh's config shape."""
        return ServerTls(
            cert_file=self.cert_file,
            key_file=self.key_file,
            client_ca_file=self.ca_file if self.mutual else None,
        )

    def client(self) -> ClientTls:
        """How the instance dials the registry, in the mesh's config shape."""
        return ClientTls(
            ca_file=self.ca_file,
            cert_file=self.client_cert_file or self.cert_file,
            key_file=self.client_key_file or self.key_file,
            server_name=self.server_name,
        )


def tls_from_env(environ: Mapping[str, str] | None = None) -> InstanceTls | None:
    """``InstanceTls`` from ``WEDMESH_TLS_*``; None when ``WEDMESH_TLS_CERT_FILE`` is unset.

    Raises ValueError naming the variable that is missing or malformed.
    """
    env = os.environ if environ is None else environ

    def get(name: str) -> str | None:
        return env.get(ENV_TLS_PREFIX + name) or None

    cert = get("CERT_FILE")
    if cert is None:
        return None
    missing = [ENV_TLS_PREFIX + n for n in ("KEY_FILE", "CA_FILE") if get(n) is None]
    if missing:
        raise ValueError(f"{ENV_TLS_PREFIX}CERT_FILE is set, so TLS is on; also set {' and '.join(missing)}")
    if (get("CLIENT_CERT_FILE") is None) != (get("CLIENT_KEY_FILE") is None):
        raise ValueError(
            f"set both {ENV_TLS_PREFIX}CLIENT_CERT_FILE and {ENV_TLS_PREFIX}CLIENT_KEY_FILE, or neither"
        )
    mutual = (get("MUTUAL") or "true").strip().lower()
    if mutual not in _TRUE | _FALSE:
        raise ValueError(f"{ENV_TLS_PREFIX}MUTUAL must be true or false (got {mutual!r})")
    key, ca = get("KEY_FILE"), get("CA_FILE")
    assert key is not None and ca is not None
    return InstanceTls(
        ca_file=ca,
        cert_file=cert,
        key_file=key,
        client_cert_file=get("CLIENT_CERT_FILE"),
        client_key_file=get("CLIENT_KEY_FILE"),
        server_name=get("SERVER_NAME"),
        mutual=mutual in _TRUE,
    )


def token_from_env(environ: Mapping[str, str] | None = None) -> SecretStr | None:
    """The token in ``$WEDMESH_SERVICE_TOKEN``; None when unset or empty."""
    value = ((os.environ if environ is None else environ).get(ENV_TOKEN) or "").strip()
    return SecretStr(value) if value else None
