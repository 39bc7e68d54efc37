"""``wedmesh up``: a small supervisor for the whole mesh on one machine.

It starts a private ``redis-server`` when no Redis URL is configured (AOF on, data in
``redis.local_data_dir`` so it survives restarts), then each service as its own process
(``wedmesh serve <name>``), because one Python process uses one core. SIGINT/SIGTERM
stop the services first (each drains gracefully), then Redis. When any child dies the
others are stopped too, so nothing runs half-broken. Children run in their own session
(Ctrl-C reaches only the supervisor, which stops them in order) and are asked by the
kernel to die with the supervisor (PR_SET_PDEATHSIG), so no process is left behind.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from services.core.config import ENV_CONFIG_FILE, ENV_REDIS_URL, MeshConfig
from services.core.local_redis import (
    RedisServer,
    die_with_parent,
    port_is_free,
    start_redis_server,
)
from services.core.probe import OK, probe

log = logging.getLogger("wedmesh.up")

PROCESSES = ("registry", "gateway", "webhooks", "shim")
READY_TIMEOUT_S = 30.0
POLL_S = 0.1


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]


def run_up(config: MeshConfig, config_file: Path | None, overrides: dict[str, str] | None = None) -> int:
    """Run the mesh until a signal (exit 0) or until a child dies (exit 1).

    ``overrides`` (dotted keys, from ``--set``) reach the children as ``WEDMESH_*`` variables.
    """
    stop_requested: list[int] = []
    previous = {
        sig: signal.signal(sig, lambda signum, frame: stop_requested.append(signum))
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    env = dict(os.environ)
    if config_file is not None:
        env[ENV_CONFIG_FILE] = str(config_file)
    for dotted, value in (overrides or {}).items():
        env["WEDMESH_" + "__".join(part.upper() for part in dotted.split("."))] = value
    redis: RedisServer | None = None
    children: list[Child] = []
    try:
        if not config.redis.url:
            redis = _start_private_redis(config)
        env[ENV_REDIS_URL] = redis.url if redis is not None else str(config.redis.url)
        for name in PROCESSES:
            children.append(Child(name, _spawn(name, env)))
        _announce_when_ready(config, children, stop_requested)
        failed = _wait(children, stop_requested)
        return 1 if failed else 0
    finally:
        # host drain (delay + grace) and background tasks (grace), with a margin
        _stop_children(children, config.shutdown.drain_delay_s + 2 * config.shutdown.grace_s + 5)
        if redis is not None:
            redis.stop()
            log.info("private redis stopped", extra={"port": redis.port})
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _start_private_redis(config: MeshConfig) -> RedisServer:
    port = config.redis.local_port
    if not port_is_free(port):
        raise SystemExit(
            f"wedmesh up: port {port} for the private Redis is taken; set "
            "WEDMESH_REDIS__LOCAL_PORT to a free port, or REDIS_URL to use an existing Redis"
        )
    server = start_redis_server(
        Path(config.redis.local_data_dir),
        port=port,
        appendfsync=config.redis.local_appendfsync,
    )
    log.info("private redis started", extra={"url": server.url, "data_dir": str(server.data_dir)})
    return server


def _spawn(name: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        die_with_parent([sys.executable, "-m", "services.cli", "serve", name]),
        env=env,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def _announce_when_ready(config: MeshConfig, children: list[Child], stop: list[int]) -> None:
    """Probe every gRPC port until SERVING, then say so once (a start-up figure for users)."""
    started = time.monotonic()
    targets = {name: config.grpc_server(name).address for name in PROCESSES if name != "shim"}
    targets["shim"] = f"http://{config.shim.host}:{config.shim.port}/healthz"
    while targets and not stop and time.monotonic() - started < READY_TIMEOUT_S:
        if any(c.process.poll() is not None for c in children):
            return
        for name, address in list(targets.items()):
            if _answers(name, address):
                del targets[name]
        if targets:
            time.sleep(POLL_S)
    if not targets:
        log.info(
            "mesh up",
            extra={
                "seconds": round(time.monotonic() - started, 2),
                "registry": config.registry.address,
                "gateway": config.gateway.address,
                "webhooks": config.webhooks.address,
                "shim": f"http://{config.shim.host}:{config.shim.port}",
            },
        )
    elif not stop:
        log.warning("not every service is SERVING yet", extra={"waiting_for": sorted(targets)})


def _answers(name: str, address: str) -> bool:
    if name != "shim":
        return probe(address, connect_timeout=0.2, rpc_timeout=0.5).code == OK
    try:
        return httpx.get(address, timeout=0.5, verify=False).status_code == 200
    except httpx.HTTPError:
        return False


def _wait(children: list[Child], stop: list[int]) -> bool:
    """Block until a signal (False) or a child's death (True)."""
    while not stop:
        for child in children:
            code = child.process.poll()
            if code is not None:
                log.error(
                    "a service exited; stopping the mesh",
                    extra={"service": child.name, "code": code},
                )
                return True
        time.sleep(POLL_S)
    log.info("stopping the mesh", extra={"signal": signal.Signals(stop[0]).name})
    return False


def _stop_children(children: list[Child], timeout: float) -> None:
    """The shim first (so providers get 503 from it, not a half-drained intake), then the rest."""
    ordered = sorted(children, key=lambda c: c.name != "shim")
    shim = [c for c in ordered if c.name == "shim" and c.process.poll() is None]
    for child in shim:
        child.process.send_signal(signal.SIGTERM)
    for child in shim:
        try:
            child.process.wait(min(timeout, 15))
        except subprocess.TimeoutExpired:
            pass
    for child in ordered:
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for child in children:
        try:
            child.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("killing a service that did not stop in time", extra={"service": child.name})
            child.process.kill()
            child.process.wait()
