"""``wedmesh up`` and ``wedmesh serve`` as real processes: start, SERVING, clean stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from services.core import probe
from services.core.local_redis import free_port, port_is_free
from tests.redis_mode import service_env
from tests.waiting import wait_for_sync

START_TIMEOUT_S = 40.0


def processes_mentioning(marker: str) -> list[int]:
    """PIDs whose command line or environment mentions ``marker`` (our children)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            blob = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker.encode() in blob:
            found.append(int(entry.name))
    return found


@pytest.fixture
def mesh_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment for a private mesh on free ports, its Redis data under tmp_path."""
    config = tmp_path / "wedmesh.toml"
    config.write_text(Path("wedmesh.example.toml").read_text())
    env = dict(os.environ)
    env.update(
        {
            "WEDMESH_CONFIG": str(config),
            "WEDMESH_REGISTRY__PORT": str(free_port()),
            "WEDMESH_GATEWAY__PORT": str(free_port()),
            "WEDMESH_WEBHOOKS__PORT": str(free_port()),
            "WEDMESH_REGISTRY__METRICS_PORT": str(free_port()),
            "WEDMESH_GATEWAY__METRICS_PORT": str(free_port()),
            "WEDMESH_WEBHOOKS__METRICS_PORT": str(free_port()),
            "WEDMESH_SHIM__PORT": str(free_port()),
            "WEDMESH_REDIS__LOCAL_PORT": str(free_port()),
            "WEDMESH_REDIS__LOCAL_DATA_DIR": str(tmp_path / "redis"),
            "WEDMESH_SHUTDOWN__DRAIN_DELAY_S": "0.2",
            "WEDMESH_SHUTDOWN__GRACE_S": "3",
        }
    )
    env["WEDMESH_SHIM__INTAKE_ADDRESS"] = f"127.0.0.1:{env['WEDMESH_WEBHOOKS__PORT']}"
    env.pop("REDIS_URL", None)
    yield env
    for pid in processes_mentioning(str(config)):  # never leave a stray behind a failed test
        os.kill(pid, signal.SIGKILL)


def grpc_ports(env: dict[str, str]) -> list[str]:
    return [env[f"WEDMESH_{name}__PORT"] for name in ("REGISTRY", "GATEWAY", "WEBHOOKS")]


def all_serving(env: dict[str, str]) -> bool:
    ok = all(
        probe.probe(f"127.0.0.1:{port}", connect_timeout=0.3, rpc_timeout=0.5).code == probe.OK
        for port in grpc_ports(env)
    )
    shim = httpx.get(f"http://127.0.0.1:{env['WEDMESH_SHIM__PORT']}/healthz", timeout=0.5)
    return ok and shim.status_code == 200


class Up:
    """A `wedmesh up` child whose log goes to a file, so tests can wait on its lines."""

    def __init__(self, env: dict[str, str], *extra: str) -> None:
        self.log = Path(env["WEDMESH_CONFIG"]).with_suffix(
            f".{len(list(Path(env['WEDMESH_CONFIG']).parent.glob('*.log')))}.log"
        )
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "services.cli", "up", *extra],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=out,
            )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_until_up(self) -> None:
        """The supervisor's own "mesh up" line: every gRPC port SERVING and the shim alive."""
        wait_for_sync(
            lambda: self.process.poll() is not None or '"msg": "mesh up"' in self.text(),
            timeout=START_TIMEOUT_S,
            what="mesh up",
        )
        assert self.process.poll() is None, self.text()[-3000:]

    def stop(self, sig: int = signal.SIGINT) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=60)


@pytest.mark.single_redis  # `up` starts its own private single-node Redis
def test_up_serves_every_port_and_sigint_leaves_nothing_behind(mesh_env: dict[str, str]) -> None:
    """`wedmesh up`: every gRPC port SERVING and /healthz 200; SIGINT stops all, frees all ports."""
    up = Up(mesh_env)
    try:
        up.wait_until_up()
        assert all_serving(mesh_env)
        ready = httpx.get(f"http://127.0.0.1:{mesh_env['WEDMESH_SHIM__PORT']}/readyz", timeout=2)
        assert ready.status_code == 200
    finally:
        code = up.stop()
    assert code == 0, up.text()[-2000:]
    ports = [*grpc_ports(mesh_env), mesh_env["WEDMESH_SHIM__PORT"], mesh_env["WEDMESH_REDIS__LOCAL_PORT"]]
    assert all(port_is_free(int(port)) for port in ports)
    assert processes_mentioning(mesh_env["WEDMESH_CONFIG"]) == []


