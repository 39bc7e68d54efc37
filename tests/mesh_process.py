"""The whole mesh as real processes (`wedmesh up`, each service its own `serve` child).

Shared by the end-to-end and fault tests: free ports, the committed example config, the
given Redis, secrets from ``extra_env``, and a clean stop that leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from services.core.config import EXAMPLE_CONFIG
from services.core.local_redis import free_port
from tests import redis_mode
from tests.waiting import wait_for

START_TIMEOUT_S = 60.0
SUPPLIER_WEBHOOK_SECRET = "e2e-supplier-secret"
STRIPE_WEBHOOK_SECRET = "whsec_e2e_stripe"


@dataclass
class Mesh:
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def registry(self) -> str:
        return f"127.0.0.1:{self.env['WEDMESH_REGISTRY__PORT']}"

    @property
    def gateway(self) -> str:
        return f"127.0.0.1:{self.env['WEDMESH_GATEWAY__PORT']}"

    @property
    def shim(self) -> str:
        return f"http://127.0.0.1:{self.env['WEDMESH_SHIM__PORT']}"

    def text(self) -> str:
        return self.log.read_text(errors="replace")


def spawn_up(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`wedmesh up` with its output in ``log`` (Popen returns at once)."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "services.cli", "up"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
        )


@contextlib.asynccontextmanager
async def running_mesh(
    redis_url: str, folder: Path, extra_env: dict[str, str] | None = None
) -> AsyncIterator[Mesh]:
    """Start the mesh on free ports against ``redis_url``; stop it (SIGTERM) on exit."""
    env = mesh_env(redis_url, extra_env)
    process = spawn_up(env, folder / "mesh.log")
    mesh = Mesh(env, process, folder / "mesh.log")
    try:
        await wait_for(
            lambda: process.poll() is not None or '"msg": "mesh up"' in mesh.text(),
            timeout=START_TIMEOUT_S,
            what="mesh up",
        )
        assert process.poll() is None, mesh.text()[-3000:]
        yield mesh
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(process.wait, 60)


@dataclass
class ServeProcess:
    """One `wedmesh serve <name>` process that a fault test can SIGKILL and start again."""

    name: str
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServeProcess:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "services.cli", "serve", self.name],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
            )
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def mesh_env(redis_url: str, overrides: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for mesh processes on fresh free ports against ``redis_url`` (cluster-aware)."""
    env = dict(os.environ)
    ports = {name: str(free_port()) for name in ("REGISTRY", "GATEWAY", "WEBHOOKS", "SHIM")}
    env.update({f"WEDMESH_{name}__PORT": port for name, port in ports.items()})
    env.update(
        {
            "REDIS_URL": redis_url,
            "WEDMESH_CONFIG": str(EXAMPLE_CONFIG),
            "WEDMESH_REGISTRY__METRICS_PORT": "0",
            "WEDMESH_GATEWAY__METRICS_PORT": "0",
            "WEDMESH_WEBHOOKS__METRICS_PORT": "0",
            "WEDMESH_SHIM__INTAKE_ADDRESS": f"127.0.0.1:{ports['WEBHOOKS']}",
            "WEDMESH_WEBHOOKS__ROUTER_ADDRESS": f"127.0.0.1:{ports['REGISTRY']}",
            "WEDMESH_REGISTRY__HEALTH_INTERVAL_S": "0.5",
            "WEDMESH_SHUTDOWN__DRAIN_DELAY_S": "0.1",
            "WEDMESH_SHUTDOWN__GRACE_S": "3",
            "STRIPE_WEBHOOK_SECRET": STRIPE_WEBHOOK_SECRET,
            "SUPPLIER_WEBHOOK_SECRET": SUPPLIER_WEBHOOK_SECRET,
            **redis_mode.service_env(),
            **(overrides or {}),
        }
    )
    return env


async def run_wedmesh(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the ``wedmesh`` CLI as a real process (without blocking the test's event loop)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return subprocess.CompletedProcess(list(args), proc.returncode or 0, out.decode(), err.decode())
