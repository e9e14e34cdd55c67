"""The dashboard in Debian's headless chromium against a real controller on the lab: a VM
created by `volctl apply` shows up in the rendered DOM with its phase, the hosts show capacity
bars, and a screenshot is saved to artifacts/ as a test artifact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from reconciler.lab.testing import LabPool

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROME_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1300,1100",
    "--virtual-time-budget=5000",  # let the page's first polls finish before dumping
)

VM = """\
apiVersion: volctl.io/v1
kind: VirtualMachine
metadata:
  name: ui_vm
spec:
  instanceType: small
  image: lab-base
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOLCTL_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return 0


def _until(what: str, check: Callable[[], Any], timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}\n{log.read_text()[-4000:]}")


@contextmanager
def controller(pool: LabPool) -> Iterator[tuple[str, Path]]:
    log = pool.root / "controller.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "reconciler.cli.main", "--config", str(pool.config_path),
             "run", "--resync", "5"],
            stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=_env(),
        )  # fmt: skip
    base = pool.config.api.rstrip("/")
    try:
        _until("the first pass", lambda: _status(base + "/readyz") == 200, 120, log)
        yield base, log
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def chromium(url: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHROMIUM, *CHROME_FLAGS, f"--user-data-dir={profile}", *args, url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_dashboard_shows_an_applied_vm(lab_pool: LabPool, tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian chromium is not installed (scripts/bootstrap.sh installs it)")
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "inventory.yaml").write_text(Path(lab_pool.info.inventory_path).read_text())
    (specs / "vm.yaml").write_text(VM)
    with controller(lab_pool) as (base, log):
        applied = subprocess.run(
            [sys.executable, "-m", "reconciler.cli.main", "--config", str(lab_pool.config_path),
             "apply", "-f", str(specs), "--wait", "--timeout", "240s"],
            capture_output=True, text=True, timeout=300, cwd=ROOT, env=_env(), check=False,
        )  # fmt: skip
        assert applied.returncode == 0, applied.stdout + applied.stderr + log.read_text()[-3000:]

        dom = chromium(base + "/", tmp_path / "profile-dom", "--dump-dom")
        assert dom.returncode == 0, dom.stderr[-2000:]
        html = dom.stdout
        assert 'data-vm="ui_vm"' in html, html[:3000]
        assert 'data-vm="ui_vm" data-phase="Ready"' in html
        assert 'data-host="h1"' in html
        assert 'class="ours"' in html  # capacity bars rendered
        assert 'id="revision"' in html  # the store revision is shown
        assert "controller unreachable" not in html
        assert ">null<" not in html
        assert "undefined" not in html

        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "dashboard.png"
        shot.unlink(missing_ok=True)
        done = chromium(base + "/", tmp_path / "profile-shot", f"--screenshot={shot}")
        assert done.returncode == 0, done.stderr[-2000:]
        assert shot.stat().st_size > 10_000
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
