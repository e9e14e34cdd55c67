"""Run one reliability scenario's smoke mode exactly as documented, and read its JSON.

Like the benchmark smoke tests: a subprocess in its own session (a timeout kills the whole
process group, so a `volctl run` the scenario started never goes on reconciling the shared
lab), its JSON written into the test's tmp dir.  A scenario that overruns its timeout fails
the test with the output it printed so far (its seed, its trials, the controller digest).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def run_scenario(
    name: str,
    tmp_path: Path,
    *args: str,
    timeout: float = 900,
    cleanup: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """CLEANUP runs after the scenario's process group is gone, whatever happened (R3 thaws
    the lab's Ceph with it)."""
    env = dict(os.environ, VOLCTL_RELIABILITY_RESULTS=str(tmp_path))
    env.pop("VOLCTL_CONFIG", None)
    timed_out = False
    with subprocess.Popen(
        [sys.executable, "-m", f"reliability.{name}", "--smoke", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as child:
        try:
            try:
                stdout, stderr = child.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
                stdout, stderr = child.communicate()
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            if cleanup is not None:
                cleanup()
    out = stdout[-6000:] + stderr[-4000:]
    if timed_out:
        pytest.fail(f"reliability.{name} --smoke did not finish in {timeout:.0f}s:\n{out}")
    path = tmp_path / f"{name}-latest.json"
    assert path.is_file(), out
    doc: dict[str, Any] = json.loads(path.read_text())
    assert doc["scenario"] == name
    assert doc["seed"] >= 0
    assert f"--seed {doc['seed']}" in doc["command"]
    assert child.returncode == 0, out
    assert doc["ok"] is True, out
    return doc
