"""HA pieces that need no Ceph: config keys, store URLs, dir-to-dir migrate, replica REST."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from reconciler.api.server import serve
from reconciler.config import load_config
from reconciler.errors import SpecError
from reconciler.source.migrate import migrate
from reconciler.source.rados_store import object_name, parse_url
from reconciler.source.store import SpecStore
from reconciler.status.replica import ReplicaInfo, ReplicaSeen
from tests.api.snapshots import world

VM = """apiVersion: volctl.io/v1
kind: InstanceType
metadata: {name: small}
spec: {tid: 1, cpu: 1, ram: 512, disk: 1}
"""


def test_store_url() -> None:
    assert parse_url("rados://rbd/volctl") == ("rbd", "volctl")
    for bad in ("rados://rbd", "rados:///ns", "rbd/volctl", "rados://rbd/a/b"):
        with pytest.raises(SpecError, match="rados://POOL/NAMESPACE"):
            parse_url(bad)
    assert object_name("VirtualMachine", "web-1") == "spec/virtualmachine/web-1.yaml"
    with pytest.raises(SpecError):
        object_name("VirtualMachine", "../x")


def test_lease_config(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("store: rados://rbd/volctl\nlease: 2.5s\n")
    c = load_config(str(cfg))
    assert c.store == "rados://rbd/volctl"
    assert c.lease == 2.5
    cfg.write_text("lease: soon\n")
    with pytest.raises(SpecError, match=r"c\.yaml: lease"):
        load_config(str(cfg))
    cfg.write_text("lease: 0.5\n")
    with pytest.raises(SpecError, match="at least 1s"):
        load_config(str(cfg))


def test_migrate_between_directories_refuses_a_non_empty_target(tmp_path: Path) -> None:
    src, dst = SpecStore(tmp_path / "a"), SpecStore(tmp_path / "b")
    src.apply([("t.yaml", VM)])
    done = migrate(src, dst)
    assert done.copied == 1
    assert (tmp_path / "b/instancetype/small.yaml").read_bytes() == (
        tmp_path / "a/instancetype/small.yaml"
    ).read_bytes()
    with pytest.raises(SpecError, match="not empty"):
        migrate(src, dst)
    (tmp_path / "b/instancetype/extra.yaml").write_text(VM.replace("small", "extra"))
    forced = migrate(src, dst, force=True)
    assert (forced.unchanged, forced.removed) == (1, 1)
    assert not (tmp_path / "b/instancetype/extra.yaml").exists()


def _get(url: str) -> tuple[int, dict[str, str], Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def _info(role: str, reason: str) -> ReplicaInfo:
    return ReplicaInfo(
        replica="r2",
        role=role,
        epoch=4,
        leader="r1",
        lease_seconds=6.0,
        lease_expires=None,
        takeovers=0,
        reason=reason,
        store="rados://rbd/volctl",
        snapshot_from="r1",
        snapshot_epoch=4,
        snapshot_published=1.0,
        replicas=(ReplicaSeen("r1", "leader", 4, 1.0, 7.0),),
    )


def test_follower_rest_view() -> None:
    snap = world()
    state = {"info": _info("follower", "following r1")}
    server = serve(lambda: snap, "127.0.0.1:0", None, replica_fn=lambda: state["info"])
    try:
        status, headers, body = _get(server.url + "/api/v1/leader")
        doc = json.loads(body)
        assert status == 200
        assert (doc["leader"], doc["epoch"], doc["role"]) == ("r1", 4, "follower")
        assert doc["replicas"][0]["replica"] == "r1"
        status, headers, body = _get(server.url + "/vm/query")
        assert headers["X-Volctl-Role"] == "follower"
        assert float(headers["X-Volctl-Snapshot-Age"]) >= 0
        assert _get(server.url + "/readyz")[0] == 200
        metrics = _get(server.url + "/metrics")[2].decode()
        assert "volctl_leader 0" in metrics
        assert "volctl_lease_epoch 4" in metrics
        state["info"] = _info("unavailable", "Ceph unreachable: timed out")
        status, _, body = _get(server.url + "/readyz")
        assert status == 503
        assert "Ceph unreachable: timed out" in json.loads(body)["status"]
        assert "volctl_ceph_reachable 0" in _get(server.url + "/metrics")[2].decode()
    finally:
        server.stop()


@pytest.mark.parametrize("argv", [["reconcile", "--once"], ["run", "--once"]])
def test_one_shot_passes_are_refused_on_a_rados_store(
    tmp_path: Path, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from reconciler.cli.main import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text("store: rados://rbd/volctl\n")
    assert main(["--config", str(cfg), *argv]) == 1
    assert "without the leader lease" in capsys.readouterr().err
