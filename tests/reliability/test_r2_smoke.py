"""R2's smoke mode: one link cut during an apply, on the SSH transport (the seed's), judged
from libvirt on both hosts: no duplicate, nothing destroyed unseen, Unknown reported, healed.

It gates the timing goals too (they were relaxed while open): the first pass that began
during the cut reports the host Unknown, and the fleet converges within one resync (10 s)
after the heal.  Both hold by design since a lost connection is reopened in the background
and a reconnect runs a pass (docs/backends.md, Timeouts): after the fix the smoke noticed
the cut in ~8 s and recovered in 1-8 s at load 15-36 (reliability/RESULTS.md).  What is
left of the recovery is an ssh handshake and the apply's own work (a guest start), which a
machine loaded beyond 4 runnable tasks per core stretches past 10 s (18.9 s at load 46):
there the timing goals are reported, not gated; the safety goals always are."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

pytestmark = [pytest.mark.lab, pytest.mark.timeout(1800)]
REPO = Path(__file__).resolve().parents[2]
OVERLOADED = 4.0  # runnable tasks per core (1-min load average) beyond which timing is noise


def test_r2_smoke_over_ssh(tmp_path: Path) -> None:
    lab_dir = f"/var/tmp/volctl-r2-smoke-{os.getpid()}"
    env = {**os.environ, "VOLCTL_RELIABILITY_RESULTS": str(tmp_path)}
    run = subprocess.run(
        [sys.executable, "-m", "reliability.r2_hosts", "--smoke", "--transport", "ssh",
         "--cut", "20", "--lab-dir", lab_dir],
        capture_output=True, text=True, timeout=1700, cwd=REPO, env=env, check=False,
    )  # fmt: skip
    out = run.stdout + run.stderr[-3000:]
    doc = json.loads((tmp_path / "r2_hosts-latest.json").read_text())
    assert doc["seed"], out
    assert doc["rows"], out
    row = doc["rows"][0]
    assert row["kind"] == "link-apply"
    assert row["duplicates"] == 0, out
    assert row["unseen_destroys"] == 0, out
    assert row["notice_s"] is not None, out
    assert row["recover_s"] is not None, out
    assert not Path(lab_dir).exists()  # the lab is gone again
    env_ = doc["environment"]
    load = max(env_["load_avg_at_start"][0], env_["load_avg_at_end"][0])
    if load > OVERLOADED * env_["cores"]:
        warnings.warn(f"R2 timing goals not gated at load {load:.0f}: {row}", stacklevel=1)
        return
    assert row["first_pass_after_fault_unknown"] is not False, out
    assert row["recover_s"] <= doc["params"]["resync_s"], out
    assert run.returncode == 0, out
