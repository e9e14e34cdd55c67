"""The built package works when installed: `python -m build`, a fresh venv, the installed
`volctl` run from outside the checkout.

Why a real build and install: an editable install (what development uses) reads schemas/,
the dashboard and the guest sources from the source tree, so it cannot show that a wheel
forgot them.  This builds the sdist and, from it, the wheel (so MANIFEST.in is tested too),
installs the wheel into a new venv made like production's (`--system-site-packages`, for
Debian's rados/rbd), and runs the installed entry point in a directory with no checkout.
"""

from __future__ import annotations

import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
Run = Callable[..., subprocess.CompletedProcess[str]]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

BAD_VM = """apiVersion: volctl.io/v1
kind: VirtualMachine
metadata:
  name: web1
spec:
  instanceType: small
  image: base
  running: maybe
"""


def test_the_wheel_carries_schemas_dashboard_and_guest_sources(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for schema in sorted((REPO / "schemas").glob("*.json")):
        assert f"reconciler/schemas/{schema.name}" in names
    for static in sorted((REPO / "reconciler" / "api" / "static").iterdir()):
        assert f"reconciler/api/static/{static.name}" in names
    assert "reconciler/lab/guest/init.c" in names
    assert "reconciler/py.typed" in names


def test_installed_volctl_validates_specs_outside_the_checkout(
    installed: Path, tmp_path: Path, runner: Run
) -> None:
    good = runner([str(installed / "volctl"), "validate", "-f", str(REPO / "specs")], tmp_path)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "documents valid" in good.stdout
    # the schemas really are in use: a schema-level error is found, with file and line
    (tmp_path / "bad.yaml").write_text(BAD_VM)
    bad = runner([str(installed / "volctl"), "validate", "-f", "bad.yaml"], tmp_path)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "bad.yaml:8" in bad.stdout + bad.stderr
    assert "running" in bad.stdout + bad.stderr


def test_installed_package_is_the_wheel_and_runs_its_commands(
    installed: Path, tmp_path: Path, runner: Run
) -> None:
    where = runner(
        [str(installed / "python"), "-c",
         "import reconciler, rados, rbd, libvirt\n"
         "from reconciler.api.server import STATIC\n"
         "from reconciler.lab.guest_image import INIT_SOURCE\n"
         "from reconciler.loading.schema import schema_dir\n"
         "assert (STATIC / 'index.html').is_file() and INIT_SOURCE.is_file()\n"
         "print(reconciler.__file__); print(schema_dir())"],
        tmp_path,
    )  # fmt: skip
    assert where.returncode == 0, where.stderr
    module, schemas = where.stdout.split()
    assert module.startswith(str(installed.parent)), module  # not the checkout
    assert schemas.startswith(str(installed.parent)), schemas
    legacy = REPO / "specs" / "legacy"
    out = tmp_path / "converted"
    conv = runner(
        [str(installed / "volctl"), "import-legacy", "--machines", str(legacy / "machines"),
         "--images", str(legacy / "images"), "--types", str(legacy / "types.json"),
         "-o", str(out)],
        tmp_path,
    )  # fmt: skip
    assert conv.returncode == 0, conv.stdout + conv.stderr
    check = runner([str(installed / "volctl"), "validate", "-f", str(out)], tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    for command in ("run", "doctor", "apply", "get"):
        helped = runner([str(installed / "volctl"), command, "--help"], tmp_path)
        assert helped.returncode == 0, helped.stderr
