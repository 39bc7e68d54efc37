"""Processes for the multi-process tests: SDK sinks and registry/router replicas."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from services.core.local_redis import free_port
from tests import redis_mode
from tests.registry.conftest import FAST
from tests.waiting import wait_for_sync

ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL" and not k.startswith("WEDMESH_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


@dataclass
class SinkProcess:
    """One sink instance (tests/registry/sink_proc.py) in its own process."""

    registry: str
    service: str
    instance: str
    record: Path
    ttl: float = 2.0
    port: int = 0
    process: subprocess.Popen[str] | None = field(default=None, repr=False)

    def start(self) -> SinkProcess:
        args = [
            sys.executable, "-m", "tests.registry.sink_proc", "--registry", self.registry,
            "--service", self.service, "--instance", self.instance, "--record", str(self.record),
            "--ttl", str(self.ttl), "--port", str(self.port),
        ]  # fmt: skip
        self.process = subprocess.Popen(
            args, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line.startswith("ready"), f"sink {self.instance} did not start: {line!r}"
        self.port = int(line.split()[1])
        return self

    async def astart(self) -> SinkProcess:
        """Start without blocking the event loop (the registry may run in it)."""
        return await asyncio.to_thread(self.start)

    def records(self) -> list[dict[str, Any]]:
        if not self.record.exists():
            return []
        return [json.loads(x) for x in self.record.read_text().splitlines() if x.strip()]

    def signal(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._close()

    def _close(self) -> None:
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()


@dataclass
class RegistryProcess:
    """A registry/router replica run as ``python -m services.cli serve registry``."""

    redis_url: str
    log: Path
    overrides: dict[str, Any] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> RegistryProcess:
        env = {**_env(), **redis_mode.service_env()}
        for key, value in {**FAST, **self.overrides}.items():
            env["WEDMESH_" + key.upper().replace(".", "__")] = str(value)
        self._log = self.log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "serve", "registry", "--port", str(self.port),
             "--metrics-port", "0", "--redis-url", self.redis_url],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_for_sync(self._serving, timeout=30, what=f"registry on {self.address}")
        return self

    async def astart(self) -> RegistryProcess:
        return await asyncio.to_thread(self.start)

    def _serving(self) -> bool:
        from services.core.probe import probe

        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"registry exited with {self.process.returncode}; see {self.log}")
        return probe(self.address, rpc_timeout=1.0, connect_timeout=1.0).code == 0

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        if self._log is not None:
            self._log.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self._log is not None:
            self._log.close()
