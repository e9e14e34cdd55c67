"""End to end on the lab: a VM's NICs, their hot-plug and unplug, its console and its log.

One scenario, asserted on libvirt and on what the guest itself prints on its serial port
(the lab guest prints `VOLCTL-GUEST: nics <if:mac>...` whenever its set of NICs changes):
1. a VM with no `networks` gets one virtio user-mode NIC with the MAC derived from its vmid,
   and its guest reports that MAC; the lab hosts force TCG (`virtType: qemu`);
2. a second NIC in the spec is hot-plugged into the running guest, which reports both;
3. taking it out of the spec unplugs it (the guest acknowledges), with no restart;
4. `volctl logs` reads the serial log through libvirt and shows the guest's boot lines, with
   `--uri` and through the controller (which also shows the host's virt type and the MAC);
5. `volctl console` attaches through libvirt's console stream: after a reset of the guest it
   shows the boot lines, and Ctrl-] detaches.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import libvirt

from reconciler.lab.guest_image import NICS_PREFIX, READY_LINE
from reconciler.lab.info import LabInfo
from reconciler.lab.testing import LabPool
from reconciler.plan.specs import nic_mac

from .engine_support import REPO, Controller, doc, volctl, wait_for

VM = "net1"
TIMEOUT = 240


def _write(lab: LabInfo, store: Path, networks: list[dict[str, Any]] | None) -> None:
    store.mkdir(parents=True, exist_ok=True)
    inv = store / "inventory.yaml"
    if not inv.exists():
        inv.write_text(Path(lab.inventory_path).read_text())
    spec: dict[str, Any] = {"instanceType": "small", "image": "lab-base", "host": "h1"}
    if networks is not None:
        spec["networks"] = networks
    (store / "app.yaml").write_text(doc("VirtualMachine", VM, spec))


def _reconcile(lab_pool: LabPool) -> None:
    """`reconcile --once` until it converges (an unplug may need the guest's time)."""
    out = ""
    for _ in range(4):
        rec = volctl(lab_pool, "reconcile", "--once", timeout=300)
        if rec.returncode == 0:
            return
        out = rec.stdout + rec.stderr[-3000:]
    raise AssertionError(f"no convergence: {out}")


def _domain(lab: LabInfo) -> tuple[Any, Any]:
    h1 = next(h for h in lab.hosts if h.name == "h1")
    conn = libvirt.open(h1.uri)
    return conn, conn.lookupByName(VM)


def _live_macs(lab: LabInfo) -> list[str]:
    conn, dom = _domain(lab)
    try:
        root = ET.fromstring(dom.XMLDesc(0))
    finally:
        conn.close()
    return [str(m.get("address")) for m in root.findall("devices/interface/mac")]


def _guest_nics(log: Path) -> list[str] | None:
    """The MACs in the guest's latest `nics` line, or None before it printed one."""
    if not log.is_file():
        return None
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if NICS_PREFIX in ln]
    if not lines:
        return None
    items = lines[-1].split(NICS_PREFIX, 1)[1].split()
    return sorted(item.split(":", 1)[1] for item in items)


