"""Hot-path ids: uuid4-shaped, unique per call, and not repeated by a forked child."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

from services.core.ids import unique_id

REPO = Path(__file__).resolve().parents[2]

# Forks in a fresh, single-threaded interpreter (forking the test process, which runs gRPC
# threads, is what Python warns against).
FORKING = textwrap.dedent(
    """
    import os, sys
    from services.core.ids import unique_id
    read, write = os.pipe()
    if os.fork() == 0:
        os.write(write, ",".join(unique_id() for _ in range(1000)).encode())
        os._exit(0)
    mine = {unique_id() for _ in range(1000)}
    os.close(write)
    data = b""
    while chunk := os.read(read, 65536):
        data += chunk
    theirs = set(data.decode().split(","))
    os.wait()
    sys.exit(0 if len(theirs) == 1000 and not mine & theirs else 1)
    """
)


def test_ids_are_unique_hex_of_uuid_shape() -> None:
    ids = [unique_id() for _ in range(100_000)]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids[:1000])


def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    """Parent and child count from the same place; the child's re-drawn prefix keeps them apart."""
    result = subprocess.run([sys.executable, "-c", FORKING], cwd=REPO, timeout=60)
    assert result.returncode == 0
