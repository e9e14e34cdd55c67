"""`volctl doctor` on the real lab, as client.volctl: it passes on a healthy site and each
broken piece (a host without the ceph secret, a stopped libvirtd, a read-only Ceph user)
fails the right check, naming the host, URI or cap and the fix."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import libvirt
import rbd
import yaml

from reconciler.backends.probe_libvirt import define_ceph_secret
from reconciler.lab.ceph import CephCluster
from reconciler.lab.info import LabInfo
from reconciler.lab.lab import Lab
from reconciler.lab.testing import LabPool, admin_cluster


def doctor(config: Path, lab: LabInfo, *args: str) -> subprocess.CompletedProcess[str]:
    volctl = Path(sys.executable).with_name("volctl")
    return subprocess.run(
        [str(volctl), "--config", str(config), "doctor", "-f", lab.inventory_path, *args],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip


def rows(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    checks: list[dict[str, Any]] = json.loads(result.stdout)["checks"]
    return checks


def failures(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    return [r for r in rows(result) if r["status"] == "fail"]


def _secret_defined(uri: str, secret_uuid: str) -> bool:
    conn = libvirt.open(uri)
    try:
        conn.secretLookupByUUIDString(secret_uuid)
    except libvirt.libvirtError:
        return False
    finally:
        conn.close()
    return True


def _key(lab: LabInfo) -> bytes:
    return CephCluster(Path(lab.ceph_conf).parent).key_of(lab.ceph_user)


def test_doctor_passes_on_the_lab(lab: LabInfo, lab_pool: LabPool) -> None:
    table = doctor(lab_pool.config_path, lab)
    assert table.returncode == 0, table.stdout + table.stderr
    assert "checks passed" in table.stdout
    result = doctor(lab_pool.config_path, lab, "-o", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    checks = {(r["check"], r["target"]) for r in rows(result)}
    for host in lab.hosts:
        for check in ("host.connect", "host.versions", "host.secret", "host.rbd", "host.clock"):
            assert (check, f"host {host.name}") in checks
    for cap in ("create", "meta", "lock", "clone", "blocklist", "remove"):
        assert any(c == f"ceph.caps.{cap}" for c, _ in checks)
    assert json.loads(result.stdout)["ok"] is True
    # the scratch image is gone and the probe domains too
    with admin_cluster(lab).connect() as cluster, cluster.open_ioctx(lab_pool.pool) as io:
        assert rbd.RBD().list(io) == []
    for host in lab.hosts:
        conn = libvirt.open(host.uri)
        try:
            assert not [d for d in conn.listAllDomains() if "doctor" in d.name()]
        finally:
            conn.close()


def test_missing_secret_fails_naming_the_host_and_fix_secrets_repairs_it(
    lab: LabInfo, lab_pool: LabPool
) -> None:
    broken = lab.hosts[-1]
    conn = libvirt.open(broken.uri)
    try:
        conn.secretLookupByUUIDString(lab.secret_uuid).undefine()
    finally:
        conn.close()
    key_text = base64.b64encode(_key(lab)).decode()
    try:
        result = doctor(lab_pool.config_path, lab, "-o", "json")
        assert result.returncode == 1, result.stdout + result.stderr
        (secret_fail,) = [r for r in failures(result) if r["check"] == "host.secret"]
        assert secret_fail["target"] == f"host {broken.name}"
        assert "--fix-secrets" in secret_fail["fix"]
        table = doctor(lab_pool.config_path, lab)
        assert table.returncode == 1
        assert f"host {broken.name}" in table.stdout
        assert "volctl doctor --fix-secrets" in table.stdout

        fixed = doctor(lab_pool.config_path, lab, "--fix-secrets")
        assert fixed.returncode == 0, fixed.stdout + fixed.stderr
        assert "defined now by --fix-secrets" in fixed.stdout
        assert _secret_defined(broken.uri, lab.secret_uuid)
        again = doctor(lab_pool.config_path, lab, "--fix-secrets")  # idempotent
        assert again.returncode == 0, again.stdout + again.stderr
        assert "defined now" not in again.stdout
        for out in (result, table, fixed, again):
            assert key_text not in out.stdout + out.stderr
    finally:  # leave the lab as it was for the other tests
        define_ceph_secret(broken.uri, lab.secret_uuid, f"client.{lab.ceph_user} lab", _key(lab))


def test_stopped_libvirtd_fails_naming_the_uri(lab: LabInfo, lab_pool: LabPool) -> None:
    the_lab = Lab(lab.dir)
    down = lab.hosts[-1]
    the_lab.stop_host_daemon(down.name)
    try:
        result = doctor(lab_pool.config_path, lab, "-o", "json")
    finally:
        the_lab.start_host_daemon(down.name)
    assert result.returncode == 1, result.stdout + result.stderr
    (connect,) = [r for r in failures(result) if r["check"] == "host.connect"]
    assert connect["target"] == f"host {down.name}"
    assert down.uri in connect["detail"]
    assert "libvirtd" in connect["fix"]
    others = [r for r in rows(result) if r["target"] != f"host {down.name}"]
    assert all(r["status"] == "pass" for r in others), others


def test_read_only_ceph_user_fails_naming_the_missing_cap(
    lab: LabInfo, lab_pool: LabPool, tmp_path: Path
) -> None:
    user = f"volctl-ro-{uuid.uuid4().hex[:6]}"
    admin = admin_cluster(lab)
    admin.create_user(user, {"mon": "profile rbd", "osd": "profile rbd-read-only"})
    doc = yaml.safe_load(lab_pool.config_path.read_text())
    doc["ceph"]["user"] = user
    config = tmp_path / "ro.yaml"
    config.write_text(yaml.safe_dump(doc))
    try:
        result = doctor(config, lab, "-o", "json")
    finally:
        admin.delete_user(user)
    assert result.returncode == 1, result.stdout + result.stderr
    by_check = {r["check"]: r for r in rows(result)}
    assert by_check["ceph.monitors"]["status"] == "pass"
    assert by_check["ceph.pool"]["status"] == "pass"
    create = by_check["ceph.caps.create"]
    assert create["status"] == "fail"
    assert "permission denied" in create["detail"]
    assert f"osd 'profile rbd pool={lab_pool.pool}'" in create["fix"]
    assert f"client.{user}" in create["fix"]
    for cap in ("meta", "lock", "clone", "remove"):
        assert by_check[f"ceph.caps.{cap}"]["status"] == "skip"
