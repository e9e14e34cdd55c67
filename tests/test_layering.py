"""The one-way data flow, checked by a tool rather than by convention.

spec YAML -> loading -> model -> observe -> plan -> execute -> status -> api/cli.
Only the backend and lab modules may import the libvirt, rados and rbd bindings; the planner
must stay pure (no I/O, clock or randomness modules); lower layers never import higher ones.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "reconciler"
BINDINGS = {"libvirt", "rados", "rbd"}
IMPURE = {"os", "subprocess", "time", "random", "socket", "threading", "pathlib", "shutil"}

# package -> reconciler subpackages it must never import
FORBIDDEN_UPWARD: dict[str, set[str]] = {
    "model": {
        "loading",
        "observe",
        "plan",
        "execute",
        "status",
        "api",
        "cli",
        "controller",
        "backends",
        "source",
        "lab",
    },
    "loading": {"observe", "plan", "execute", "status", "api", "cli", "controller", "backends"},
    "observe": {"plan", "execute", "status", "api", "cli", "controller", "loading", "source"},
    "plan": {"execute", "status", "api", "cli", "controller", "loading", "source", "lab"},
    "execute": {"status", "api", "cli", "controller", "loading", "source"},
    "status": {"api", "cli", "controller", "execute", "backends"},
    "api": {"cli", "controller", "execute", "backends", "plan"},
}


def _modules() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.py"))


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _layer(path: Path) -> str:
    rel = path.relative_to(ROOT)
    return rel.parts[0].removesuffix(".py") if rel.parts else ""


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_bindings_only_in_backends_and_lab(path: Path) -> None:
    if _layer(path) in {"backends", "lab"}:
        return
    bad = {m for m in _imports(path) if m.split(".")[0] in BINDINGS}
    assert not bad, f"{path}: only reconciler/backends and reconciler/lab may import {bad}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_upward_imports(path: Path) -> None:
    forbidden = FORBIDDEN_UPWARD.get(_layer(path), set())
    bad = {
        m for m in _imports(path) if m.startswith("reconciler.") and m.split(".")[1] in forbidden
    }
    assert not bad, f"{path} ({_layer(path)}) imports a higher layer: {sorted(bad)}"


def test_planner_is_pure() -> None:
    plan_dir = ROOT / "plan"
    for path in sorted(plan_dir.rglob("*.py")):
        bad = {m for m in _imports(path) if m.split(".")[0] in IMPURE}
        assert not bad, f"{path}: the planner must be pure, but imports {sorted(bad)}"


def test_every_module_says_why_it_exists() -> None:
    missing = [
        str(p.relative_to(ROOT))
        for p in _modules()
        if p.stat().st_size > 0 and ast.get_docstring(ast.parse(p.read_text())) is None
    ]
    assert not missing, f"modules without a docstring: {missing}"
