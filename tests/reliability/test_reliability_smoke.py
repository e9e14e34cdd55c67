"""The smoke modes of R3 (Ceph down) and the soak run, so reliability/ never rots.

Each runs exactly as documented (`python -m reliability.<name> --smoke`) as a subprocess in
its own session against the session lab, writing its JSON into the test's tmp dir, and the
test checks the recorded verdicts: every goal met, figures present.  A timeout kills the
scenario's whole process group (its `volctl run` would otherwise go on reconciling the
shared lab) and SIGCONTs the lab's mon and OSD, which R3 may have left frozen.

R3's smoke is one apply trial with a 60 s outage (as in the campaign: long enough for the
first pass of the outage to reach its 30 s observe deadline while Ceph is still away); it also
lengthens the lab's PG read leases (reliability/common/ceph_outage.py says why).  The soak's
smoke is 60 s of churn with faults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reconciler.lab.info import LabInfo
from reliability.common.ceph_outage import thaw_lab
from tests.reliability.smoke import run_scenario as run_smoke


def run_scenario(name: str, lab: LabInfo, tmp_path: Path, *args: str) -> dict[str, Any]:
    return run_smoke(
        name, tmp_path, "--lab-dir", lab.dir, *args, timeout=560, cleanup=lambda: thaw_lab(lab.dir)
    )


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
