"""The wheel-installed volctl, sandboxed like contrib/systemd/volctl.service, on the lab as
client.volctl: `doctor` passes and `volctl run` reports READY=1 and stops cleanly.

There is no systemd as PID 1 on the test machine, so the unit's restrictions that matter to
volctl are reproduced by hand: a private mount namespace in which every mount is read-only
except the state directory (ProtectSystem=strict + ReadWritePaths), an empty capability
bounding set (CapabilityBoundingSet=) and no_new_privs (NoNewPrivileges=yes).  The uid stays
root because the lab's libvirt sockets and keyrings belong to root.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.lab.info import LabInfo
from reconciler.lab.testing import LabPool

Run = Callable[..., subprocess.CompletedProcess[str]]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SANDBOX = r"""
set -e
w=$1; shift
awk '{print $2}' /proc/self/mounts | sort -u | while read -r m; do
  case "$m" in /proc*|/sys*|/dev*) continue;; esac
  mount -o remount,bind,ro "$m" 2>/dev/null || true
done
mount --bind "$w" "$w"
mount -o remount,bind,rw "$w"
exec setpriv --no-new-privs --bounding-set=-all --inh-caps=-all "$@"
"""


def sandboxed(writable: Path, *cmd: str) -> list[str]:
    return ["unshare", "--mount", "--propagation", "private",
            "sh", "-c", SANDBOX, "sandbox", str(writable), *cmd]  # fmt: skip


def test_sandbox_is_real(lab_pool: LabPool, runner: Run, tmp_path: Path) -> None:
    inside = runner(
        sandboxed(lab_pool.root, "sh", "-c",
                  f"touch {lab_pool.root}/ok && grep -E '^Cap(Eff|Bnd)|NoNewPrivs' "
                  f"/proc/self/status && touch {tmp_path}/not-ok"),
        tmp_path,
    )  # fmt: skip
    assert inside.returncode != 0
    assert "Read-only file system" in inside.stderr
    assert (lab_pool.root / "ok").exists()
    assert not (tmp_path / "not-ok").exists()
    assert "CapEff:\t0000000000000000" in inside.stdout
    assert "CapBnd:\t0000000000000000" in inside.stdout
    assert "NoNewPrivs:\t1" in inside.stdout


def test_installed_volctl_under_the_units_restrictions(
    installed: Path, lab: LabInfo, lab_pool: LabPool, runner: Run, tmp_path: Path
) -> None:
    volctl = str(installed / "volctl")
    config = str(lab_pool.config_path)
    doctor = runner(
        sandboxed(lab_pool.root, volctl, "--config", config, "doctor", "-f",
                  lab.inventory_path, "-o", "json"),
        tmp_path, 240,
    )  # fmt: skip
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    report = json.loads(doctor.stdout)
    assert report["ok"] is True
    assert {r["target"] for r in report["checks"] if r["check"] == "ceph.monitors"} == {
        "client.volctl"
    }

    notify_path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(notify_path))
        sock.settimeout(120)
        proc = subprocess.Popen(
            sandboxed(lab_pool.root, "env", f"NOTIFY_SOCKET={notify_path}", volctl,
                      "--config", config, "run", "-f", lab.inventory_path, "--resync", "300"),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            ready = sock.recv(4096).decode()
            assert ready.startswith("READY=1"), ready
            time.sleep(0.5)
            proc.send_signal(signal.SIGTERM)
            _out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, err[-3000:]
    assert '"event": "controller.stop"' in err
