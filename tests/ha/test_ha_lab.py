"""The HA control plane on the real lab: replicas as processes, Ceph and libvirt for real.

Each test runs `volctl run` replicas against a RADOS store in its own pool, breaks something
(SIGKILL, SIGSTOP, a Ceph outage) and asserts what libvirt and RBD hold afterwards: no
duplicate domain, no orphan image, nothing done by a replica that was not allowed to act.
The lease is 3 s here (6 s by default) to keep the suite short; the rules do not depend on it.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import time
from pathlib import Path
from typing import Any

import libvirt

from reconciler.lab.ceph import CephCluster
from reconciler.lab.info import LabInfo
from reconciler.lab.testing import LabPool
from tests.ha.harness import (
    LEASE,
    Replica,
    domain_epochs,
    domains,
    fleet,
    ha_config,
    http,
    images,
    replicas,
    until,
    volctl,
)

CONVERGE = 240
SEED = ("/vm/query", "/vm/types", "/image/list", "/volume/query")


def _ts(event: dict[str, Any]) -> float:
    return dt.datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00")).timestamp()


def _acts_after(rep: Replica, since: float) -> list[dict[str, Any]]:
    return [e for e in rep.lines() if e.get("event") == "ha.act" and _ts(e) >= since]


def _apply(config: Path, tmp: Path, text: str) -> None:
    f = tmp / f"fleet-{time.monotonic_ns()}.yaml"
    f.write_text(text)
    out = volctl(config, "apply", "-f", str(f))
    assert out.returncode == 0, out.stderr


def _converged(info: LabInfo, pool: str, names: list[str]) -> bool:
    doms = domains(info, pool)
    imgs = images(info, pool)
    roots = {n for n in imgs if n.startswith("vm-")}
    tmp = [n for n in imgs if n.startswith("volctl-tmp.")]
    return (
        set(doms) == set(names)
        and all(len(h) == 1 for h in doms.values())
        and roots == {f"vm-{n}-root" for n in names}
        and not tmp
    )


def _check_world(info: LabInfo, pool: str, names: list[str]) -> dict[str, dict[str, Any]]:
    doms = domains(info, pool)
    dupes = {n: h for n, h in doms.items() if len(h) != 1}
    assert not dupes, f"duplicate domains: {dupes}"
    assert set(doms) == set(names)
    imgs = images(info, pool)
    orphans = sorted(set(imgs) - {f"vm-{n}-root" for n in names})
    assert not orphans, f"orphan images: {orphans}"
    return imgs


def test_sigkill_leader_during_20_vm_apply(lab: LabInfo, lab_pool: LabPool, tmp_path: Path) -> None:
    config = ha_config(lab_pool)
    names = [f"ha-{i:02d}" for i in range(20)]
    with replicas(config, tmp_path, ["r1", "r2", "r3"]) as group:
        old = group.leader()
        epoch_old = old.leader_view()["epoch"]
        _apply(config, tmp_path, fleet(lab, names))
        until("the leader acting", lambda: _acts_after(old, 0), 60, step=0.02)
        old.proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        old.proc.wait()
        rest = [r for r in group.members.values() if r is not old]
        new = group.leader(rest)
        takeover = time.monotonic() - killed
        assert takeover < 2 * LEASE + 4, f"takeover took {takeover:.1f}s"
        view = new.leader_view()
        assert view["epoch"] > epoch_old
        until("convergence", lambda: _converged(lab, lab_pool.pool, names), CONVERGE, step=1)
        imgs = _check_world(lab, lab_pool.pool, names)
        epochs = {im["meta"].get("volctl.epoch") for im in imgs.values()}
        assert epochs <= {str(epoch_old), str(view["epoch"])}
        # every domain's owner mark names the leader term that defined it
        marks = domain_epochs(lab, lab_pool.pool)
        assert set(marks) == set(names)
        assert set(marks.values()) <= {str(epoch_old), str(view["epoch"])}, marks
        # the followers serve the leader's snapshot: same seed bodies, once they have it
        follower = next(r for r in rest if r is not new)
        gen = http(new.url + "/api/v1/status")[1]["generation"]
        until(
            "the follower at the leader's generation",
            lambda: http(follower.url + "/api/v1/status")[1]["generation"] >= gen,
            30,
        )
        for path in SEED:
            leader_body = http(new.url + path)
            follower_body = http(follower.url + path)
            if leader_body != follower_body:  # a pass in between: compare again, both fresh
                time.sleep(LEASE)
                leader_body, follower_body = http(new.url + path), http(follower.url + path)
            assert follower_body == leader_body, path
        status, ready = http(follower.url + "/readyz")
        assert status == 200, ready
        metrics = http(new.url + "/metrics")[1]
        assert "volctl_leader 1" in metrics
        assert f"volctl_lease_epoch {view['epoch']}" in metrics
        assert "volctl_leader 0" in http(follower.url + "/metrics")[1]
        shown = volctl(config, "get", "leader")  # config api: not a replica's port
        assert shown.returncode in {0, 1}


def test_sigstop_leader_for_two_leases(lab: LabInfo, lab_pool: LabPool, tmp_path: Path) -> None:
    config = ha_config(lab_pool)
    names = [f"st-{i:02d}" for i in range(8)]
    with replicas(config, tmp_path, ["r1", "r2"]) as group:
        old = group.leader()
        epoch_old = old.leader_view()["epoch"]
        _apply(config, tmp_path, fleet(lab, names))
        until("the leader acting", lambda: _acts_after(old, 0), 60, step=0.02)
        old.proc.send_signal(signal.SIGSTOP)
        stopped = time.time()
        new = group.leader([r for r in group.members.values() if r is not old])
        took_over = time.time()
        epoch_new = new.leader_view()["epoch"]
        assert epoch_new > epoch_old
        time.sleep(max(0.0, stopped + 2 * LEASE - time.time()))
        old.proc.send_signal(signal.SIGCONT)
        resumed = time.time()
        until("the old leader a follower", lambda: old.leader_view()["role"] == "follower", 30)
        until("convergence", lambda: _converged(lab, lab_pool.pool, names), CONVERGE, step=1)
        time.sleep(LEASE)  # let the resumed process run a while
        # the log: nothing started after the pause in its old term (under load a replica may
        # later win the lease again, legitimately, at a higher epoch), and RADOS refused its
        # old client
        stale = [e for e in _acts_after(old, stopped) if int(e["epoch"]) <= epoch_old]
        assert stale == []
        refused = [
            e
            for e in old.lines()
            if _ts(e) >= resumed and "ConnectionShutdown" in str(e.get("error", ""))
        ]
        assert refused, "the resumed leader's RADOS client was not refused (blocklist)"
        # the world: whatever was created after the takeover carries a newer epoch than the
        # paused leader's (the new leader's, or a later one's if it re-took its own lease)
        imgs = _check_world(lab, lab_pool.pool, names)
        late = {
            n: im["meta"].get("volctl.epoch") for n, im in imgs.items() if im["created"] > took_over
        }
        assert all(int(e) > epoch_old for e in late.values()), late
        assert old.proc.poll() is None  # still alive, as a follower


def _ceph_pids(info: LabInfo) -> list[int]:
    pids = CephCluster(Path(info.ceph_conf).parent, user=info.ceph_user).pids()
    return [p for p in pids.values() if p]


def test_ceph_outage_with_two_replicas(lab: LabInfo, lab_pool: LabPool, tmp_path: Path) -> None:
    config = ha_config(lab_pool)
    names = ["co-1", "co-2"]
    with replicas(config, tmp_path, ["r1", "r2"]) as group:
        group.leader()
        _apply(config, tmp_path, fleet(lab, names))
        until("convergence", lambda: _converged(lab, lab_pool.pool, names), CONVERGE, step=1)
        pids = _ceph_pids(lab)
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            outage = time.time()
            # drift during the outage: nobody may repair it while Ceph is unreachable
            host = domains(lab, lab_pool.pool)["co-1"][0]
            uri = next(h.uri for h in lab.hosts if h.name == host)
            conn = libvirt.open(uri)
            try:
                conn.lookupByName("co-1").undefine()
            finally:
                conn.close()
            for rep in group.members.values():
                until(
                    f"{rep.name} saying Ceph is unreachable",
                    lambda r=rep: "Ceph unreachable" in r.leader_view()["reason"],
                    6 * LEASE,
                )
                status, body = http(rep.url + "/readyz")
                assert status == 503
                assert "Ceph unreachable" in body["status"]
            time.sleep(LEASE)
            assert "co-1" not in domains(lab, lab_pool.pool)
            for rep in group.members.values():
                late = _acts_after(rep, outage + LEASE)
                assert late == [], f"{rep.name} acted during the outage: {late}"
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
        group.leader()
        until(
            "convergence after the outage", lambda: _converged(lab, lab_pool.pool, names), CONVERGE
        )
        _check_world(lab, lab_pool.pool, names)


def test_store_migrate_round_trip(lab: LabInfo, lab_pool: LabPool, tmp_path: Path) -> None:
    del lab
    config = lab_pool.config_path  # directory store
    src = tmp_path / "fleet.yaml"
    src.write_text(fleet(lab_pool.info, ["mg-1", "mg-2"]))
    assert volctl(config, "apply", "-f", str(src)).returncode == 0
    store_dir = Path(lab_pool.config.store)
    target = f"rados://{lab_pool.pool}/migrated"
    out = volctl(config, "store", "migrate", "--from", str(store_dir), "--to", target)
    assert out.returncode == 0, out.stderr
    again = volctl(config, "store", "migrate", "--from", str(store_dir), "--to", target)
    assert again.returncode == 1
    assert "not empty" in again.stderr
    back = tmp_path / "back"
    out = volctl(config, "store", "migrate", "--from", target, "--to", str(back))
    assert out.returncode == 0, out.stderr
    before = {p.relative_to(store_dir): p.read_bytes() for p in store_dir.rglob("*.yaml")}
    after = {p.relative_to(back): p.read_bytes() for p in back.rglob("*.yaml")}
    assert before == after
    assert len(before) > 2
