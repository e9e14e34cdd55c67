"""A running controller with a small, converged fleet on a fresh pool of the lab.

The edge scenarios (R5 REST fuzzing, R6 store faults) need a real `volctl run` whose REST view
holds real data (a VM with a vmid, a volume with a volumeid, the instance types) and a world
that a wrong decision would visibly damage (a running domain, a volume whose reclaimPolicy
is Delete).  This builds exactly that, in its own pool and work dir, and takes it all away.
The store directory may be put on a mount of the caller's (R6: a small tmpfs).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from bench.common.lab import Lab
from reconciler.lab.testing import LabPool, drop_pool, make_pool
from reliability.common.killable import Controller

TYPE = "edge-type"


def _doc(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "volctl.io/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


class SmallFleet:
    """Hosts and image of the lab, an instance type, VM `edge-vm` (running, 96 MiB), volume
    `edge-vol` (reclaimPolicy Delete) attached to it."""

    vm = "edge-vm"
    volume = "edge-vol"

    def __init__(
        self,
        lab: Lab,
        prefix: str,
        *,
        mount_store: Callable[[Path], None] | None = None,
        resync: float = 3.0,
    ) -> None:
        self.lab = lab
        self.work = Path(tempfile.mkdtemp(prefix=f"volctl-{prefix}-", dir="/var/tmp"))
        self.pool: LabPool = make_pool(lab.info, self.work, prefix=prefix)
        self.store = Path(self.pool.config.store)
        if mount_store is not None:
            mount_store(self.store)
        self.ctl = Controller(
            self.pool.config_path, self.pool.config.listen, self.work / "run.log", resync=resync
        )

    def docs(self) -> list[dict[str, Any]]:
        inv = [
            d
            for d in yaml.safe_load_all(Path(self.lab.info.inventory_path).read_text())
            if d and d.get("kind") in {"Host", "Image", "InstanceType"}
        ]
        image = next(d["metadata"]["name"] for d in inv if d["kind"] == "Image")
        return [
            *inv,
            _doc("InstanceType", TYPE, {"tid": 950, "cpu": 1, "ram": 96, "disk": 1}),
            _doc("VirtualMachine", self.vm, {"instanceType": TYPE, "image": image}),
            _doc("Volume", self.volume, {"size": 1, "reclaimPolicy": "Delete"}),
            _doc("VolumeAttachment", self.volume, {"volume": self.volume, "vm": self.vm}),
        ]

    def up(self, timeout: float = 600.0) -> None:
        self.ctl.start()
        path = self.work / "fleet.yaml"
        path.write_text(yaml.safe_dump_all(self.docs(), sort_keys=False))
        rc, out = self.ctl.cli(
            "apply", "-f", str(path), "--wait", "--timeout", str(int(timeout)), timeout=timeout + 60
        )
        if rc != 0:
            raise RuntimeError(f"the small fleet did not converge: {out[-2000:]}")

    def wait_converged(self, timeout: float = 120.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ctl.status().get("converged"):
                return True
            time.sleep(0.5)
        return False

    def close(self, unmount: Callable[[Path], None] | None = None) -> None:
        self.ctl.stop()
        self.ctl.kill()
        try:
            drop_pool(self.pool)
        finally:
            if unmount is not None:
                unmount(self.store)
            shutil.rmtree(self.work, ignore_errors=True)
