"""What every tool runner offers to B1 and B2.

A runner turns the shared `Fleet` into its tool's own input (a script, a playbook, a kcli
plan, volctl YAML), runs it, and says in `notes` exactly what the tool did where it could not
do the same work.  Timing, RPC counting and end-state checks are done by the benchmark around
the runner, identically for every tool.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bench.common.fleet import Fleet


@dataclass
class Call:
    """One timed backend call (baseline only): the raw material of the critical-path bound."""

    host: str  # lab host name, or "ceph"
    vm: str
    op: str  # "rbd.clone", "rbd.resize", "rbd.create", "define", "start", "attach"
    seconds: float


@dataclass
class ToolRun:
    ok: bool
    error: str = ""
    calls: list[Call] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    # the timed step's own wall time, when the runner does untimed work after it (reading
    # its logs); None: the benchmark's clock around converge() is the time
    seconds: float | None = None


class ToolUnavailable(Exception):
    """The tool cannot run here at all; the reason is reported instead of a time."""


class Tool(Protocol):
    name: str
    rbd_backed: bool  # False: the tool could not use RBD and the end state is checked without
    notes: list[str]

    def prepare(self, fleet: Fleet) -> None: ...

    def converge(self, fleet: Fleet) -> ToolRun: ...

    def rerun(self, fleet: Fleet) -> ToolRun: ...

    def cleanup(self, fleet: Fleet) -> None: ...

    def close(self) -> None: ...


def run_logged(
    cmd: list[str],
    log: str,
    *,
    env: dict[str, str] | None = None,
    timeout: float = 1800,
    cwd: str | None = None,
) -> tuple[int, float]:
    """Run a command with its output in `log`; returns (exit code, seconds)."""
    t0 = time.monotonic()
    with Path(log).open("ab") as fh:
        fh.write(f"\n$ {' '.join(cmd)}\n".encode())
        fh.flush()
        try:
            rc = subprocess.run(
                cmd,
                stdout=fh,
                stderr=subprocess.STDOUT,
                env=env,
                timeout=timeout,
                check=False,
                cwd=cwd,
            ).returncode
        except subprocess.TimeoutExpired:
            rc = 124
    return rc, time.monotonic() - t0


def tail(path: str, lines: int = 15) -> str:
    try:
        with Path(path).open(errors="replace") as fh:
            return "".join(fh.readlines()[-lines:])
    except OSError:
        return ""