def test_nic_hotplug_console_and_logs(lab: LabInfo, lab_pool: LabPool) -> None:
    store = Path(lab_pool.config.store)
    log = Path(lab_pool.config.console_dir) / f"{VM}+console.log"
    h1_uri = next(h for h in lab.hosts if h.name == "h1").uri

    # 1. one default NIC, its MAC reported by the guest
    _write(lab, store, None)
    _reconcile(lab_pool)
    conn, dom = _domain(lab)
    try:
        inactive = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    finally:
        conn.close()
    root = ET.fromstring(inactive)
    assert root.get("type") == "qemu"  # the lab's hosts force TCG
    assert root.find("devices/serial").get("type") == "pty"  # type: ignore[union-attr]
    vmid = int(root.find("metadata/{https://volctl.io/xmlns/vm/1}vm").get("vmid"))  # type: ignore[union-attr,arg-type]
    mac0, mac1 = nic_mac(vmid, 0), nic_mac(vmid, 1)
    iface = root.find("devices/interface")
    assert iface is not None
    assert iface.get("type") == "user"
    assert iface.find("model").get("type") == "virtio"  # type: ignore[union-attr]
    assert _live_macs(lab) == [mac0]
    t0 = time.monotonic()
    wait_for(lambda: _guest_nics(log) == [mac0], TIMEOUT, f"the guest to report {mac0}")
    boot_s = time.monotonic() - t0

    # 2. hot-plug a second NIC into the running guest
    conn, dom = _domain(lab)
    dom_id = dom.ID()
    conn.close()
    _write(lab, store, [{"user": True}, {"user": True}])
    _reconcile(lab_pool)
    assert sorted(_live_macs(lab)) == sorted([mac0, mac1])
    wait_for(lambda: _guest_nics(log) == sorted([mac0, mac1]), TIMEOUT, "the guest to see eth1")

    # 3. and unplug it again; the domain was never restarted
    _write(lab, store, [{"user": True}])
    _reconcile(lab_pool)
    assert _live_macs(lab) == [mac0]
    wait_for(lambda: _guest_nics(log) == [mac0], TIMEOUT, "the guest to lose the second NIC")
    conn, dom = _domain(lab)
    try:
        assert dom.ID() == dom_id, "the VM was restarted"
    finally:
        conn.close()
    assert volctl(lab_pool, "plan").returncode == 0

    # 4. the serial log, read through libvirt
    logs = volctl(lab_pool, "logs", VM, "--uri", h1_uri)
    assert logs.returncode == 0, logs.stderr
    assert READY_LINE in logs.stdout
    assert f"eth0:{mac0}" in logs.stdout
    tail = volctl(lab_pool, "logs", VM, "--uri", h1_uri, "--tail", "100")
    assert tail.returncode == 0
    assert 0 < len(tail.stdout.encode()) <= 100

    # the same through the controller: it knows the host's URI and the log's path
    ctl = Controller(lab_pool)
    ctl.start()
    try:
        ctl.wait_converged(after=0, timeout=TIMEOUT)
        logs = volctl(lab_pool, "logs", VM)
        assert logs.returncode == 0, logs.stderr
        assert f"eth0:{mac0}" in logs.stdout
        hosts = volctl(lab_pool, "get", "hosts", "-o", "wide")
        assert "qemu (forced)" in hosts.stdout, hosts.stdout
        assert "x86_64" in hosts.stdout
        vms = volctl(lab_pool, "get", "vms", "-o", "wide")
        assert mac0 in vms.stdout, vms.stdout
    finally:
        assert ctl.stop() == 0, ctl.log()

    # 5. the console: reset the guest while attached, watch it boot, detach with Ctrl-]
    cmd = [sys.executable, "-m", "reconciler.cli.main", "--config", str(lab_pool.config_path)]
    proc = subprocess.Popen(
        [*cmd, "console", VM, "--uri", h1_uri],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    out = bytearray()
    try:
        head = proc.stdout.readline()
        assert b"Connected to net1" in head, head + (proc.stderr.read() if proc.stderr else b"")
        conn, dom = _domain(lab)
        try:
            dom.reset(0)
        finally:
            conn.close()
        deadline = time.monotonic() + TIMEOUT
        os.set_blocking(proc.stdout.fileno(), False)
        while READY_LINE.encode() not in out and time.monotonic() < deadline:
            chunk = proc.stdout.read()
            if chunk:
                out += chunk
            else:
                time.sleep(0.2)
        proc.stdin.write(b"\x1d")
        proc.stdin.flush()
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert READY_LINE.encode() in out, bytes(out[-2000:])
    assert code == 0
    print(f"guest reported its NIC {boot_s:.1f} s after the VM converged")
