"""`volctl run` as systemd runs it (Type=notify): READY=1 only after the first pass has
published status, STOPPING=1 and exit 0 on SIGTERM.  The test plays systemd: it binds the
unix datagram socket named by $NOTIFY_SOCKET and reads what the controller sends."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from reconciler.lab.info import LabInfo
from reconciler.lab.testing import LabPool


def _datagram(sock: socket.socket, deadline: float) -> str:
    sock.settimeout(max(0.1, deadline - time.monotonic()))
    return sock.recv(4096).decode()


def test_ready_after_the_first_pass_and_clean_sigterm(
    lab: LabInfo, lab_pool: LabPool, tmp_path: Path
) -> None:
    volctl = Path(sys.executable).with_name("volctl")
    notify_path = tmp_path / "notify.sock"
    log = tmp_path / "run.log"
    api = lab_pool.config.api
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock, log.open("w") as err:
        sock.bind(str(notify_path))
        env = {**os.environ, "NOTIFY_SOCKET": str(notify_path)}
        proc = subprocess.Popen(
            [str(volctl), "--config", str(lab_pool.config_path), "run",
             "-f", lab.inventory_path, "--resync", "300"],
            env=env, stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
        try:
            first = _datagram(sock, time.monotonic() + 120)
            # READY=1 comes first, and only once the pass has ended and status is published
            assert first.splitlines()[0] == "READY=1", first
            events = [json.loads(line)["event"] for line in log.read_text().splitlines()]
            assert "pass.start" in events
            assert "pass.end" in events
            assert events.index("pass.end") < events.index("controller.ready")
            with urllib.request.urlopen(f"{api}/api/v1/hosts", timeout=10) as reply:
                hosts = json.loads(reply.read())
            assert sorted(h["name"] for h in hosts["items"]) == sorted(h.name for h in lab.hosts)
            assert "STATUS=pass " in first

            proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 60
            seen = [_datagram(sock, deadline)]
            while not any("STOPPING=1" in d for d in seen):
                seen.append(_datagram(sock, deadline))
            assert proc.wait(timeout=60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    events = [json.loads(line)["event"] for line in log.read_text().splitlines()]
    assert events[-1] == "controller.stop", events[-5:]
    assert all("READY=1" not in d for d in seen)  # readiness is reported once
