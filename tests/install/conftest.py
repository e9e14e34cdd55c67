"""Session fixtures for the packaging tests: the wheel built once, installed once into a
fresh venv (the build and the install are what take time: about 30 s with a warm pip
cache)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run(cmd: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VOLCTL_", "PYTHON"))}
    return subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    built = run([sys.executable, "-m", "build", "--outdir", str(out), str(REPO)], out, 480)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (whl,) = out.glob("volctl-*.whl")
    assert list(out.glob("volctl-*.tar.gz")), "no sdist"
    return whl


@pytest.fixture(scope="session")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bin/ of a fresh venv with the wheel installed (deps from the configured index)."""
    venv = tmp_path_factory.mktemp("venv") / "v"
    made = run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", str(venv)], REPO)
    assert made.returncode == 0, made.stderr
    pip = run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)], REPO)
    assert pip.returncode == 0, pip.stderr[-3000:]
    return venv / "bin"


@pytest.fixture(scope="session")
def runner() -> Callable[..., subprocess.CompletedProcess[str]]:
    """`run(cmd, cwd, timeout=300)`: a command with no VOLCTL_*/PYTHON* from this process."""
    return run
