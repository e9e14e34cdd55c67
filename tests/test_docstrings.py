"""Every module says why it exists, in a docstring a new maintainer reads first.

The layer table (which package may import which, the bindings only in backends and lab, the
pure planner) is not checked here: import-linter checks it from `.importlinter` in `make lint`.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "reconciler"


def test_every_module_says_why_it_exists() -> None:
    missing = [
        str(p.relative_to(ROOT))
        for p in sorted(ROOT.rglob("*.py"))
        if p.stat().st_size > 0 and ast.get_docstring(ast.parse(p.read_text())) is None
    ]
    assert not missing, f"modules without a docstring: {missing}"