@pytest.mark.single_redis  # `up` starts its own private single-node Redis
def test_up_keeps_redis_data_across_restarts(mesh_env: dict[str, str]) -> None:
    """The private Redis keeps its AOF in the data folder: data written survives `up` again."""
    url = f"redis://127.0.0.1:{mesh_env['WEDMESH_REDIS__LOCAL_PORT']}/0"
    for round_ in (1, 2):
        up = Up(mesh_env)
        try:
            up.wait_until_up()
            client = redis.Redis.from_url(url)
            if round_ == 1:
                client.set("wm:test:{persist}:k", "kept")
            else:
                assert client.get("wm:test:{persist}:k") == b"kept"
            client.close()
        finally:
            code = up.stop(signal.SIGTERM)
        assert code == 0, up.text()[-2000:]


@pytest.mark.single_redis  # `up` starts its own private single-node Redis
def test_up_stops_everything_when_a_service_dies(mesh_env: dict[str, str]) -> None:
    """If one child dies the supervisor stops the rest and exits non-zero: nothing half-broken."""
    up = Up(mesh_env)
    try:
        up.wait_until_up()
        gateway_port = mesh_env["WEDMESH_GATEWAY__PORT"]
        victims = [
            pid
            for pid in processes_mentioning(mesh_env["WEDMESH_CONFIG"])
            if b"serve\x00gateway" in Path(f"/proc/{pid}/cmdline").read_bytes()
        ]
        assert len(victims) == 1, f"expected one gateway process on {gateway_port}"
        os.kill(victims[0], signal.SIGKILL)
        code = up.process.wait(timeout=60)
    finally:
        up.stop()
    assert code == 1, up.text()[-2000:]
    assert "a service exited; stopping the mesh" in up.text()
    assert processes_mentioning(mesh_env["WEDMESH_CONFIG"]) == []


def test_up_with_redis_url_and_set_uses_that_redis_and_those_ports(
    mesh_env: dict[str, str], redis_url: str
) -> None:
    """`up --redis-url URL --set gateway.port=N`: no private Redis; the children use both."""
    env = {k: v for k, v in mesh_env.items() if k != "WEDMESH_GATEWAY__PORT"} | service_env()
    gateway_port = str(free_port())
    up = Up(env, "--redis-url", redis_url, "--set", f"gateway.port={gateway_port}")
    try:
        up.wait_until_up()
        assert probe.probe(f"127.0.0.1:{gateway_port}").code == probe.OK
        assert port_is_free(int(mesh_env["WEDMESH_REDIS__LOCAL_PORT"]))  # no private Redis
        assert "private redis started" not in up.text()
    finally:
        code = up.stop()
    assert code == 0, up.text()[-2000:]


def test_serve_sigterm_exits_0_and_frees_the_port(mesh_env: dict[str, str], redis_url: str) -> None:
    """`wedmesh serve gateway` drains and exits 0 on SIGTERM."""
    env = {**mesh_env, "REDIS_URL": redis_url, **service_env()}
    port = env["WEDMESH_GATEWAY__PORT"]
    process = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "serve", "gateway"], env=env, stderr=subprocess.PIPE
    )
    try:
        wait_for_sync(
            lambda: probe.probe(f"127.0.0.1:{port}", connect_timeout=0.3).code == probe.OK,
            timeout=START_TIMEOUT_S,
            what="gateway SERVING",
        )
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err.decode(errors="replace")[-2000:]
    assert port_is_free(int(port))


def test_serve_on_a_taken_port_fails_with_a_clear_message(mesh_env: dict[str, str], redis_url: str) -> None:
    """A port already in use is exit 1 naming the address, not a silent shared port."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "services.cli", "serve", "registry", "--port", str(port)],
            env={**mesh_env, "REDIS_URL": redis_url, **service_env()},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"127.0.0.1:{port}" in result.stderr


def test_invalid_config_fails_at_start_naming_the_key(mesh_env: dict[str, str]) -> None:
    """A bad value in the environment stops start-up with the key and the reason."""
    result = subprocess.run(
        [sys.executable, "-m", "services.cli", "serve", "gateway"],
        env={**mesh_env, "WEDMESH_GATEWAY__PORT": "not-a-port"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "gateway.port" in result.stderr
    assert "Traceback" not in result.stderr
