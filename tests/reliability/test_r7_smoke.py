"""R7's smoke mode runs against the session lab: one trial (an unacknowledged detach, then
4 moves in a row), judged by libvirt and RBD, as `python -m reliability.r7_detach --smoke`.
The full campaign (5 trials x 20 moves) is not part of the suite; its figures are in
reliability/RESULTS.md."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.lab.info import LabInfo
from reconciler.lab.proc import free_ports

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(1200)  # guests boot under TCG on a shared 2-core machine
def test_r7_detach_smoke(lab: LabInfo, tmp_path: Path) -> None:
    (port,) = free_ports(1)
    env = dict(os.environ, VOLCTL_RELIABILITY_RESULTS=str(tmp_path))
    env.pop("VOLCTL_CONFIG", None)
    cmd = [sys.executable, "-m", "reliability.r7_detach", "--smoke", "--seed", "7"]
    cmd += ["--lab-dir", lab.dir, "--volctl-listen", f"127.0.0.1:{port}"]
    with subprocess.Popen(
        cmd,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # a timeout kills the scenario's controller with it
    ) as child:
        try:
            out, _ = child.communicate(timeout=900)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
    doc = json.loads((tmp_path / "r7_detach-latest.json").read_text())
    assert doc["seed"] == 7
    assert doc["ok"] is True, out[-4000:]
    (row,) = doc["rows"]
    assert row["mode"] in ("paused", "booting")
    assert row["final_watchers"] == 1
    assert row["burst_moves"] == 4
    assert doc["summary"]["double_attach_samples"] == 0
