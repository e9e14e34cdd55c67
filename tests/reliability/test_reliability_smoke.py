"""The smoke modes of R3 (Ceph down) and the soak run, so reliability/ never rots.

Each runs exactly as documented (`python -m reliability.<name> --smoke`) as a subprocess in
its own session against the session lab, writing its JSON into the test's tmp dir, and the
test checks the recorded verdicts: every goal met, figures present.  A timeout kills the
scenario's whole process group (its `volctl run` would otherwise go on reconciling the
shared lab) and SIGCONTs the lab's mon and OSD, which R3 may have left frozen.

R3's smoke is one apply trial with a 35 s outage (past the 30 s RBD call deadline); it also
lengthens the lab's PG read leases (reliability/common/ceph_outage.py says why).  The soak's
smoke is 60 s of churn with faults.
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

import pytest

from reconciler.lab.info import LabInfo
from reliability.common.ceph_outage import thaw_lab

REPO = Path(__file__).resolve().parents[2]


def run_scenario(
    name: str, lab: LabInfo, tmp_path: Path, *args: str, timeout: float = 560
) -> dict[str, Any]:
    env = dict(os.environ, VOLCTL_RELIABILITY_RESULTS=str(tmp_path))
    env.pop("VOLCTL_CONFIG", None)
    with subprocess.Popen(
        [sys.executable, "-m", f"reliability.{name}", "--smoke", "--lab-dir", lab.dir, *args],
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
            thaw_lab(lab.dir)
    out = stdout[-4000:] + stderr[-4000:]
    path = tmp_path / f"{name}-latest.json"
    assert path.is_file(), out
    doc: dict[str, Any] = json.loads(path.read_text())
    assert doc["scenario"] == name
    assert doc["seed"] is not None
    assert f"--seed {doc['seed']}" in doc["command"]
    assert child.returncode == 0, out
    assert doc["ok"] is True, out
    return doc


@pytest.mark.timeout(600)
def test_r3_ceph_down_smoke(lab: LabInfo, tmp_path: Path) -> None:
    doc = run_scenario("r3_ceph", lab, tmp_path)
    (row,) = doc["rows"]
    assert row["mode"] == "apply"
    assert row["vm_destroyed"] == 0
    assert row["rest_failed"] == 0
    assert row["rest_probes"] >= 30
    assert row["outage_passes"] >= 1  # the loop went on while Ceph was frozen
    assert "ceph_named_after_s" in row
    assert "Ceph" in row["ceph_message"]
    assert row["recover_s"] > 0


@pytest.mark.timeout(600)
def test_soak_smoke(lab: LabInfo, tmp_path: Path) -> None:
    doc = run_scenario("soak", lab, tmp_path)
    (row,) = doc["rows"]
    assert row["converged"] is True
    assert row["steps"] >= 5
    samples = doc["params"]["samples"]
    assert len(samples) >= 5
    assert all(s["rss_kib"] > 0 and s["fds"] > 0 and s["threads"] > 0 for s in samples)
