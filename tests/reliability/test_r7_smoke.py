"""R7's smoke mode runs against the session lab: one trial (an unacknowledged detach, then
4 moves in a row), judged by libvirt and RBD, as `python -m reliability.r7_detach --smoke`.
The full campaign (5 trials x 20 moves) is not part of the suite; its figures are in
reliability/RESULTS.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.lab.info import LabInfo
from reconciler.lab.proc import free_ports
from tests.reliability.smoke import run_scenario


@pytest.mark.timeout(1200)  # guests boot under TCG on a shared 2-core machine
def test_r7_detach_smoke(lab: LabInfo, tmp_path: Path) -> None:
    (port,) = free_ports(1)
    doc = run_scenario(
        "r7_detach",
        tmp_path,
        "--seed",
        "7",
        "--lab-dir",
        lab.dir,
        "--volctl-listen",
        f"127.0.0.1:{port}",
        timeout=900,
    )
    assert doc["seed"] == 7
    (row,) = doc["rows"]
    assert row["mode"] in ("paused", "booting")
    assert row["final_watchers"] == 1
    assert row["burst_moves"] == 4
    assert doc["summary"]["double_attach_samples"] == 0
