"""TLS and mutual TLS on gRPC ports, and `wedmesh probe --tls`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from services.cli import main
from services.core import probe
from services.core.config import ShutdownConfig
from services.core.local_redis import free_port
from services.core.server import ServiceHost
from services.core.settings_base import ConfigError, GrpcServerConfig, ServerTls
from tests.tls_certs import Pki, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


async def tls_host(tls: ServerTls) -> ServiceHost:
    host = ServiceHost(
        [], GrpcServerConfig(host="127.0.0.1", port=free_port(), tls=tls), ShutdownConfig(drain_delay_s=0)
    )
    await host.start()
    return host


async def run_probe(*args: str) -> int:
    return await asyncio.to_thread(main, ["probe", *args, "--connect-timeout", "2"])


async def test_tls_port_answers_a_tls_probe_and_refuses_plaintext(pki: Pki) -> None:
    """With server TLS, `probe --tls --tls-ca-cert` is SERVING; a plaintext probe cannot connect."""
    host = await tls_host(ServerTls(cert_file=str(pki.server_cert), key_file=str(pki.server_key)))
    address = f"127.0.0.1:{host.port}"
    try:
        assert await run_probe(address, "--tls", "--tls-ca-cert", str(pki.ca)) == probe.OK
        assert await run_probe(address) != probe.OK
    finally:
        await host.stop()


async def test_mutual_tls_requires_a_client_certificate(pki: Pki) -> None:
    """With a client CA, a probe without a client certificate fails and one with it passes."""
    host = await tls_host(
        ServerTls(cert_file=str(pki.server_cert), key_file=str(pki.server_key), client_ca_file=str(pki.ca))
    )
    address = f"127.0.0.1:{host.port}"
    try:
        assert await run_probe(address, "--tls", "--tls-ca-cert", str(pki.ca)) in (
            probe.CONNECTION_FAILED,
            probe.RPC_FAILED,
        )
        with_cert = (
            "--tls",
            "--tls-ca-cert",
            str(pki.ca),
            "--tls-client-cert",
            str(pki.client_cert),
            "--tls-client-key",
            str(pki.client_key),
        )
        assert await run_probe(address, *with_cert) == probe.OK
    finally:
        await host.stop()


async def test_wrong_ca_fails_the_handshake(pki: Pki, tmp_path: Path) -> None:
    """A client that trusts another CA does not connect to the TLS port."""
    other = make_pki(tmp_path / "other")
    host = await tls_host(ServerTls(cert_file=str(pki.server_cert), key_file=str(pki.server_key)))
    try:
        code = await run_probe(f"127.0.0.1:{host.port}", "--tls", "--tls-ca-cert", str(other.ca))
        assert code == probe.CONNECTION_FAILED
    finally:
        await host.stop()


async def test_unreadable_certificate_fails_start_naming_the_key(tmp_path: Path) -> None:
    """A missing certificate file is a config error naming tls.cert_file and the path."""
    host = ServiceHost(
        [],
        GrpcServerConfig(
            host="127.0.0.1",
            port=free_port(),
            tls=ServerTls(cert_file=str(tmp_path / "nope.pem"), key_file=str(tmp_path / "nope.key")),
        ),
        ShutdownConfig(),
    )
    with pytest.raises(ConfigError, match=r"tls\.cert_file: cannot read .*nope\.pem"):
        await host.start()
