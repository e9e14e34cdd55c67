"""contrib/systemd/volctl.service passes `systemd-analyze verify` and keeps its promises.

`verify` also checks that ExecStart's binary exists, and /opt/volctl is not installed on a
test machine, so the unit is verified as a copy whose ExecStart names this venv's volctl;
everything else is byte for byte the shipped file.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "contrib" / "systemd" / "volctl.service"
SHIPPED_EXEC = "/opt/volctl/bin/volctl"


def _verify(text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    volctl = Path(sys.executable).with_name("volctl")
    copy = tmp_path / "volctl.service"
    copy.write_text(text.replace(SHIPPED_EXEC, str(volctl)))
    return subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(copy)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def _settings(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_systemd_analyze_verify_passes(tmp_path: Path) -> None:
    assert shutil.which("systemd-analyze"), "systemd-analyze missing: run make bootstrap"
    text = UNIT.read_text()
    assert SHIPPED_EXEC in text
    result = _verify(text, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr.strip() == "", result.stderr
    # and verify does catch a broken unit
    broken = _verify(text.replace("Type=notify", "Type=notifyy"), tmp_path)
    assert broken.returncode != 0 or "notifyy" in broken.stderr


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        ("Restart", "always"),
        ("KillSignal", "SIGTERM"),
        ("ProtectSystem", "strict"),
        ("NoNewPrivileges", "yes"),
        ("ReadWritePaths", "/var/lib/volctl"),
        ("StateDirectory", "volctl"),
        ("User", "volctl"),
        ("CapabilityBoundingSet", ""),
    ],
)
def test_unit_has_the_documented_settings(key: str, value: str) -> None:
    assert _settings(UNIT.read_text()).get(key) == [value]
