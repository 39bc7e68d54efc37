"""The shim's memory stays flat under repeated hostile input (issue #6: "memory flat afterwards").

The shim runs as production runs it, ``wedmesh serve shim`` in its own process, in front of a
real intake. The test reads that process's resident set size between rounds of the fuzz cases
from ``test_shim_hostile``.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from services.core.config import MeshConfig
from services.core.server import ServiceHost
from tests.mesh_process import ServeProcess, mesh_env
from tests.waiting import wait_for
from tests.webhooks.test_shim_hostile import fuzz_request

Start = Callable[..., Awaitable[ServiceHost]]
CASES_PER_ROUND = 1000
ROUNDS = 5  # round 1 warms up; rounds 2..5 are measured
MIB = 1024 * 1024
GROWTH_BOUND = 2 * MIB
Case = tuple[str, str, list[tuple[bytes, bytes]], bytes]


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid``: psutil when installed, else Linux's /proc."""
    try:
        import psutil
    except ImportError:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError(f"no VmRSS for process {pid}") from None
    return int(psutil.Process(pid).memory_info().rss)


def on_read_path(case: Case, rng: random.Random) -> Case:
    """The same hostile headers and body, but POSTed as JSON to a real provider: the shim reads
    the whole body and hands it to intake (which refuses it: it is not signed)."""
    _, _, headers, body = case
    provider = rng.choice(["stripe", "supplier_platform", "email_provider"])
    return "POST", f"/webhooks/{provider}", [(b"content-type", b"application/json"), *headers[1:]], body


async def fuzz_round(client: httpx.AsyncClient, url: str, rng: random.Random) -> int:
    """One round: half the fuzz cases as generated, half on the read path. Every case must get
    an answer and never a 5xx but 503. Returns the body bytes sent on the read path."""
    read = 0
    for index in range(CASES_PER_ROUND):
        method, path, headers, body = case = fuzz_request(rng)
        if index % 2:
            method, path, headers, body = on_read_path(case, rng)
            read += len(body)
        reply = await client.request(method, url + path, headers=headers, content=body)
        assert reply.status_code < 500 or reply.status_code == 503, (method, path, reply.status_code)
    return read


@pytest.mark.slow
async def test_shim_process_memory_is_flat_across_fuzz_rounds(
    start_service: Start, wh_config: MeshConfig, redis_url: str, tmp_path: Path
) -> None:
    """RSS after the warm-up round is the baseline; after each later round it stays within 2 MiB.

    Why 2 MiB: after warm-up, CPython's allocator and the shim's caches are settled. Seen here,
    the 4 measured rounds (4,000 requests) add 0.1-0.6 MiB in all: a slow drift of about
    130 B a request that tracemalloc does not see in the Python heap (allocator arenas, gRPC
    core). Half of each round's cases have their bodies read (0 bytes to 12 kB, 3.4 kB on
    average), about 1.7 MB a round. A leak of one payload per request therefore keeps about
    6.5 MiB over the measured rounds, and with a body leak injected the test saw +7.7 MiB. The
    test also checks that the measured rounds read over 3x the bound in bodies, so such a leak
    cannot fit under it. Leaking the request objects (scope, headers) would add more.
    """
    host = await start_service("webhooks", wh_config)
    env = mesh_env(redis_url, {"WEDMESH_SHIM__INTAKE_ADDRESS": f"127.0.0.1:{host.port}"})
    url = f"http://127.0.0.1:{env['WEDMESH_SHIM__PORT']}"
    shim = ServeProcess("shim", env, tmp_path / "shim.log").start()
    assert shim.process is not None
    try:
        async with httpx.AsyncClient(timeout=15.0) as client:

            async def healthy() -> bool:
                return (await client.get(url + "/healthz")).status_code == 200

            await wait_for(healthy, timeout=30, what="shim process serving")
            rng = random.Random(20261127)
            await fuzz_round(client, url, rng)
            baseline = rss_bytes(shim.process.pid)
            after: list[int] = []
            read_body_bytes = 0
            for _ in range(ROUNDS - 1):
                read_body_bytes += await fuzz_round(client, url, rng)
                after.append(rss_bytes(shim.process.pid))
            assert (await client.get(url + "/healthz")).status_code == 200
        figures = f"baseline {baseline / MIB:.1f} MiB, then " + ", ".join(f"{r / MIB:.1f}" for r in after)
        print(f"shim RSS over {ROUNDS} x {CASES_PER_ROUND} fuzz cases: {figures}; ", end="")
        print(f"bodies read in rounds 2..{ROUNDS}: {read_body_bytes / MIB:.1f} MiB")
        assert read_body_bytes > 3 * GROWTH_BOUND, read_body_bytes
        assert max(after) - baseline < GROWTH_BOUND, figures
    finally:
        shim.stop()
