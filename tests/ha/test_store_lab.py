"""The RADOS spec store under concurrent writers, on the lab's real Ceph.

Two `volctl apply` at once must never lose a write: different resources both land; the same
resource gives one winner and one conflict.  The same-resource race is forced with two
independent RADOS clients that both read before either writes (two processes rarely overlap
in a window of milliseconds); the different-resources case runs real `volctl apply` pairs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from reconciler.backends.rados_objects import RadosNamespace
from reconciler.lab.info import LabInfo
from reconciler.lab.testing import LabPool
from reconciler.source.rados_store import RadosSpecStore, StoreConflict
from tests.ha.harness import ROOT, env, fleet, ha_config, volctl

TRIALS = int(os.environ.get("VOLCTL_HA_TRIALS", "100"))


def vm(name: str, itype: str = "small", writer: str = "") -> str:
    labels = f"  labels: {{writer: w{writer}}}\n" if writer else ""
    return (
        f"apiVersion: volctl.io/v1\nkind: VirtualMachine\nmetadata:\n  name: {name}\n{labels}"
        f"spec:\n  instanceType: {itype}\n  image: lab-base\n  running: false\n"
    )


def _store(info: LabInfo, pool: str) -> RadosSpecStore:
    return RadosSpecStore(RadosNamespace(info.ceph_conf, pool, "volctl", user=info.ceph_user))


def test_same_resource_one_winner_one_conflict(lab: LabInfo, lab_pool: LabPool) -> None:
    a, b = _store(lab, lab_pool.pool), _store(lab, lab_pool.pool)
    try:
        a.apply([("inventory.yaml", fleet(lab, []))])
        for i in range(TRIALS):
            # both differ from what is stored (an identical apply is a no-op, not a write)
            texts = [
                [("a.yaml", vm("shared", "small", f"{i}-a"))],
                [("b.yaml", vm("shared", "medium", f"{i}-b"))],
            ]
            if i % 2:
                texts.reverse()
            barrier = threading.Barrier(2)
            outcome: dict[int, str] = {}

            def one(k: int, store: RadosSpecStore, docs: list[tuple[str, str]]) -> None:
                pending = store.prepare(docs)
                barrier.wait()  # noqa: B023
                try:
                    store.commit(pending)
                    outcome[k] = "won"  # noqa: B023
                except StoreConflict as exc:
                    outcome[k] = f"conflict: {exc}"  # noqa: B023

            threads = [
                threading.Thread(target=one, args=(k, s, t))
                for k, (s, t) in enumerate(zip((a, b), texts, strict=True))
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            results = sorted(v.split(":")[0] for v in outcome.values())
            assert results == ["conflict", "won"], (i, outcome)
            assert all("the object has been modified" in v for v in outcome.values() if v != "won")
            winner = next(k for k, v in outcome.items() if v == "won")
            stored = a.read("VirtualMachine", "shared")
            assert stored is not None
            want = "small" if (winner == 0) != bool(i % 2) else "medium"
            assert f"instanceType: {want}" in stored, (i, winner, stored)
    finally:
        a.close()
        b.close()


@pytest.mark.timeout(1200)  # 100 pairs of CLI processes: about 3 s each on 2 cores
def test_concurrent_cli_applies_of_different_resources_both_land(
    lab: LabInfo, lab_pool: LabPool, tmp_path: Path
) -> None:
    config = ha_config(lab_pool)
    inv = tmp_path / "inventory.yaml"
    inv.write_text(fleet(lab, []))
    assert volctl(config, "apply", "-f", str(inv)).returncode == 0
    cmd = [sys.executable, "-m", "reconciler.cli.main", "--config", str(config), "apply", "-f", "-"]
    for i in range(TRIALS):
        procs = [
            subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=ROOT,
                env=env(),
            )
            for _ in range(2)
        ]
        outs = [p.communicate(vm(f"c{i}-{k}"), timeout=120) for k, p in enumerate(procs)]
        assert [p.returncode for p in procs] == [0, 0], outs
    store = _store(lab, lab_pool.pool)
    try:
        names = {k[1] for k in store.entries() if k[0] == "virtualmachine"}
    finally:
        store.close()
    assert names == {f"c{i}-{k}" for i in range(TRIALS) for k in range(2)}


def test_a_write_based_on_a_stale_read_is_refused(
    lab: LabInfo, lab_pool: LabPool, tmp_path: Path
) -> None:
    """A CLI apply lands between our read and our write: ours is refused, kubectl's words."""
    config = ha_config(lab_pool)
    inv = tmp_path / "inventory.yaml"
    inv.write_text(fleet(lab, ["x"]))
    assert volctl(config, "apply", "-f", str(inv)).returncode == 0
    store = _store(lab, lab_pool.pool)
    try:
        pending = store.prepare([("x.yaml", vm("x", "medium"))])
        changed = tmp_path / "x.yaml"
        changed.write_text(vm("x", "large"))
        out = volctl(config, "apply", "-f", str(changed))
        assert out.returncode == 0, out.stderr
        with pytest.raises(StoreConflict, match="the object has been modified"):
            store.commit(pending)
        stored = store.read("VirtualMachine", "x")
        assert stored is not None
        assert "instanceType: large" in stored  # the CLI's write won, ours was refused
    finally:
        store.close()
    new = tmp_path / "y.yaml"
    new.write_text(vm("y"))
    shown = volctl(config, "diff", "-f", str(new))  # works from the store alone
    assert shown.returncode == 1, shown.stderr
    assert f"# new: rados://{lab_pool.pool}/volctl/virtualmachine/y.yaml" in shown.stdout
