"""Run one reliability scenario's smoke mode exactly as documented, and read its JSON.

Like the benchmark smoke tests: a subprocess in its own session (a timeout kills the whole
process group, so a `volctl run` the scenario started never goes on reconciling the shared
lab), its JSON written into the test's tmp dir.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def run_scenario(name: str, tmp_path: Path, *args: str, timeout: float = 900) -> dict[str, Any]:
    env = dict(os.environ, VOLCTL_RELIABILITY_RESULTS=str(tmp_path))
    env.pop("VOLCTL_CONFIG", None)
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
            stdout, stderr = child.communicate(timeout=timeout)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
    out = stdout[-4000:] + stderr[-4000:]
    path = tmp_path / f"{name}-latest.json"
    assert path.is_file(), out
    doc: dict[str, Any] = json.loads(path.read_text())
    assert doc["scenario"] == name
    assert doc["seed"] >= 0
    assert child.returncode == 0, out
    assert doc["ok"] is True, out
    return doc
