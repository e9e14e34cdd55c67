"""The smoke modes of R1 (crash anywhere), R5 (REST fuzzing) and R6 (store faults).

Each runs one small trial against the session lab, in a pool of its own, and must meet its
scenario's goals as judged from libvirt, RBD and the REST view (the full campaigns are in
reliability/RESULTS.md, not in the suite).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.lab.info import LabInfo
from tests.reliability.smoke import run_scenario


# the kill lands inside the apply (its window is the apply's own duration), so the restart
# may wait for a just-booted TCG guest to acknowledge a detach: minutes on a loaded machine
@pytest.mark.timeout(900)
def test_r1_crash_smoke(lab: LabInfo, tmp_path: Path) -> None:
    doc = run_scenario("r1_crash", tmp_path, "--lab-dir", lab.dir, timeout=800)
    (row,) = doc["rows"]
    assert row["converged"] is True
    assert row["duplicates"] == 0
    assert row["orphans"] == 0
    assert row["volumes_checked"] == 1
    assert row["volumes_corrupted"] == 0
    assert row.get("killed_running") is not None  # the SIGKILL really happened


def test_r5_rest_fuzz_smoke(lab: LabInfo, tmp_path: Path) -> None:
    doc = run_scenario("r5_rest_fuzz", tmp_path, "--lab-dir", lab.dir)
    (row,) = doc["rows"]
    assert row["requests"] == 300
    assert row["answers_500"] == 0
    assert row["healthy_after"] is True
    assert sum(row["statuses"].values()) == 300
    assert {"200", "400", "404", "405"} <= set(row["statuses"])  # it reached real handlers


def test_r6_store_faults_smoke(lab: LabInfo, tmp_path: Path) -> None:
    doc = run_scenario("r6_store_faults", tmp_path, "--lab-dir", lab.dir)
    (row,) = doc["rows"]
    assert row["case"] == "corrupt"
    assert row["intact"] is True
    assert row["destroying_actions"] == 0
    assert row["file"] in row["error"]
