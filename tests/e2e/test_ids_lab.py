"""Ids never come back, on the real lab: a real controller, real Ceph, the seed's query API.

Deleting the VM with the highest vmid and then creating another gives the new VM a new id
(the id ledger's high-water mark in the pool, not max(known) + 1), and a volume deleted under
`reclaimPolicy: Delete` answers `/volume/query` with the seed's `"status": "deleted"` from the
record kept in the ledger.  The ledger itself is checked with the `rados` tool.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from reconciler.lab.testing import LabPool

from .test_usage_lab import CONVERGE, controller, domain_state, http, until, volctl


def _vm(name: str) -> str:
    return (
        f"apiVersion: volctl.io/v1\nkind: VirtualMachine\nmetadata:\n  name: {name}\n"
        "spec:\n  instanceType: small\n  image: lab-base\n  running: false\n"
    )


def _volume(name: str) -> str:
    return (
        f"apiVersion: volctl.io/v1\nkind: Volume\nmetadata:\n  name: {name}\n"
        "spec:\n  size: 1\n  reclaimPolicy: Delete\n"
    )


def _ledger(pool: LabPool) -> dict[str, str]:
    """The omap of the pool's `volctl.ids` object, read with the rados tool."""
    conf = pool.info.ceph_conf
    keys = subprocess.run(
        ["rados", "-c", conf, "-p", pool.pool, "listomapkeys", "volctl.ids"],
        check=True, capture_output=True, text=True, timeout=30,
    ).stdout.split()  # fmt: skip
    out: dict[str, str] = {}
    value = pool.root / "omap-value"
    for key in keys:
        subprocess.run(
            ["rados", "-c", conf, "-p", pool.pool, "getomapval", "volctl.ids", key, str(value)],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        out[key] = value.read_text()
    return out


def test_deleted_ids_are_not_reused_and_deleted_volumes_answer_deleted(
    lab_pool: LabPool, tmp_path: Path
) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    shutil.copy(lab_pool.info.inventory_path, specs / "inventory.yaml")
    (specs / "app.yaml").write_text(_vm("a") + "---\n" + _vm("b") + "---\n" + _volume("v1"))
    wait = ("--wait", "--timeout", f"{CONVERGE}s")
    with controller(lab_pool) as (base, log):
        done = volctl(lab_pool, "apply", "-f", str(specs), *wait)
        assert done.returncode == 0, done.stdout + done.stderr + log.read_text()[-3000:]
        vmid = {n: http(base, f"/api/v1/vms/{n}")[1]["ids"]["vmid"] for n in ("a", "b")}
        assert vmid["a"] < vmid["b"]
        volid = http(base, "/api/v1/volumes/v1")[1]["ids"]["volumeid"]
        ledger = _ledger(lab_pool)
        assert int(ledger["hwm.vm"]) == vmid["b"]
        assert int(ledger["hwm.volume"]) == volid

        # delete the VM with the highest vmid and the volume; both really go
        assert volctl(lab_pool, "delete", "vm", "b").returncode == 0
        assert volctl(lab_pool, "delete", "volume", "v1").returncode == 0
        until("vm b gone from libvirt", lambda: domain_state(lab_pool, "b") == {}, CONVERGE, log)
        until(
            "volume v1 reported deleted",
            lambda: http(base, f"/volume/query?volumeid={volid}")[1].get("status") == "deleted",
            CONVERGE,
            log,
        )
        assert http(base, f"/volume/query?volumeid={volid}") == (
            200,
            {"volumeid": volid, "name": "v1", "size": 1, "status": "deleted"},
        )
        images = subprocess.run(
            ["rbd", "-c", lab_pool.info.ceph_conf, "-p", lab_pool.pool, "ls"],
            check=True, capture_output=True, text=True, timeout=30,
        ).stdout.split()  # fmt: skip
        assert not any("v1" in name for name in images), images
        assert f"deleted.volume.{volid}" in _ledger(lab_pool)

        # new resources get new ids: not b's vmid, not v1's volumeid
        more = _vm("c") + "---\n" + _volume("v2")
        done = volctl(lab_pool, "apply", "-f", "-", *wait, stdin=more)
        assert done.returncode == 0, done.stdout + done.stderr + log.read_text()[-3000:]
        new_vmid = http(base, "/api/v1/vms/c")[1]["ids"]["vmid"]
        new_volid = http(base, "/api/v1/volumes/v2")[1]["ids"]["volumeid"]
        assert new_vmid == vmid["b"] + 1
        assert new_volid == volid + 1
        assert http(base, f"/vm/query?vmid={vmid['b']}")[0] == 404
        assert http(base, f"/volume/query?volumeid={volid}")[1]["status"] == "deleted"
        assert http(base, f"/volume/query?volumeid={new_volid}")[1]["status"] == "available"


def test_version_reports_each_lab_host_and_the_ceph_cluster(
    lab_pool: LabPool, tmp_path: Path
) -> None:
    (tmp_path / "inventory.yaml").write_text(Path(lab_pool.info.inventory_path).read_text())
    done = volctl(lab_pool, "version", "-o", "json", "-f", str(tmp_path / "inventory.yaml"))
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert set(found["hosts"]) == {h.name for h in lab_pool.info.hosts}
    assert all(
        v.count(".") == 2 and not v.startswith("unreachable") for v in found["hosts"].values()
    )
    assert found["ceph"].startswith("ceph version "), found["ceph"]
