"""Child processes of bench/peak.py: start, watch (memory, CPU) and stop every one of them.

Every child runs in its own session (a Ctrl-C at the terminal reaches only the driver, which
stops the children in order) and is wrapped by ``setpriv --pdeathsig`` (the kernel SIGTERMs it
if the driver dies without cleaning up), as ``wedmesh up`` does. Children are spawned from the
driver's main thread: PR_SET_PDEATHSIG fires when the *thread* that forked the child exits.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from services.core.local_redis import die_with_parent

ROOT = Path(__file__).resolve().parents[1]
STOP_TIMEOUT_S = 15.0


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of ``pid`` in kB; empty once it has exited."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            name, value = line.split(":", 1)
            out[name] = int(value.split()[0])
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds ``pid`` has used (0 once it has exited)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Child:
    """One child process; ``kind`` groups replicas (``shim``, ``webhooks``, ...)."""

    name: str
    kind: str
    process: subprocess.Popen[str]
    hwm_kb: int = 0
    cpu_s: float = 0.0

    @property
    def pid(self) -> int:
        return self.process.pid

    def observe(self) -> dict[str, int]:
        """Read the memory figures now; keep the last peak and CPU time for after it exits."""
        status = proc_status(self.pid)
        if status:
            self.hwm_kb = max(self.hwm_kb, status.get("VmHWM", 0))
            self.cpu_s = max(self.cpu_s, cpu_seconds(self.pid))
        return status


@dataclass
class Children:
    """All children of one phase, stopped together (SIGTERM, then SIGKILL) however the run ends."""

    folder: Path
    env: dict[str, str]
    items: list[Child] = field(default_factory=list)

    def spawn(self, name: str, kind: str, args: list[str], *, pipe: bool = False) -> Child:
        """Start ``python args...`` with its output in ``<folder>/<name>.log`` (stdout piped if asked)."""
        log: IO[str] = open(self.folder / f"{name}.log", "w")  # the child inherits it; ours is closed below
        process = subprocess.Popen(
            die_with_parent([sys.executable, *args]),
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.PIPE if pipe else subprocess.DEVNULL,
            stdout=subprocess.PIPE if pipe else log,
            stderr=log,
            text=True,
            start_new_session=True,
        )
        log.close()
        child = Child(name, kind, process)
        self.items.append(child)
        return child

    def of(self, kind: str) -> list[Child]:
        return [c for c in self.items if c.kind == kind]

    def dead(self) -> list[Child]:
        return [c for c in self.items if c.process.poll() is not None and c.kind != "load"]

    def stop(self, kinds: tuple[str, ...] | None = None, *, forget: bool = False) -> None:
        """SIGTERM the children (of ``kinds``, else all), wait, SIGKILL whatever is left.

        ``forget`` drops them from the list (stopped on purpose, not to be reported as dead).
        """
        chosen = [c for c in self.items if kinds is None or c.kind in kinds]
        for child in chosen:
            child.observe()
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for child in chosen:
            try:
                child.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"# {child.name} did not stop within {STOP_TIMEOUT_S:.0f} s: killed", flush=True)
                child.process.kill()
                child.process.wait(5)
            for stream in (child.process.stdin, child.process.stdout):
                if stream is not None:
                    try:
                        stream.close()
                    except OSError:  # a pipe to a child that is gone
                        pass
        if forget:
            self.items = [c for c in self.items if c not in chosen]
