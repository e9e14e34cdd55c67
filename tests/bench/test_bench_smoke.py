"""Every benchmark's smoke mode runs, so bench/ never rots (the full runs are not in CI).

Each test runs one benchmark exactly as documented (`python -m bench.bN_... --smoke`) as a
subprocess, against the session lab where it needs one, writing its JSON into the test's
tmp dir, and then checks that the result file is sane: every tool reached the verified end
state, the environment is recorded, and the figures are positive and consistent.  B2 also
asserts volctl's steady-state target (O(hosts) RPCs, no per-domain XML fetch).
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
from reconciler.lab.proc import free_ports

REPO = Path(__file__).resolve().parents[2]
TOOLS = ("baseline", "volctl", "ansible", "kcli")


def run_bench(name: str, tmp_path: Path, *args: str, timeout: float = 280) -> dict[str, Any]:
    env = dict(os.environ, VOLCTL_BENCH_RESULTS=str(tmp_path))
    env.pop("VOLCTL_CONFIG", None)
    # its own session, so a timeout kills the benchmark's whole process group: a `volctl run`
    # it started and left behind would go on reconciling the shared lab against its own fleet
    with subprocess.Popen(
        [sys.executable, "-m", f"bench.{name}", "--smoke", *args],
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
    proc = subprocess.CompletedProcess(child.args, child.returncode, stdout, stderr)
    out = proc.stdout[-4000:] + proc.stderr[-4000:]
    assert proc.returncode == 0, out
    path = tmp_path / f"{name}-latest.json"
    assert path.is_file(), out
    doc: dict[str, Any] = json.loads(path.read_text())
    assert doc["benchmark"] == name
    assert doc["ok"] is True, out
    env_rec = doc["environment"]
    for key in ("date", "cores", "libvirt", "qemu", "ceph", "python"):
        assert env_rec[key], key
    return doc


def _lab_args(lab: LabInfo) -> list[str]:
    return ["--lab-dir", lab.dir, "--prefix", "bsmoke"]


def _listen() -> str:
    """A free port for the benchmark's own controller: a fixed default collides with any other
    run on the machine (another checkout's suite, a benchmark in progress)."""
    (port,) = free_ports(1)
    return f"127.0.0.1:{port}"


def test_b1_converge_smoke(lab: LabInfo, tmp_path: Path) -> None:
    doc = run_bench(
        "b1_converge",
        tmp_path,
        *_lab_args(lab),
        "--tools",
        ",".join(TOOLS),
        "--volctl-listen",
        _listen(),
    )
    assert doc["environment"]["ansible"]
    assert doc["environment"]["kcli"]
    rows = {r["tool"]: r for r in doc["rows"]}
    assert set(rows) == set(TOOLS)
    for tool, row in rows.items():
        assert row["ok"], (tool, row.get("error"), row.get("converge_verified"))
        assert row["converge_s"] > 0
        assert row["converge_verified"]["checked_vms"] == 2
    assert rows["volctl"]["volctl_over_tool"] == pytest.approx(1.0)
    bound = doc["critical_path"]
    assert 0 < bound["bound_s"] <= rows["baseline"]["converge_s"]
    assert bound["calls"] == 2 * 6  # clone, resize, define, start, create, attach per VM


def test_b2_rerun_smoke(lab: LabInfo, tmp_path: Path) -> None:
    doc = run_bench(
        "b2_rerun",
        tmp_path,
        *_lab_args(lab),
        "--tools",
        ",".join(TOOLS),
        "--volctl-listen",
        _listen(),
    )
    rows = {r["tool"]: r for r in doc["rows"]}
    assert set(TOOLS) <= set(rows)
    for tool in TOOLS:
        assert rows[tool]["ok"], (tool, rows[tool].get("error"))
        assert rows[tool]["rerun_s"] > 0
    for tool in ("baseline", "ansible", "kcli"):
        assert rows[tool]["rerun_rpcs"] > 0  # a re-run of a peer asks libvirt again
    hosts = doc["summary"]["hosts"]
    # `volctl apply` itself never calls libvirt; at most a controller resync falls in its window
    assert rows["volctl"]["rerun_rpcs"] <= 2 * hosts
    warm = rows["volctl resync pass (warm controller)"]
    assert warm["ok"]
    assert 0 < warm["rerun_rpcs"] <= 2 * hosts  # O(hosts), not O(domains)
    assert warm["rerun_xml_desc"] == 0
    own = rows["volctl observe, warm (backend rpc_count())"]
    assert own["rerun_rpcs"] == hosts
    assert own["rerun_xml_desc"] == 0
    assert rows["baseline"]["rerun_xml_desc"] == 2  # the script reads every domain's XML


def test_b3_scale_smoke(tmp_path: Path) -> None:
    doc = run_bench("b3_scale", tmp_path)
    rows = doc["rows"]
    assert len(rows) == 12  # 6 observe, 4 plan, 2 steady plan
    for r in rows:
        assert r["ok"], r
        assert r["time_s"] > 0
        assert r["peak_rss_mib"] > 10
    warm = [r for r in rows if r["what"].startswith("observe warm")]
    assert [r["rpcs"] for r in warm] == [r["size"] for r in warm]  # one RPC per host
    assert all(r["vs_baseline"] > 0 for r in warm)
    assert all(v["time_exponent"] is not None for v in doc["exponents"].values())
    plans = [r for r in rows if r["what"].startswith("plan")]
    assert all(r["cpu_s"] > 0 and r["median_s"] >= r["time_s"] for r in plans)  # fastest of N


def test_b4_latency_smoke(lab: LabInfo, tmp_path: Path) -> None:
    doc = run_bench("b4_latency", tmp_path, *_lab_args(lab), "--volctl-listen", _listen())
    rows = doc["rows"]
    # 4 reactions, `--help` and `get vms` start-up, the fleet's apply --wait and cold start
    assert len(rows) == 8
    for r in rows:
        assert r["ok"], r
        assert r["trials"] >= 2
        assert 0 < r["median_ms"] < 60_000
    cold = rows[-1]["runs"]
    assert all(run["converged"] for run in cold)
    assert all({"startup_s", "pass_s", "exit_s", "steps_ms"} <= set(run) for run in cold)


def test_b5_rest_smoke(tmp_path: Path) -> None:
    doc = run_bench("b5_rest", tmp_path, "--listen", _listen())
    rows = doc["rows"]
    assert {r["endpoint"] for r in rows} == {"/healthz", "/vm/query?vmid=N", "/api/v1/vms"}
    for r in rows:
        assert r["ok"], r
        assert r["rps"] > 0
        assert r["errors"] == 0
        assert r["p50_ms"] > 0
    assert doc["params"]["resources"] >= 300


def test_b6_ha_smoke(lab: LabInfo, tmp_path: Path) -> None:
    doc = run_bench("b6_ha", tmp_path, *_lab_args(lab))
    rows = {r["measurement"]: r for r in doc["rows"]}
    takeover = rows["takeover: SIGKILL -> new leader acts"]
    assert takeover["trials"] == 2
    lease_ms = 1000 * doc["params"]["lease"]
    assert lease_ms <= takeover["min_ms"] <= 3 * lease_ms  # waits out a lease, not much more
    for r in doc["rows"]:
        assert r["ok"], r
        assert r["median_ms"] > 0


def test_b7_datacenter_smoke(lab: LabInfo, tmp_path: Path) -> None:
    doc = run_bench("b7_datacenter", tmp_path, *_lab_args(lab), timeout=900)
    rows = [r for r in doc["rows"] if not r["what"].startswith("baseline")]
    base = [r for r in doc["rows"] if r["what"].startswith("baseline")]
    assert [r["size"] for r in rows] == [20, 60]
    assert [r["size"] for r in base] == [20]
    for r in rows:
        assert r["ok"], r
        assert r["held"] == r["size"]  # every root image held by its running test:/// domain
        assert r["libvirt_rpcs"] == r["size"] // 10  # one getAllDomainStats per host
        for part in ("libvirt_s", "ceph_s", "observe_s", "plan_s", "status_s"):
            assert r[part] > 0, part
        assert r["pass_s"] == pytest.approx(r["observe_s"] + r["plan_s"] + r["status_s"])
        # a steady pass's plan and status come from the engine's memos (equal fresh inputs)
        assert r["plan_memo_hits"] == r["status_memo_hits"] == 3
    # the steady Ceph side does not grow with the pool; the baseline opens every image
    assert rows[0]["ceph_calls_by_kind"] == rows[1]["ceph_calls_by_kind"]
    assert base[0]["ceph_calls_by_kind"]["open"] == 20
    assert doc["exponents"]["ceph_calls"] == pytest.approx(0.0)
    assert doc["idle_osd_ops_per_s"] >= 0
